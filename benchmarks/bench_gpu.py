"""The CUDA path, measured (issue 16 §4): the project's training loop against an airbench-style
loop on the same ResNet18, and ``measure`` against one plain forward on VGG11.

    python benchmarks/bench_gpu.py [--n 20000] [--epochs 3] [--measure-n 10000]

Training: a ResNet18 (CIFAR stem) on ``--n`` random 3×32×32 images of 10 classes, batch 512,
bf16 autocast in both loops, the data resident on the GPU in both:

- **project**: ``nclayers.train.fit`` (a ``Recipe`` with ``amp: true``), whose epoch also
  evaluates loss and accuracy on the whole train and test splits for the log; the time of that
  evaluation is reported apart (``fit``'s ``_log_row``, timed by a wrapper);
- **airbench-style**: the same model in channels_last, a shuffled index on the device, one
  ``optimizer.step`` per batch and no host synchronisation until the epoch ends.

Measurement: ``nclayers.measure`` (all metrics, all taps) of an untrained VGG11-BN against one
plain no-grad forward over the same train + test batches, in float64 and in float32 arithmetic
(``precision="float32"``), and the largest relative difference between their values. Every
time is the median of ``--repeat`` runs after a warm-up, with ``torch.cuda.synchronize()``
around it. Prints Markdown for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from nclayers import models, train
from nclayers.data import Batches, Splits
from nclayers.measurement import measure
from nclayers.train import Recipe, fit

C = 10


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``fn`` over ``repeat`` runs after one warm-up, synchronised."""
    fn()
    times = []
    for _ in range(repeat):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_splits(n: int, n_test: int, device: str) -> Splits:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n + n_test, 3, 32, 32, generator=gen)
    y = torch.randint(0, C, (n + n_test,), generator=gen)
    return Splits("random", x[:n], y[:n], x[n:], y[n:], C).to(device)


def project_epochs(splits: Splits, epochs: int, batch: int) -> tuple[float, float]:
    """(seconds per epoch of ``fit``, of which seconds per epoch in its log's evaluation)."""
    torch.manual_seed(0)
    model = models.build("resnet18", (3, 32, 32), C).to(splits.x_train.device)
    recipe = Recipe(epochs=epochs, batch_size=batch, lr=0.05, loss="ce", amp=True)
    spent = [0.0]
    log_row = train._log_row

    def timed_log_row(*args, **kwargs):
        torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            return log_row(*args, **kwargs)
        finally:
            torch.cuda.synchronize()
            spent[0] += time.perf_counter() - start

    train._log_row = timed_log_row
    try:
        torch.cuda.synchronize()
        start = time.perf_counter()
        fit(model, splits, recipe, seed=0, progress=False)
        torch.cuda.synchronize()
        total = time.perf_counter() - start
    finally:
        train._log_row = log_row
    # fit evaluates once before training (epoch 0) and once after each epoch.
    return total / epochs, spent[0] / (epochs + 1)


def airbench_epochs(splits: Splits, epochs: int, batch: int) -> float:
    """Seconds per epoch of an airbench-style loop on the same model."""
    torch.manual_seed(0)
    device = splits.x_train.device
    model = models.build("resnet18", (3, 32, 32), C).to(device, memory_format=torch.channels_last)
    x = splits.x_train.contiguous(memory_format=torch.channels_last)
    y = splits.y_train
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    model.train()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x), device=device)
        total = torch.zeros((), device=device)
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            with torch.autocast("cuda", torch.bfloat16):
                loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        float(total)  # one synchronisation per epoch
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / epochs


def bench_training(args: argparse.Namespace) -> None:
    splits = random_splits(args.n, args.n // 5, "cuda")
    project_epochs(splits, 1, args.batch)  # warm-up: cuDNN autotuning, allocator
    airbench_epochs(splits, 1, args.batch)
    project, evaluation = project_epochs(splits, args.epochs, args.batch)
    airbench = airbench_epochs(splits, args.epochs, args.batch)
    steps = project - evaluation
    print(f"### Training a ResNet18 on {args.n:,} random 32×32 images (+{args.n // 5:,} test), "
          f"batch {args.batch}, bf16 autocast, {args.epochs} epochs, "
          f"{torch.cuda.get_device_name()}\n")
    print("| loop | s / epoch | train images / s | ratio to airbench-style |")
    print("|---|---|---|---|")
    print(f"| airbench-style (channels_last, no host sync per step) | {airbench:.3f} | "
          f"{args.n / airbench:,.0f} | 1x |")
    print(f"| project `fit`, whole epoch (steps + the log's evaluation of train and test) | "
          f"{project:.3f} | {args.n / project:,.0f} | {project / airbench:.2f}x |")
    print(f"| project `fit`, its optimisation steps alone (epoch − evaluation) | {steps:.3f} | "
          f"{args.n / steps:,.0f} | {steps / airbench:.2f}x |")
    print(f"| of which the log's evaluation (train + test, eval mode) | {evaluation:.3f} | | |\n")


def bench_measure(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    model = models.build("vgg11", (3, 32, 32), C).cuda().eval()
    splits = random_splits(args.measure_n, args.measure_n // 5, "cuda")
    train_b = Batches(splits.x_train, splits.y_train, 1000)
    test_b = Batches(splits.x_test, splits.y_test, 1000)

    def plain() -> None:
        with torch.no_grad():
            for data in (train_b, test_b):
                for x, _ in data:
                    model(x)

    t_plain = timed(plain, args.repeat)
    t_measure = timed(lambda: measure(model, train_b, test_b), args.repeat)
    t_measure32 = timed(lambda: measure(model, train_b, test_b, precision="float32"),
                        args.repeat)
    rows64 = measure(model, train_b, test_b)
    rows32 = measure(model, train_b, test_b, precision="float32")
    relative = ((rows32["value"] - rows64["value"]).abs()
                / rows64["value"].abs().clip(lower=1e-12)).max()
    print(f"### measure on the GPU: VGG11-BN, all {len(model.tapped_layers)} taps, all metrics, "
          f"{args.measure_n:,} train + {args.measure_n // 5:,} test images, batch 1000\n")
    print("| | s | ratio |")
    print("|---|---|---|")
    print(f"| one plain no-grad forward over train + test | {t_plain:.3f} | 1x |")
    print(f"| `nclayers.measure` | {t_measure:.3f} | {t_measure / t_plain:.2f}x |")
    print(f"| `nclayers.measure`, `precision=\"float32\"` | {t_measure32:.3f} | "
          f"{t_measure32 / t_plain:.2f}x |\n")
    print(f"Largest relative difference of a float32 value from the float64 one: {relative:.1e}"
          " (tests/test_metrics.py holds float32 to 1e-5 of the dense reference).\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="training images")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--measure-n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py needs a CUDA device; torch sees none")
    torch.backends.cudnn.benchmark = True
    bench_training(args)
    bench_measure(args)


if __name__ == "__main__":
    main()
