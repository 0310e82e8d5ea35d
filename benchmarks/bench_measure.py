"""Streaming measurement (nclayers.measure) against the naive dense way, on the same checkpoint.

Naive: one forward pass that keeps every layer's activations of both splits in memory, then per
layer and split the p × p covariance Σ_W, Σ_B and a pseudo-inverse (nclayers.metrics_dense).
Streaming: two passes over train and one over test, memory O(p·C) per layer.

    python benchmarks/bench_measure.py [--experiment default] [--run digits-mlp6-s0] [--repeat 3]

Besides the trained checkpoint it measures the same data through an untrained MLP of width
2048 (``--wide``) to show how the two scale with p. Each method runs in a fresh process, so
that its peak memory can be read off the process's max RSS. Prints a Markdown table for
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from pathlib import Path

import numpy as np
import torch

from nclayers import models, runs
from nclayers.data import Batches
from nclayers.measurement import measure
from nclayers.metrics_dense import dense_metrics
from nclayers.taps import tap


def naive(model, splits, layers):
    """Collect all activations, then the dense p × p formulas per layer and split."""
    with torch.no_grad(), tap(model, layers) as acts:
        feats = {}
        for split, x in (("train", splits.x_train), ("test", splits.x_test)):
            pred = model(x).argmax(1).numpy()
            feats[split] = ({k: v.reshape(len(x), -1).double().numpy() for k, v in acts.items()},
                            pred)
    ytr, yte = splits.y_train.numpy(), splits.y_test.numpy()
    out = {}
    for layer in layers:
        htr = feats["train"][0][layer]
        for split, y in (("train", ytr), ("test", yte)):
            h, pred = feats[split][0][layer], feats[split][1]
            out[layer, split] = dense_metrics(htr, ytr, h, y, pred, splits.num_classes)
    return out


def streaming(model, splits, layers):
    return measure(model, Batches(splits.x_train, splits.y_train, 1024),
                   Batches(splits.x_test, splits.y_test, 1024), layers=layers)


def load_case(case: str, args):
    """The model and data of a case: the trained checkpoint, or an untrained wide MLP."""
    run_dir = Path("results") / args.experiment / "runs" / args.run
    spec = runs.read_json(run_dir / "run.json")
    if case == "checkpoint":
        last = max(spec["train"]["checkpoints"])
        model, splits, _ = runs.load_checkpoint(spec, runs.checkpoint_path(run_dir, last))
        name = f"{args.run} epoch {last}"
    else:
        splits = runs.load_data(spec)
        torch.manual_seed(0)
        model = models.build("mlp", splits.input_shape, splits.num_classes, depth=6,
                             width=args.wide)
        name = f"untrained MLP 6x{args.wide}"
    return name, model.eval(), splits


def child(case: str, method: str, args):
    """In a fresh process: (best wall time, extra peak RSS in MiB, result)."""
    torch.set_num_threads(1)
    _, model, splits = load_case(case, args)
    fn = {"naive": naive, "streaming": streaming}[method]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = fn(model, splits, model.tapped_layers)
        best = min(best, time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB on Linux
    return best, peak / 1024, result


def timed(case: str, method: str, args):
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(child, (case, method, args))


def max_rel_diff(table, reference) -> float:
    worst = 0.0
    for row in table.itertuples():
        ref = reference[row.layer, row.split][row.metric]
        worst = max(worst, abs(row.value - ref) / max(abs(ref), 1e-12))
    return worst


def compare(case: str, args) -> None:
    name, model, splits = load_case(case, args)
    width = max(int(np.prod(splits.input_shape)), *(
        m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)))
    t_naive, m_naive, ref = timed(case, "naive", args)
    t_stream, m_stream, table = timed(case, "streaming", args)
    print(f"| {name} | {len(model.tapped_layers)} | {width} | {t_naive:.3f} | {t_stream:.3f} | "
          f"{t_naive / t_stream:.1f}x | {m_naive:.0f} | {m_stream:.0f} | "
          f"{max_rel_diff(table, ref):.1e} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experiment", default="default")
    parser.add_argument("--run", default="digits-mlp6-s0")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--wide", type=int, default=2048)
    args = parser.parse_args()
    _, _, splits = load_case("checkpoint", args)
    print(f"torch {torch.__version__}, 1 thread, each method in a fresh process; "
          f"N = {len(splits.y_train)} train + {len(splits.y_test)} test; best of {args.repeat}; "
          "peak = growth of the process's max RSS during the measurement\n")
    print("| case | layers | max p | naive dense (s) | streaming (s) | speed-up | "
          "naive peak (MiB) | streaming peak (MiB) | max rel. diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    compare("checkpoint", args)
    compare("wide", args)


if __name__ == "__main__":
    main()
