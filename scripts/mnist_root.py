"""Build a torchvision MNIST root from the official test set alone (t10k, 10,000 images): its
first ``--train`` images become the train split, the rest the test split, in the IDX files
``torchvision.datasets.MNIST(root, download=False)`` reads (``<out>/MNIST/raw/``).

For a machine without the 60,000 training images and without internet (`make evidence
MNIST_RAW=<folder of t10k-*-ubyte.gz>`). Where torchvision can download MNIST, use its own root
instead (`make evidence MNIST_ROOT=data`).

    python scripts/mnist_root.py RAW OUT [--train 8000]
"""

from __future__ import annotations

import argparse
import gzip
import struct
import sys
from pathlib import Path

import numpy as np

FILES = {"images": "t10k-images-idx3-ubyte", "labels": "t10k-labels-idx1-ubyte"}
HEADER = {"images": 16, "labels": 8}  # bytes before the data: magic and sizes, big-endian


def read_t10k(raw: Path) -> dict[str, np.ndarray]:
    """The t10k images (n, 28, 28) and labels (n,) of ``raw``, gzipped or not."""
    out = {}
    for kind, name in FILES.items():
        path = next((p for p in (raw / f"{name}.gz", raw / name) if p.is_file()), None)
        if path is None:
            raise SystemExit(f"{raw}: no {name}.gz (or {name}); give the folder that holds the "
                             "official MNIST test set's IDX files")
        data = path.read_bytes()
        data = gzip.decompress(data) if path.suffix == ".gz" else data
        out[kind] = np.frombuffer(data, np.uint8, offset=HEADER[kind])
    out["images"] = out["images"].reshape(-1, 28, 28)
    return out


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX ubyte: magic 0 0 8 ndim, the sizes as big-endian uint32, then the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(header + array.astype(np.uint8).tobytes())
    tmp.replace(path)


def build(raw: Path, out: Path, train: int = 8000) -> tuple[int, int]:
    """Write ``out/MNIST/raw/{train,t10k}-{images,labels}-*-ubyte``: the first ``train`` of
    the t10k images as the train split, the others as the test split. Returns the two sizes."""
    t10k = read_t10k(raw)
    if not 0 < train < len(t10k["labels"]):
        raise SystemExit(f"--train {train}: must leave images for both splits (1 to "
                         f"{len(t10k['labels']) - 1})")
    folder = out / "MNIST" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, part in (("train", slice(0, train)), ("t10k", slice(train, None))):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", t10k["images"][part])
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", t10k["labels"][part])
    return train, len(t10k["labels"]) - train


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw", type=Path, help="folder of t10k-images-idx3-ubyte(.gz) and "
                        "t10k-labels-idx1-ubyte(.gz)")
    parser.add_argument("out", type=Path, help="the MNIST root to write (MNIST/raw/ under it)")
    parser.add_argument("--train", type=int, default=8000,
                        help="images of the train split (default 8000; the rest: test)")
    args = parser.parse_args(argv)
    n_train, n_test = build(args.raw, args.out, args.train)
    print(f"wrote {args.out / 'MNIST' / 'raw'}: {n_train} train and {n_test} test images of "
          "the MNIST test set", file=sys.stderr)


if __name__ == "__main__":
    main()
