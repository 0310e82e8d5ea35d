"""Scale targets of the streaming measurement, each as a ratio measured in the same run.

    python benchmarks/bench_scale.py [--train 2000] [--test 1000] [--batch 250] [--rounds 2]

P1  time: all metrics of all taps of an untrained VGG11-BN (``models.build("vgg11", ...)``) on
    random 32×32 inputs ≤ 2.5× one plain no-grad forward pass over the same images (train +
    test). The weights of a checkpoint do not change the cost, so an untrained net stands in.
    A fourth run measures with ``precision="float32"`` (float32 arithmetic per batch, float64
    totals: nclayers.metrics.PRECISIONS).
    To see where ``measure``'s time goes, a third run makes its three passes (train, train,
    test) with the taps on and the statistics left out, and the measure run itself is
    instrumented: wrappers add up the wall time spent in the forward passes, in
    ``ClassMeans.update`` / ``SplitStats.update`` (per layer), in ``compute()``, in NC3 and in
    ``find_consumers`` (a few µs of overhead per call).
P2  exact NC1 at p = 4096, N = 10,000, C = 10 ≥ 50× faster than the dense way, equal to 1e-8.
    Features: random class means plus Gaussian noise, float32. Streaming: ``ClassMeans`` then
    ``SplitStats`` in batches (all split metrics, not NC1 alone). Dense: a minimal NC1 (not
    ``metrics_dense.dense_metrics``, which also does cdist, eigvalsh(Σ_W) for the stable rank and
    a p³ product for the trace): float64 p × p Σ_W = centredᵀ centred / N and Σ_B = M Mᵀ / C,
    ``np.linalg.pinv(Σ_B, rtol=RANK_RTOL, hermitian=True)``, Tr(Σ_W Σ_B⁺)/C as an O(p²) sum.
P3  memory: the growth of the max RSS of a fresh process (spawn) over P1's measurement < 4 GB,
    against the 34 GB that one dense p × p float64 matrix would take at VGG11's widest tap.

Each VGG11 run is in a fresh process, so that its max RSS is its own; the three runs take
turns for ``--rounds`` rounds of ``--repeat`` runs each, and P2's two methods alternate, so that
load from other processes on the machine hits all alike. Times are the best of all, memory the
worst. Prints Markdown tables for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import resource
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import threadpoolctl
import torch
from torch import Tensor, nn

from nclayers import measurement as measure_module
from nclayers import models, weights
from nclayers.data import Batches
from nclayers.metrics import RANK_RTOL, SKETCH_COLUMNS, ClassMeans, SplitStats
from nclayers.taps import tap

THREADS = 2
C = 10
GB = 1e9
MIB = 2**20

# Wall time per label (and per layer) of the current instrumented measure run.
TIMES: defaultdict[str, float] = defaultdict(float)
LAYER_TIMES: defaultdict[tuple[str, int], float] = defaultdict(float)


def vgg_case(args: argparse.Namespace) -> tuple[nn.Module, Batches, Batches]:
    torch.manual_seed(0)
    model = models.build("vgg11", (3, 32, 32), C).eval()

    def split(n: int) -> Batches:
        return Batches(torch.randn(n, 3, 32, 32), torch.arange(n) % C, args.batch)

    return model, split(args.train), split(args.test)


def instrument(num_layers: int) -> None:
    """Wrap the parts of ``measure`` with timers that add up into TIMES (and LAYER_TIMES)."""

    def wrap(owner: object, attr: str, label: str, per_layer: bool = False) -> None:
        fn, seen = getattr(owner, attr), [0]

        def timed(*a, **kw):
            start = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                dt = time.perf_counter() - start
                TIMES[label] += dt
                if per_layer:  # measure creates and first updates the accumulators in layer order
                    acc = a[0]
                    if not hasattr(acc, "bench_layer"):
                        acc.bench_layer, seen[0] = seen[0] % num_layers, seen[0] + 1
                    LAYER_TIMES[label, acc.bench_layer] += dt

        setattr(owner, attr, timed)

    wrap(measure_module, "_forward", "forward passes (3, taps on)")
    wrap(ClassMeans, "update", "ClassMeans.update (pass 1, train)", per_layer=True)
    wrap(SplitStats, "update", "SplitStats.update (pass 2, train + test)", per_layer=True)
    wrap(ClassMeans, "compute", "compute() (QR, SVD of M, Nyström)")
    wrap(SplitStats, "compute", "compute() (QR, SVD of M, Nyström)")
    wrap(measure_module, "_nc3", "NC3 (SVDs of the consuming weights)")
    wrap(weights, "find_consumers", "find_consumers")


def plain_forward(model: nn.Module, train: Batches, test: Batches) -> None:
    with torch.no_grad():
        for data in (train, test):
            for x, _ in data:
                model(x)


def taps_only(model: nn.Module, train: Batches, test: Batches) -> None:
    """``measure``'s three passes with every layer tapped, the statistics left out."""
    with torch.no_grad(), tap(model, model.tapped_layers):
        for data in (train, train, test):
            for x, _ in data:
                model(x).argmax(dim=1)


def run_measure(model: nn.Module, train: Batches, test: Batches) -> None:
    measure_module.measure(model, train, test)


def run_measure32(model: nn.Module, train: Batches, test: Batches) -> None:
    measure_module.measure(model, train, test, precision="float32")


RUNS: dict[str, Callable[[nn.Module, Batches, Batches], None]] = {
    "plain": plain_forward, "taps": taps_only, "measure": run_measure,
    "measure32": run_measure32}


def child(method: str, args: argparse.Namespace) -> dict:
    """In a fresh process: best time, growth of max RSS (MiB), max RSS, best run's breakdown."""
    torch.set_num_threads(THREADS)
    model, train, test = vgg_case(args)
    if method.startswith("measure"):  # both carry the timers' few µs a call
        instrument(len(model.tapped_layers))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    best: dict = {"time": math.inf}
    for _ in range(args.repeat):
        TIMES.clear()
        LAYER_TIMES.clear()
        start = time.perf_counter()
        RUNS[method](model, train, test)
        elapsed = time.perf_counter() - start
        if elapsed < best["time"]:
            best = {"time": elapsed, "parts": dict(TIMES), "layers": dict(LAYER_TIMES)}
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return best | {"growth": (after - before) / 1024, "max_rss": after / 1024}


def in_fresh_process(method: str, args: argparse.Namespace) -> dict:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(child, method, args).result()


def tap_sizes(model: nn.Module) -> dict[str, int]:
    with torch.no_grad(), tap(model, model.tapped_layers) as acts:
        model(torch.zeros(1, 3, 32, 32))
    return {name: acts[name][0].numel() for name in model.tapped_layers}


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def bench_vgg(args: argparse.Namespace) -> None:
    model, _, _ = vgg_case(args)
    sizes = tap_sizes(model)
    rounds = [{m: in_fresh_process(m, args) for m in RUNS} for _ in range(args.rounds)]
    res = {m: min((r[m] for r in rounds), key=lambda r: r["time"])
           | {k: max(r[m][k] for r in rounds) for k in ("growth", "max_rss")} for m in RUNS}
    base = res["plain"]["time"]
    n, n2 = args.train + args.test, 2 * args.train + args.test
    ratio = res["measure"]["time"] / base
    ratio32 = res["measure32"]["time"] / base
    print(f"### P1 time and P3 memory: VGG11-BN, all {len(sizes)} taps, 32×32 inputs\n")
    print("| run | images through the net | best time (s) | × plain forward | "
          "max-RSS growth (MiB) | max RSS (MiB) |")
    print("|---|---|---|---|---|---|")
    for key, what, images in (
            ("plain", "plain no-grad forward, train + test", n),
            ("taps", "measure's 3 passes with taps, no statistics", n2),
            ("measure", "`nclayers.measure`, all metrics of all taps", n2),
            ("measure32", "the same, `precision=\"float32\"`", n2)):
        r = res[key]
        print(f"| {what} | {images:,} | {r['time']:.2f} | {r['time'] / base:.2f}x | "
              f"{r['growth']:.0f} | {r['max_rss']:.0f} |")
    growth_gb = res["measure"]["growth"] * MIB / GB
    print(f"\nP1: measure / plain forward = **{ratio:.2f}x** (target ≤ 2.5x): "
          f"{verdict(ratio <= 2.5)}; with float32 arithmetic **{ratio32:.2f}x**. "
          f"P3: peak growth {growth_gb:.2f} GB (target < 4 GB): "
          f"{verdict(growth_gb < 4)}; one dense p × p float64 Σ at p = {max(sizes.values()):,} "
          f"would take {max(sizes.values()) ** 2 * 8 / GB:.1f} GB.\n")

    m = res["measure"]
    print("Where the best measure run's time goes (instrumented):\n")
    print("| part of measure | time (s) | share | × plain forward |")
    print("|---|---|---|---|")
    parts = dict(m["parts"])
    parts["rest (argmax, hooks' dict, tidy frame; by difference)"] = m["time"] - sum(
        parts.values())
    for label, t in parts.items():
        print(f"| {label} | {t:.2f} | {t / m['time']:.0%} | {t / base:.2f}x |")
    print(f"| **total** | {m['time']:.2f} | 100% | {ratio:.2f}x |\n")

    print("Statistics per tapped layer (update() calls only):\n")
    print("| layer | p | pass 1 (s) | pass 2 (s) | total (s) | × plain forward |")
    print("|---|---|---|---|---|---|")
    for i, (name, p) in enumerate(sizes.items()):
        t1, t2 = (sum(t for (label, j), t in m["layers"].items()
                      if j == i and label.startswith(cls)) for cls in ("ClassMeans", "SplitStats"))
        print(f"| {name} | {p:,} | {t1:.2f} | {t2:.2f} | {t1 + t2:.2f} | "
              f"{(t1 + t2) / base:.2f}x |")
    print()


def streaming_nc1(h: Tensor, y: Tensor, batch: int, sketch: int = SKETCH_COLUMNS,
                  precision: str = "float64") -> float:
    """All split metrics; ``sketch = 0`` leaves out the stable rank's sketch."""
    acc = ClassMeans(C, sketch, precision=precision)
    for i in range(0, len(h), batch):
        acc.update(h[i:i + batch], y[i:i + batch])
    stats = SplitStats(acc.compute())
    for i in range(0, len(h), batch):
        stats.update(h[i:i + batch], y[i:i + batch])
    return stats.compute()["nc1"]


def dense_nc1(h: np.ndarray, y: np.ndarray) -> float:
    """Tr(Σ_W Σ_B⁺)/C with p × p float64 matrices and a pseudo-inverse."""
    h = h.astype(np.float64)
    means = np.stack([h[y == c].mean(axis=0) for c in range(C)])
    M = (means - means.mean(axis=0)).T  # p × C
    centred = h - means[y]
    sigma_w = centred.T @ centred / len(h)
    sigma_b = M @ M.T / C
    pinv = np.linalg.pinv(sigma_b, rtol=RANK_RTOL, hermitian=True)
    return float(np.vdot(sigma_w, pinv) / C)  # Tr(AB) = Σ A_ij B_ij for symmetric B


def best_of(repeat: int, *fns: Callable[[], float]) -> list[tuple[float, float]]:
    """(best time, value) of each function, the functions taking turns."""
    out = [(math.inf, math.nan)] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            value = fn()
            out[i] = (min(out[i][0], time.perf_counter() - start), value)
    return out


def bench_nc1(args: argparse.Namespace) -> None:
    n, p = args.nc1_n, args.nc1_p
    gen = torch.Generator().manual_seed(0)
    y = torch.randperm(n, generator=gen) % C
    means = torch.randn(C, p, generator=gen)
    h = 3.0 + means[y] + 2.0 * torch.randn(n, p, generator=gen)  # float32, offset, noise
    (t_dense, v_dense), (t_stream, v_stream), (t_lean, v_lean), (t_32, v_32) = best_of(
        args.rounds * args.repeat, lambda: dense_nc1(h.numpy(), y.numpy()),
        lambda: streaming_nc1(h, y, args.nc1_batch),
        lambda: streaming_nc1(h, y, args.nc1_batch, sketch=0),
        lambda: streaming_nc1(h, y, args.nc1_batch, sketch=0, precision="float32"))
    diff = max(abs(v - v_dense) / abs(v_dense) for v in (v_stream, v_lean))
    speedup = t_dense / t_lean
    print(f"### P2: exact NC1 at p = {p:,}, N = {n:,}, C = {C}\n")
    print("| method | best time (s) | speed-up | nc1 |")
    print("|---|---|---|---|")
    print(f"| dense: p × p Σ_W, Σ_B, `np.linalg.pinv(hermitian=True)` | {t_dense:.3f} | 1x | "
          f"{v_dense:.12g} |")
    print(f"| streaming, all metrics incl. the stable-rank sketch, batches of {args.nc1_batch} | "
          f"{t_stream:.3f} | {t_dense / t_stream:.1f}x | {v_stream:.12g} |")
    print(f"| streaming without the stable-rank sketch (`metrics=` without stable_rank) | "
          f"{t_lean:.3f} | {speedup:.1f}x | {v_lean:.12g} |")
    print(f"| the same in float32 arithmetic (`precision=\"float32\"`) | {t_32:.3f} | "
          f"{t_dense / t_32:.1f}x | {v_32:.12g} |")
    print(f"\nP2 (exact nc1, no sketch): speed-up **{speedup:.1f}x** (target ≥ 50x): "
          f"{verdict(speedup >= 50)}; "
          f"relative difference of nc1 {diff:.1e} (target ≤ 1e-8): {verdict(diff <= 1e-8)}; "
          f"float32 arithmetic {abs(v_32 - v_dense) / abs(v_dense):.1e} (tests: ≤ 1e-5).\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="runs per fresh process")
    parser.add_argument("--nc1-n", type=int, default=10_000)
    parser.add_argument("--nc1-p", type=int, default=4096)
    parser.add_argument("--nc1-batch", type=int, default=500)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    blas = [f"{i['internal_api']} {i['num_threads']} threads"
            for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    malloc = " ".join(f"{k}={v}" for k, v in os.environ.items() if k.startswith("MALLOC_"))
    start = time.perf_counter()
    print(f"torch {torch.__version__}, {THREADS} torch threads, numpy BLAS: {', '.join(blas)}; "
          f"VGG11: {args.train:,} train + {args.test:,} test random images, batch {args.batch}, "
          f"each run in a fresh process; best of {args.rounds} rounds x {args.repeat} runs; "
          f"P2 best of {args.rounds * args.repeat}; load average {os.getloadavg()[0]:.2f}; "
          f"malloc environment: {malloc or 'glibc defaults'}\n")
    bench_vgg(args)
    bench_nc1(args)
    print(f"(script: {time.perf_counter() - start:.0f} s; load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
