"""umap-learn's all-pairs distances below 4,096 points: scikit-learn's ``pairwise_distances`` on
umap's numba cosine (one Python call per pair, what umap-learn does) against
``features.numba_pairwise_distances`` (one compiled loop), and a whole ``umap_embedding`` of the
same layer with each. Both give the same matrix and the same embedding, bitwise (checked here).

    python benchmarks/bench_umap_pairs.py [--sizes 500x256 2000x512] [--repeats 3]

The compiled loop's compilation (once per process) is timed apart. One BLAS thread, as the
workflow's one-thread ``features`` jobs.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def best(fn, repeats: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["500x256", "2000x512"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import umap
    from sklearn.metrics import pairwise_distances
    from umap.distances import cosine

    from nclayers import features as ft
    from nclayers import numba_cache

    numba_cache.enable()
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    ft.numba_pairwise_distances(rng.random((3, 4), dtype=np.float32), cosine)
    print(f"compiling the loop (once per process): {time.perf_counter() - start:.2f} s")
    for size in args.sizes:
        n, p = map(int, size.split("x"))
        x = np.maximum(rng.standard_normal((n, p)), 0).astype(np.float32)  # post-ReLU-like
        naive_s, naive = best(lambda x=x: pairwise_distances(x, metric=cosine), args.repeats)
        fast_s, fast = best(lambda x=x: ft.numba_pairwise_distances(x, cosine), args.repeats)
        assert np.array_equal(naive, fast), "the matrices differ"
        print(f"{n} x {p}: all pairs  scikit-learn {naive_s:.3f} s, compiled loop {fast_s:.3f} s"
              f" ({naive_s / fast_s:.0f}x), equal bitwise")

        def own(x=x):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                reducer = umap.UMAP(n_neighbors=ft.UMAP_NEIGHBOURS, metric="cosine",
                                    n_components=2, random_state=0)
                return reducer.fit_transform(x)

        own_s, own_embedding = best(own, 1)
        ours_s, ours = best(lambda x=x: ft.umap_embedding(x, seed=0), 1)
        assert np.array_equal(own_embedding, ours), "the embeddings differ"
        print(f"{n} x {p}: UMAP  umap-learn as it is {own_s:.2f} s, with the compiled loop "
              f"{ours_s:.2f} s ({own_s / ours_s:.2f}x), equal bitwise")


if __name__ == "__main__":
    main()
