"""Training throughput: in-memory batching (nclayers.data.batches) vs a plain DataLoader.

Both loops train the same model with the same optimiser for the same number of epochs over the
same tensors; the only difference is how batches are made: slicing a shuffled index into
tensors already in memory, or ``DataLoader(TensorDataset(x, y), shuffle=True)`` (per-sample
indexing and collation). One thread, best of ``--repeat``; prints a Markdown table.

    python benchmarks/bench_batching.py
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torchvision import datasets, transforms

from nclayers import data, models


def train_epochs(model, batch_iter, epochs: int) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    start = time.perf_counter()
    for epoch in range(epochs):
        for x, y in batch_iter(epoch):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return time.perf_counter() - start


def compare(name: str, x, y, arch: dict, epochs: int, batch_size: int, repeat: int,
            dataset=None) -> None:
    """``dataset``: what the DataLoader reads (default: a TensorDataset of the same x, y)."""
    def fresh():
        torch.manual_seed(0)
        return models.build(input_shape=tuple(x.shape[1:]), num_classes=10, **arch)

    loader = DataLoader(dataset or TensorDataset(x, y), batch_size=batch_size, shuffle=True)

    def in_memory(epoch):
        return data.batches(x, y, batch_size, torch.Generator().manual_seed(epoch))

    def with_loader(epoch):
        return loader

    t_mem = min(train_epochs(fresh(), in_memory, epochs) for _ in range(repeat))
    t_dl = min(train_epochs(fresh(), with_loader, epochs) for _ in range(repeat))
    n = epochs * len(y)
    print(f"| {name} | {len(y)} | {batch_size} | {n / t_dl:,.0f} | {n / t_mem:,.0f} | "
          f"{t_dl / t_mem:.2f}x |", flush=True)


def mnist_root(tmp: Path) -> Path | None:
    """A torchvision MNIST root whose train and test files are both the real t10k set."""
    raw = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist" / "raw"
    if not raw.is_dir():
        return None
    (tmp / "MNIST" / "raw").mkdir(parents=True)
    for kind in ("images-idx3", "labels-idx1"):
        data_ = gzip.decompress((raw / f"t10k-{kind}-ubyte.gz").read_bytes())
        for split in ("train", "t10k"):
            (tmp / "MNIST" / "raw" / f"{split}-{kind}-ubyte").write_bytes(data_)
    return tmp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, best of {args.repeat}\n")
    print("| case | samples | batch | DataLoader (samples/s) | in-memory (samples/s) | speed-up |")
    print("|---|---|---|---|---|---|")
    digits = data.load("digits")
    mlp = {"name": "mlp", "depth": 6, "width": 256}
    compare("digits, MLP 6x256 (the default run)", digits.x_train, digits.y_train, mlp,
            epochs=5, batch_size=128, repeat=args.repeat)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10_000, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (10_000,), generator=g)
    compare("MNIST-shaped random, MLP 2x128", x, y, {"name": "mlp", "depth": 2, "width": 128},
            epochs=2, batch_size=128, repeat=args.repeat)
    tmp = Path(tempfile.mkdtemp())
    try:
        root = mnist_root(tmp)
        if root is not None:
            mnist = data.load("mnist", root=str(root))
            # The usual way: torchvision's dataset with per-sample PIL → tensor transforms.
            usual = datasets.MNIST(root, train=True, download=False, transform=transforms.Compose(
                [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]))
            compare("real MNIST t10k, MLP 2x128, DataLoader over torchvision MNIST + "
                    "ToTensor/Normalize", mnist.x_train, mnist.y_train,
                    {"name": "mlp", "depth": 2, "width": 128}, epochs=2, batch_size=128,
                    repeat=args.repeat, dataset=usual)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
