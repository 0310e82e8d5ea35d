"""The cost of measuring every layer every epoch inside training (train.epoch_metrics).

In one process, the same short training (nclayers.train.fit, same seed) three ways: alone;
with the light metrics of every tapped layer every epoch on the full splits; and on a
class-balanced subsample of about ``--fraction`` of each split (in both, the measurement's passes
over the full splits also give the log's eval loss and accuracy; a subsample's statistics take
their rows from them). Goals: ≤ 1.5× and ≤ 1.15× training alone. Times are per epoch
(training and its log row, measured or not) after the initial row of epoch 0, the steady state
of a long run: the median epoch of each fit, then the median of ``--repeat`` fits after a
warm-up round; the modes take turns, so that a machine that slows down slows all three.
``--clock process`` times the CPU time of this process instead of the wall clock (on a CPU
shared with other jobs). ``--malloc keep`` lets glibc keep freed memory (see
``keep_freed_memory``). ``--precision float32`` measures in float32 arithmetic
(``measure.precision``). Prints a Markdown table.

    python benchmarks/bench_epoch_metrics.py                       # CPU: MLP on digits, ResNet18
    python benchmarks/bench_epoch_metrics.py --device cuda --n-train 10000 --n-test 2000 \\
        --threads 16

Cases: (a) the default MLP (depth 6, width 256, batchnorm) on the digits dataset, batch 128;
(b) ResNet18 at CIFAR size on random 3×32×32 images of 10 classes (``--n-train``,
``--n-test``), batch 128.
"""

from __future__ import annotations

import argparse
import ctypes
import itertools
import statistics
import time

import torch

from nclayers import data, models
from nclayers.epoch_metrics import EpochMetrics, EpochMetricsConfig
from nclayers.train import Recipe, fit

MODES = ("alone", "full splits", "subsample")
CLOCKS = {"wall": time.perf_counter, "process": time.process_time}


def keep_freed_memory() -> bool:
    """glibc: keep freed blocks of up to 32 MB in the heap (no munmap, no trim of its top), so
    that the next batch's tensors reuse pages instead of faulting in fresh ones."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 32 << 20)
                and libc.mallopt(m_trim_threshold, 1 << 30))


def random_images(n_train: int, n_test: int, num_classes: int = 10) -> data.Splits:
    """CIFAR-sized random images, labels i mod C (the cost does not depend on the values)."""
    g = torch.Generator().manual_seed(0)
    x_tr = torch.randn(n_train, 3, 32, 32, generator=g)
    x_te = torch.randn(n_test, 3, 32, 32, generator=g)
    return data.Splits("random32", x_tr, torch.arange(n_train) % num_classes, x_te,
                       torch.arange(n_test) % num_classes, num_classes)


def per_class(splits: data.Splits, fraction: float) -> int:
    return max(2, round(fraction * len(splits.y_train) / splits.num_classes))


def epoch_seconds(arch: dict, splits: data.Splits, recipe: Recipe, config, device,
                  clock, precision: str = "float64") -> float:
    """The median seconds of one epoch of ``fit`` (training and its log row) after the initial
    row of epoch 0: robust to the odd slow epoch of a shared machine."""
    torch.manual_seed(0)
    model = models.build(input_shape=splits.input_shape, num_classes=splits.num_classes,
                         **arch).to(device)
    recorder = EpochMetrics(config, recipe.epochs, seed=0, log=lambda m: None,
                            measure_options={"precision": precision}) if config else None
    stamps = []

    def stamp(*_) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(clock())

    fit(model, splits, recipe, seed=0, progress=False, epoch_metrics=recorder,
        checkpoints=[0], on_checkpoint=stamp, on_epoch_end=stamp)
    return statistics.median(b - a for a, b in itertools.pairwise(stamps))


def compare(name: str, arch: dict, splits: data.Splits, recipe: Recipe, args) -> None:
    device = torch.device(args.device)
    splits = splits.to(device)
    n = per_class(splits, args.fraction)
    configs = {"alone": None, "full splits": EpochMetricsConfig(every=1),
               "subsample": EpochMetricsConfig(every=1, per_class=n)}
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for round_ in range(args.repeat + 1):
        for mode in MODES:
            seconds = epoch_seconds(arch, splits, recipe, configs[mode], device,
                                    CLOCKS[args.clock], args.precision)
            if round_:  # the first round warms up (allocator, kernels, workspace)
                times[mode].append(seconds)
    alone, full, sub = (statistics.median(times[mode]) for mode in MODES)
    print(f"| {name} | {len(splits.y_train)} + {len(splits.y_test)} | {recipe.epochs} | "
          f"{alone * 1e3:.1f} | {full * 1e3:.1f} | **{full / alone:.2f}x** | {n}/class | "
          f"{sub * 1e3:.1f} | **{sub / alone:.2f}x** |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall")
    parser.add_argument("--malloc", choices=["default", "keep"], default="default")
    parser.add_argument("--precision", choices=["float64", "float32"], default="float64",
                        help="the measurement's arithmetic (measure.precision)")
    parser.add_argument("--fraction", type=float, default=0.1,
                        help="share of each split in the subsample (per_class = share·N/C)")
    parser.add_argument("--mlp-epochs", type=int, default=10)
    parser.add_argument("--resnet-epochs", type=int, default=1)
    parser.add_argument("--n-train", type=int, default=512, help="ResNet18 train images")
    parser.add_argument("--n-test", type=int, default=256, help="ResNet18 test images")
    parser.add_argument("--cases", nargs="+", default=["mlp", "resnet18"],
                        choices=["mlp", "resnet18"])
    args = parser.parse_args()
    kept = args.malloc == "keep" and keep_freed_memory()
    torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"torch {torch.__version__}, {where}, {torch.get_num_threads()} CPU thread(s), "
          f"{args.clock} clock, glibc malloc {'keeping freed memory' if kept else 'default'}, "
          f"{args.precision} arithmetic; "
          f"median ms per epoch after epoch 0, median of {args.repeat} fits after a warm-up; "
          "metrics every epoch\n")
    print("| case | train + test | epochs | alone (ms) | full splits (ms) | ratio | subsample | "
          "subsample (ms) | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    if "mlp" in args.cases:
        compare("MLP 6×256 BN, digits", {"name": "mlp", "depth": 6, "width": 256,
                                         "batchnorm": True},
                data.load("digits"), Recipe(epochs=args.mlp_epochs, batch_size=128, lr=0.01),
                args)
    if "resnet18" in args.cases:
        compare("ResNet18, random 3×32×32", {"name": "resnet18"},
                random_images(args.n_train, args.n_test),
                Recipe(epochs=args.resnet_epochs, batch_size=128, lr=0.01, loss="ce"), args)


if __name__ == "__main__":
    main()
