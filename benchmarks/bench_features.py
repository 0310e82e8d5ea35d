"""Feature analysis at full size: UMAP, both agglomerative clusterings and retention per layer.

    python benchmarks/bench_features.py [--n 10000] [--p 512] [--layers 3] [--seed 0]
                                        [--blas-threads 1]

Data: per layer, n points of p dimensions from a Gaussian mixture of 10 classes (class means
random unit vectors, through a ReLU), less noise and a smaller scale with depth, like
activations towards collapse. The clusterings' cost depends on n and p, not on the structure.
Memory of a step: the growth of the peak RSS (ru_maxrss) over the RSS before it, with the peak
reset before each step (``/proc/self/clear_refs``), so that each step's peak is its own. numba
compiles UMAP's kernels once per process (~20 s, not cached on disk): timed once, up front.
BLAS runs on one thread by default, as in the workflow's one-thread rules: UMAP (seeded) and the
clusterings (scipy) are single-threaded anyway, and on a busy 2-core machine multi-threaded
OpenBLAS made PCA's 512 × 512 eigh ~100× slower (3.9 s instead of 0.03 s).
Prints a Markdown table for benchmarks/README.md.
Target: UMAP + both clusterings + retention ≤ 60 s per layer on 2 cores.

Then, on the first layer, each clustering the naive way against ours in the same run:
scikit-learn's ``AgglomerativeClustering`` (scipy's ``pdist``, then its linkage) against
``features.agglomerative_labels`` (``features.condensed_distances`` from matrix products, then
the same linkage), split into distances and linkage, with the labels checked equal.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import numpy as np
from threadpoolctl import threadpool_limits

from nclayers import features as ft


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak() -> bool:
    """Reset the peak RSS to the current RSS (Linux ≥ 4.0), so a step's peak is its own."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def layer_features(n: int, p: int, depth: int, rng: np.random.Generator,
                   means: np.ndarray, y: np.ndarray) -> np.ndarray:
    noise, scale = 0.06 / (depth + 1), 0.5 ** depth
    x = means[y] + noise * rng.standard_normal((n, p))
    return np.maximum(scale * x, 0).astype(np.float32)


def timed(step: str, row: dict, func, *args):
    """``func(*args)``; its seconds and peak-RSS growth over the RSS before it go into ``row``."""
    reset_peak()
    before, start = rss_mib(), time.perf_counter()
    out = func(*args)
    row[step] = time.perf_counter() - start
    row[f"{step}_mem"] = peak_mib() - before
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
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args()
    with threadpool_limits(args.blas_threads):
        run(args)


def run(args: argparse.Namespace) -> None:

    need = ft.check_sample_size(args.n)  # refuses before anything runs if it would not fit
    if not reset_peak():
        print("# cannot reset the peak RSS here: memory columns are cumulative peaks")
    rng = np.random.default_rng(args.seed)
    means = rng.standard_normal((10, args.p))
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    y = np.arange(args.n) % 10
    print(f"# {args.n:,} points x {args.p} dims, {args.layers} layers; "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
          f"{args.blas_threads} BLAS thread(s); "
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
        row["peak"] = rss_mib() + max(v for k, v in row.items() if k.endswith("_mem"))
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
    print(f"\nPeak RSS (the process's RSS + the largest step's growth): "
          f"{max(r['peak'] for r in rows):.0f} MiB; check_sample_size budgets "
          f"{need / 2**20:.0f} MiB for one clustering.")
    compare_clusterings(layer_features(args.n, args.p, 0, rng, means, y))


def compare_clusterings(x: np.ndarray) -> None:
    """scikit-learn's clustering against ours on one layer: seconds of each part, labels equal."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import pdist
    from sklearn.cluster import AgglomerativeClustering

    print("\n| method | pdist | linkage | scikit-learn in all | condensed_distances "
          "| ours in all | ratio | labels equal |")
    print("|---|---|---|---|---|---|---|---|")
    for method, params in ft.METHODS.items():
        points = ft.scale_for_ward(x) if method == "ward" else x
        start = time.perf_counter()
        expected = AgglomerativeClustering(n_clusters=None, **params).fit(points).labels_
        naive = time.perf_counter() - start
        start = time.perf_counter()
        ours = ft.agglomerative_labels(points, **params)
        fast = time.perf_counter() - start
        t = {}
        for name, func in (("pdist", pdist), ("condensed", ft.condensed_distances)):
            start = time.perf_counter()
            condensed = func(points.astype(np.float64), params["metric"])
            t[name] = time.perf_counter() - start
        start = time.perf_counter()
        linkage(condensed, method=params["linkage"])
        t["linkage"] = time.perf_counter() - start
        print(f"| {method} | {t['pdist']:.2f} s | {t['linkage']:.2f} s | {naive:.2f} s | "
              f"{t['condensed']:.2f} s | {fast:.2f} s | **{naive / fast:.1f}x** | "
              f"{np.array_equal(expected, ours)} |", flush=True)


if __name__ == "__main__":
    main()
