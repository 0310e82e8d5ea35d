"""A feature-analysis job as the workflow runs it: a fresh Python process that analyses one
10,000 × 512 layer (UMAP, both agglomerative clusterings, retention), start-up included.

    python benchmarks/bench_features_job.py [--n 10000] [--p 512] [--warm 2]

Each job is a child process (``--child``) timed from before its interpreter starts to its
exit, with numba's disk cache in a fresh folder (``nclayers.numba_cache``, as the workflow's
``features`` rule passes ``--numba-cache``): the first job compiles UMAP's kernels and fills the
cache, the ``--warm`` jobs after it read them. The child builds its layer as
bench_features.py does (seconds reported apart: a real job loads its sample from disk) and
prints the seconds of each step. Issue 16 §1's goal: ≤ 20 s for a job on a warm cache. BLAS on
one thread, as in the workflow's one-thread rules.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(args: argparse.Namespace) -> None:
    from nclayers import numba_cache

    numba_cache.use_folder(args.numba_cache)  # before anything imports numba
    start = time.perf_counter()
    import numpy as np
    from threadpoolctl import threadpool_limits

    from nclayers import features as ft

    steps = {"imports": time.perf_counter() - start}
    with threadpool_limits(1):
        start = time.perf_counter()
        rng = np.random.default_rng(0)
        means = rng.standard_normal((10, args.p))
        means /= np.linalg.norm(means, axis=1, keepdims=True)
        y = np.arange(args.n) % 10
        x = np.maximum(means[y] + 0.06 * rng.standard_normal((args.n, args.p)), 0)
        x = x.astype(np.float32)
        steps["data"] = time.perf_counter() - start
        start = time.perf_counter()
        ft.umap_embedding(x, 0)
        steps["umap"] = time.perf_counter() - start
        ids = {}
        for method in ("cosine", "ward"):
            start = time.perf_counter()
            ids[method] = ft.cluster(x, y, method).ids
            steps[method] = time.perf_counter() - start
        start = time.perf_counter()
        ft.retention(ids["cosine"], ids["ward"])  # as between two layers: same cost
        steps["retention"] = time.perf_counter() - start
    print(json.dumps(steps))


def job(args: argparse.Namespace, cache: str) -> tuple[float, dict]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", "--numba-cache", cache,
                          "--n", str(args.n), "--p", str(args.p)],
                         check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - start, json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--p", type=int, default=512)
    parser.add_argument("--warm", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--numba-cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(f"| job ({args.n:,} × {args.p}) | process wall | of it: imports | UMAP | cosine "
          "| ward | retention | wall less making the data |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        cache = str(Path(folder) / "numba")
        for i in range(1 + args.warm):
            wall, steps = job(args, cache)
            name = "cold cache (compiles)" if i == 0 else f"warm cache {i}"
            cells = " | ".join(f"{steps[k]:.2f} s"
                               for k in ("imports", "umap", "cosine", "ward", "retention"))
            print(f"| {name} | {wall:.1f} s | {cells} | "
                  f"**{wall - steps['data']:.1f} s** |",
                  flush=True)


if __name__ == "__main__":
    main()
