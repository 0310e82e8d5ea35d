"""The default experiment's training against its arithmetic floor on this CPU (issue 31 §3).

    python benchmarks/bench_train_floor.py [--epochs 20] [--repeat 3]

One train job of the default config (config.yaml: digits, its MLP, batch 128, MSE), one
thread as the workflow's train job runs, three ways, each the median of ``--repeat`` runs of
``--epochs`` epochs:

- **fit**: ``nclayers.train.fit``, the workflow's loop: the steps, then the log's evaluation of
  the whole train and test splits after every epoch;
- **minimal loop**: the same steps (same model, batches, optimiser) and a plain no-grad forward
  of both splits per epoch, the least that gives the log's numbers, nothing else;
- **floor**: the epoch's matrix products alone, at the rate this core multiplies matrices of
  the model's shapes (a 128 × w by w × w product, measured here): 2 FLOP a multiply-add, the
  backward pass twice the forward's.

The floor is what no loop, however written, beats with the same arithmetic (the same numbers);
× 400 epochs it bounds the default pipeline's train jobs. Prints Markdown.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml
from torch import nn

from nclayers import data, models
from nclayers.runs import recipe
from nclayers.train import Objective, fit, make_optimizer

ROOT = Path(__file__).resolve().parents[1]


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: first calls, allocator
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def default_run() -> tuple[str, dict, dict]:
    """(dataset name, architecture entry with its name, train section) of config.yaml's first
    run (a name left out is the label, as in the workflow)."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    label, entry = next(iter(config["datasets"].items()))
    arch_label, arch = next(iter(config["architectures"].items()))
    return (entry or {}).get("name", label), {"name": arch_label, **arch}, config["train"]


def macs_per_sample(model: nn.Module) -> int:
    return sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))


def matmul_gflops(width: int, batch: int) -> float:
    """This core's rate on a batch × width by width × width float32 product, GFLOP/s."""
    a, b = torch.randn(batch, width), torch.randn(width, width)
    n = 500
    seconds = median_seconds(lambda: [a @ b for _ in range(n)], 3)
    return 2 * batch * width * width * n / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the train job (--threads 1): two run side by side on 2 cores

    name, arch, train_section = default_run()
    splits = data.load(name, seed=0)
    options = {k: v for k, v in arch.items() if k != "name"}
    chosen = recipe({"train": {**train_section, "epochs": args.epochs, "checkpoints": []}})

    def build() -> nn.Module:
        torch.manual_seed(0)
        return models.build(arch["name"], tuple(splits.x_train.shape[1:]), splits.num_classes,
                            **options)

    def project() -> None:
        fit(build(), splits, chosen, seed=0, progress=False)

    def minimal() -> None:
        model = build()
        objective = Objective(chosen, model, splits.num_classes)
        optimizer = make_optimizer(chosen, model)
        generator = torch.Generator().manual_seed(0)
        for _ in range(args.epochs):
            model.train()
            for x, y in data.batches(splits.x_train, splits.y_train, chosen.batch_size,
                                     generator):
                loss = objective(x, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                model.eval()
                model(splits.x_train)
                model(splits.x_test)

    model = build()
    flop = 2 * macs_per_sample(model)
    per_epoch = 3 * flop * len(splits.y_train) + flop * (len(splits.y_train) + len(splits.y_test))
    width = max(m.out_features for m in model.modules() if isinstance(m, nn.Linear))
    rate = matmul_gflops(width, chosen.batch_size)
    floor = per_epoch / (rate * 1e9)
    fit_s = median_seconds(project, args.repeat) / args.epochs
    loop_s = median_seconds(minimal, args.repeat) / args.epochs
    epochs = train_section["epochs"]
    print(f"{name}, {arch['name']} ({options}), batch {chosen.batch_size}, one thread; "
          f"{per_epoch / 1e9:.2f} GFLOP an epoch; this core: {rate:.1f} GFLOP/s "
          f"({chosen.batch_size} × {width} by {width} × {width})\n")
    print(f"| loop | ms per epoch | × floor | {epochs} epochs |")
    print("|---|---|---|---|")
    for label, seconds in (("fit (the workflow's)", fit_s), ("minimal loop", loop_s),
                           ("floor: the matrix products at that rate", floor)):
        print(f"| {label} | {1000 * seconds:.1f} | {seconds / floor:.2f} | "
              f"{seconds * epochs:.1f} s |")


if __name__ == "__main__":
    main()
