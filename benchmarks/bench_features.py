"""Feature analysis at full size: UMAP, both agglomerative clusterings and retention per layer.

    python benchmarks/bench_features.py [--n 10000] [--p 512] [--layers 3] [--seed 0]

Data: per layer, n points of p dimensions from a Gaussian mixture of 10 classes (class means
random unit vectors, through a ReLU), less noise and a smaller scale with depth, like
activations towards collapse. The clusterings' cost depends on n and p, not on the structure.
Each step runs in a child forked for it, so its memory is its own: the growth of the child's
peak RSS (ru_maxrss, which starts at the RSS at the fork) over the run. numba compiles UMAP's
kernels once per process (~20 s, not cached on disk); that is timed once, up front, and the
children inherit the compiled code. Prints a Markdown table for benchmarks/README.md.
Target: UMAP + both clusterings + retention ≤ 60 s per layer on 2 cores.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import time

import numpy as np

from nclayers import features as ft


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def layer_features(n: int, p: int, depth: int, rng: np.random.Generator,
                   means: np.ndarray, y: np.ndarray) -> np.ndarray:
    noise, scale = 0.06 / (depth + 1), 0.5 ** depth
    x = means[y] + noise * rng.standard_normal((n, p))
    return np.maximum(scale * x, 0).astype(np.float32)


def _measured(func, args):
    before, start = peak_mib(), time.perf_counter()
    out = func(*args)
    return out, time.perf_counter() - start, peak_mib() - before


def timed(step: str, row: dict, func, *args):
    """``func(*args)`` in a forked child; its seconds and peak-RSS growth go into ``row``."""
    with multiprocessing.get_context("fork").Pool(1) as pool:
        out, row[step], row[f"{step}_mem"] = pool.apply(_measured, (func, args))
    return out


def retentions(previous: dict, current: dict) -> list[float]:
    return [ft.retention(np.where(previous[m].induced >= 0, previous[m].ids, -1),
                         current[m].ids) for m in current]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--p", type=int, default=512)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    need = ft.check_sample_size(args.n)  # refuses before anything runs if it would not fit
    rng = np.random.default_rng(args.seed)
    means = rng.standard_normal((10, args.p))
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    y = np.arange(args.n) % 10
    print(f"# {args.n:,} points x {args.p} dims, {args.layers} layers; "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); "
          f"clustering needs ~{need / 2**20:.0f} MiB by check_sample_size; "
          f"start peak RSS {peak_mib():.0f} MiB", flush=True)

    start = time.perf_counter()
    ft.umap_embedding(rng.standard_normal((4500, 8)).astype(np.float32), args.seed)
    compile_s = time.perf_counter() - start
    print(f"numba compilation + a 4,500-point UMAP (once per process): {compile_s:.1f} s",
          flush=True)

    rows, previous = [], None
    for depth in range(args.layers):
        x = layer_features(args.n, args.p, depth, rng, means, y)
        row: dict = {"layer": depth}
        timed("umap", row, ft.umap_embedding, x, args.seed)
        cos = timed("cosine", row, ft.cluster, x, y, "cosine")
        ward = timed("ward", row, ft.cluster, x, y, "ward")
        current = {m: r for m, r in (("cosine", cos), ("ward", ward))}
        if previous is not None:
            timed("retention", row, retentions, previous, current)
        else:
            row["retention"], row["retention_mem"] = 0.0, 0.0
        row["total"] = sum(row[k] for k in ("umap", "cosine", "ward", "retention"))
        timed("pca", row, ft.pca, x, args.seed)
        timed("sparsity", row, ft.sparsity, x)
        row["peak"] = peak_mib() + max(v for k, v in row.items() if k.endswith("_mem"))
        row["clusters"] = (f"cos {cos.summary['clusters']:.0f} / acc "
                           f"{cos.summary['accuracy']:.2f}; ward {ward.summary['clusters']:.0f}"
                           f" / acc {ward.summary['accuracy']:.2f}")
        rows.append(row)
        previous = current
        print(f"layer {depth}: {row['total']:.1f} s (umap {row['umap']:.1f}, cosine "
              f"{row['cosine']:.1f}, ward {row['ward']:.1f}, retention {row['retention']:.3f}); "
              f"pca {row['pca']:.1f}, sparsity {row['sparsity']:.2f}; {row['clusters']}",
              flush=True)

    print(f"\nOnce per process: numba compilation + a 4,500-point UMAP, {compile_s:.1f} s.\n")
    print("| layer | UMAP | cosine/complete | ward | retention "
          "| **UMAP + clusterings + retention** | PCA | sparsity | clusters (acc.) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r[k]:.2f} s / +{r[k + '_mem']:.0f} MiB"
                 for k in ("umap", "cosine", "ward", "retention")]
        print(f"| {r['layer']} | {' | '.join(cells)} | **{r['total']:.1f} s** | "
              f"{r['pca']:.2f} s / +{r['pca_mem']:.0f} MiB | {r['sparsity']:.2f} s / "
              f"+{r['sparsity_mem']:.0f} MiB | {r['clusters']} |")
    print(f"\nPeak RSS of parent (data, {args.layers} layers) + the largest step: "
          f"{max(r['peak'] for r in rows):.0f} MiB; check_sample_size budgets "
          f"{need / 2**20:.0f} MiB for one clustering.")


if __name__ == "__main__":
    main()
