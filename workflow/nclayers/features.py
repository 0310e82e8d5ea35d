"""Feature analysis of every tapped layer (lindegaard2023 §3.4–4.4, App. C).

On one class-balanced activation sample per run (the input is layer 0):

- :func:`umap_embedding`: UMAP 2-D, cosine metric, 20 neighbours (§3.4.1, §4.3.1);
- :func:`cluster`: agglomerative clustering, cosine + complete linkage at 0.7 (§4.3.2) and
  euclidean + ward at 0.5 (App. C.2.2.1) on features scaled by :func:`scale_for_ward`
  (docs/ward_scaling.md); clusters of ≥ 3 points take their majority class, smaller ones are
  excluded (Tables 4.3.1, C.2.1); a sample too large to cluster in memory is clustered on a
  seeded class-balanced subsample (:func:`clustering_index`);
- :func:`retention`: hierarchy retention between consecutive layers (eq. 4.1, Table 4.3.2);
- :func:`pca`: covariance spectrum, and the ℓ1 norm and "corresponding dimensionality"
  d = π‖v‖₁²/2 of each unit principal direction against a random orthonormal basis (§3.5);
- :func:`sparsity`: share of exact zeros per unit, mean and std of the nonzero activations
  (eq. 4.2, §4.4.3).

Everything but :func:`sample_activations` is a pure function of numpy arrays;
:func:`analyse_layers` runs all of them on a sample and returns tidy DataFrames (their columns:
``vocabulary.FEATURE_COLUMNS``); their LaTeX tables are in :mod:`nclayers.tables`.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from nclayers.cluster_matrix import MIN_CLUSTER
from nclayers.io import atomic_path
from nclayers.splits import SmallClass, balanced_index
from nclayers.taps import layer_names, tap
from nclayers.vocabulary import FEATURE_COLUMNS, WARD_SCALINGS

# Clustering methods of the thesis: cosine + complete linkage at 0.7 (§4.3.2) and euclidean + ward
# at 0.5 (App. C.2.2.1, which names no scaling of the features).
METHODS: dict[str, dict[str, Any]] = {
    "cosine": {"metric": "cosine", "linkage": "complete", "distance_threshold": 0.7},
    "ward": {"metric": "euclidean", "linkage": "ward", "distance_threshold": 0.5},
}
# What the ward method clusters: a fixed threshold of 0.5 means nothing without a scale, and raw
# activations have whatever scale training left them (docs/ward_scaling.md has the evidence):
# - "mean_norm" (default): the layer divided by its samples' mean euclidean norm, one scalar per
#   layer: the geometry is the raw one, the threshold 0.5 becomes half the typical norm;
# - "l2": every sample on the unit sphere (thesis §3.4 footnote 2, "normalization to the
#   1-sphere"), where ‖x − y‖² = 2 − 2 cos(x, y): ward on cosine geometry;
# - "raw": the activations as they are (every point is its own cluster unless the network's
#   activations are far smaller than the threshold, as the thesis' long-trained MLP's were).
# (vocabulary.WARD_SCALINGS: the command line offers them without importing this module)
DEFAULT_WARD_SCALING = "mean_norm"
UMAP_NEIGHBOURS = 20  # §4.3.1
# From this many points on, umap-learn finds the neighbours approximately with PyNNDescent,
# whose numba functions cannot be cached on disk (~20 s of compilation in every process):
# umap_embedding gives it the exact ones instead (cosine_knn, ~1 s at 10,000 × 512). Below it,
# umap-learn computes them exactly itself.
UMAP_EXACT_FROM = 4096
# Below it, umap-learn's all-pairs distances come from a compiled loop where the pairs of all
# of a process's embeddings pay for its compilation (~0.7 s once per process; scikit-learn's
# pairwise_distances takes ~1.7 µs a pair, the loop ~0.1–0.3: benchmarks/bench_umap_pairs.py).
COMPILED_PAIRS_FROM = 400_000
EXPLAINED = 0.99  # n_components_99: first k with 1 − cumulative share < 0.01 (Fig. 4.4.1b)

# scikit-learn (scipy's linkage underneath) holds the condensed distance matrix, n(n−1)/2
# float64, and a working copy of it: the peak RSS growth measured for n = 3,000 … 14,000 points
# of 512 dimensions is 1.85–2.03 × the condensed matrix, for both methods.
DISTANCE_COPIES = 2
# condensed_distances: a pair whose squared distance is below this share of ‖a‖² + ‖b‖² is
# computed from a − b (the product form loses ~log10(1/share) digits to cancellation there).
CANCELLATION = 1e-3
DEFAULT_MAX_BYTES = 2 * 2**30
_RESERVED = ("labels", "pred", "index", "layers")


# --- the activation sample -------------------------------------------------------------------

def class_balanced_index(y: Tensor | np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted positions of ``per_class`` samples of each class present in ``y``, drawn with a
    generator of ``seed`` (the same seed gives the same sample on any machine)."""
    if not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"features.per_class must be a positive integer, got {per_class!r}")
    labels = y if isinstance(y, Tensor) else torch.as_tensor(np.asarray(y))
    try:
        return balanced_index(labels, per_class, torch.Generator().manual_seed(seed)).numpy()
    except SmallClass as small:
        raise ValueError(f"features.per_class = {per_class}, but class {small.label} has only "
                         f"{small.count} samples in this split; lower features.per_class"
                         ) from None


def sample_activations(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    layers: Sequence[str | nn.Module] | None = None,
    per_class: int = 1000,
    seed: int = 0,
    batch_size: int = 1024,
    max_bytes: float | None = DEFAULT_MAX_BYTES,
) -> dict[str, Any]:
    """A class-balanced sample of the split ``(x, y)`` and its activations at ``layers``.

    One no-grad pass in eval mode; ``layers`` default to ``model.tapped_layers``. Returns
    ``{"labels": (n,), "pred": (n,) network predictions, "index": (n,) positions in the split,
    "layers": [names], name: float32 (n, p) flattened activations}``. The size is checked
    against ``max_bytes`` (see :func:`check_sample_size`) before the pass; None skips that.
    """
    if layers is None:
        if not hasattr(model, "tapped_layers"):
            raise ValueError("pass layers=[...]: the model has no `tapped_layers` attribute")
        layers = model.tapped_layers
    names = layer_names(model, layers)
    clash = sorted(set(names) & set(_RESERVED))
    if clash:
        raise ValueError(f"layer names {clash} clash with the sample's own keys {_RESERVED}")
    index = class_balanced_index(y, per_class, seed)
    if max_bytes is not None:
        check_sample_size(len(index), max_bytes)
    device = next(model.parameters()).device
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in names}
    preds = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), tap(model, names) as acts:
            for start in range(0, len(index), batch_size):
                idx = torch.as_tensor(index[start:start + batch_size], device=x.device)
                out = model(x[idx].to(device))
                preds.append(out.argmax(dim=1).cpu().numpy())
                for name in names:
                    chunks[name].append(acts[name].flatten(1).float().cpu().numpy())
    finally:
        model.train(was_training)
    labels = (y.cpu() if isinstance(y, Tensor) else torch.as_tensor(y)).numpy()[index]
    sample: dict[str, Any] = {"labels": labels.astype(np.int64),
                              "pred": np.concatenate(preds).astype(np.int64),
                              "index": index.astype(np.int64), "layers": list(names)}
    sample.update({name: np.concatenate(chunks[name]) for name in names})
    return sample


def save_sample(path: str | Path, sample: dict[str, Any]) -> None:
    """Write a sample to one uncompressed ``.npz`` (activations barely compress), atomically."""
    arrays = {key: np.asarray(sample[key]) for key in ("labels", "pred", "index")}
    arrays["layers"] = np.asarray(sample["layers"], dtype=str)
    # Positional keys: layer names may hold characters that are awkward as zip members.
    arrays.update({f"layer_{i}": np.asarray(sample[name], dtype=np.float32)
                   for i, name in enumerate(sample["layers"])})
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: no ".npz" appended
        np.savez(f, **arrays)


def load_sample(path: str | Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as z:
        names = [str(name) for name in z["layers"]]
        sample: dict[str, Any] = {key: z[key] for key in ("labels", "pred", "index")}
        sample["layers"] = names
        sample.update({name: z[f"layer_{i}"] for i, name in enumerate(names)})
    return sample


def check_sample_size(n: int, max_bytes: float = DEFAULT_MAX_BYTES) -> int:
    """Bytes agglomerative clustering of ``n`` points needs; ValueError if over ``max_bytes``.

    Memory is quadratic in the sample: ``DISTANCE_COPIES`` condensed distance matrices of
    n(n−1)/2 float64 (10,000 points: 763 MiB). Time is quadratic too.
    """
    need = clustering_bytes(n)
    if need > max_bytes:
        n_max = max_points(max_bytes)
        raise ValueError(
            f"a feature sample of {n:,} points needs about {need / 2**30:.2f} GiB for "
            f"agglomerative clustering ({DISTANCE_COPIES} condensed distance matrices of "
            f"n(n-1)/2 float64), over the budget of {max_bytes / 2**30:.2f} GiB: raise "
            f"features.memory_gib to {math.ceil(need / 2**30 * 10) / 10:g} or lower "
            f"features.per_class so that per_class x classes <= {n_max:,}")
    return need


def clustering_bytes(n: int) -> int:
    """Bytes agglomerative clustering of ``n`` points holds (see :data:`DISTANCE_COPIES`)."""
    return DISTANCE_COPIES * 8 * n * (n - 1) // 2


def max_points(max_bytes: float = DEFAULT_MAX_BYTES) -> int:
    """The most points whose agglomerative clustering fits ``max_bytes``."""
    n = int((1 + math.sqrt(1 + 4 * max_bytes / (4 * DISTANCE_COPIES))) / 2)
    while clustering_bytes(n + 1) <= max_bytes:
        n += 1
    while n > 1 and clustering_bytes(n) > max_bytes:
        n -= 1
    return n


def clustering_index(labels: np.ndarray, max_bytes: float | None = DEFAULT_MAX_BYTES,
                     seed: int = 0) -> np.ndarray:
    """Positions in the sample of the points the clustering uses: all of them where their
    clustering fits ``max_bytes`` (or ``max_bytes`` is None); else a class-balanced subsample
    of ``max_points(max_bytes) // classes`` per class drawn with ``seed``
    (:func:`class_balanced_index`: the same points on any machine), sorted. Every layer
    clusters the same points, so that retention compares like with like."""
    labels = np.asarray(labels, dtype=np.int64)
    if max_bytes is None or clustering_bytes(len(labels)) <= max_bytes:
        return np.arange(len(labels))
    per_class = max_points(max_bytes) // max(len(np.unique(labels)), 1)
    if per_class < MIN_CLUSTER:
        raise ValueError(f"a clustering budget of {max_bytes:,.0f} bytes leaves fewer than "
                         f"{MIN_CLUSTER} points per class")
    return class_balanced_index(labels, per_class, seed)


# --- clustering and retention ----------------------------------------------------------------

class Clustering(NamedTuple):
    ids: np.ndarray  # (n,) cluster of each point
    induced: np.ndarray  # (n,) majority class of its cluster; -1 if the cluster is < 3 points
    summary: dict[str, float]  # one row of Table 4.3.1


def scale_for_ward(features: np.ndarray, scaling: str = DEFAULT_WARD_SCALING) -> np.ndarray:
    """The rows of ``features`` as the ward method clusters them (see :data:`WARD_SCALINGS`):
    ``mean_norm`` divides by the mean row norm (a zero layer stays zero), ``l2`` puts every
    nonzero row on the unit sphere (zero rows stay zero), ``raw`` leaves them; float64."""
    if scaling not in WARD_SCALINGS:
        raise ValueError(f"unknown ward scaling {scaling!r}; known: {', '.join(WARD_SCALINGS)}")
    x = np.asarray(features, dtype=np.float64)
    if scaling == "raw" or len(x) == 0:
        return x
    norms = np.linalg.norm(x, axis=1)
    if scaling == "l2":
        return x / np.where(norms > 0, norms, 1.0)[:, None]
    mean = norms.mean()
    return x / mean if mean > 0 else x


def cluster(features: np.ndarray, labels: np.ndarray, method: str = "cosine",
            threshold: float | None = None,
            ward_scaling: str = DEFAULT_WARD_SCALING) -> Clustering:
    """Agglomerative clustering of the rows of ``features`` by ``method`` (see :data:`METHODS`;
    ``threshold`` overrides its distance threshold), with the labels clusters induce. The ward
    method clusters ``scale_for_ward(features, ward_scaling)``; cosine ignores the scaling.

    A cluster of ≥ 3 points takes its majority class (ties: the lowest class); the points of
    smaller clusters are excluded (induced −1). Summary: ``points``, ``clusters`` (of ≥ 3
    points), ``small_clusters``, ``avg_points`` (points per cluster of ≥ 3), ``accuracy``
    (induced = true label, on the non-excluded points), ``excluded`` (points). Deterministic.
    """
    if method not in METHODS:
        raise ValueError(f"unknown clustering method {method!r}; known: {', '.join(METHODS)}")
    if ward_scaling not in WARD_SCALINGS:
        raise ValueError(f"unknown ward scaling {ward_scaling!r}; known: "
                         f"{', '.join(WARD_SCALINGS)}")
    params = dict(METHODS[method])
    if threshold is not None:
        params["distance_threshold"] = threshold
    x = np.asarray(features)
    if method == "ward":
        x = scale_for_ward(x, ward_scaling)
    labels = np.asarray(labels, dtype=np.int64)
    n = len(x)
    # A zero vector has no direction: under cosine it is a cluster of its own (so excluded);
    # scikit-learn refuses it, and dead post-ReLU samples do occur.
    rows = np.any(x != 0, axis=1) if params["metric"] == "cosine" else np.ones(n, dtype=bool)
    ids = np.empty(n, dtype=np.int64)
    if rows.sum() >= 2:
        ids[rows] = agglomerative_labels(x[rows], **params)
    else:
        ids[rows] = np.arange(rows.sum())
    first = ids[rows].max() + 1 if rows.any() else 0
    ids[~rows] = first + np.arange((~rows).sum())
    return Clustering(ids, *_induce(ids, labels))


def condensed_distances(x: np.ndarray, metric: str, block: int = 1024) -> np.ndarray:
    """scipy's ``pdist(x, metric)`` for ``metric`` "cosine" or "euclidean", from matrix products
    (BLAS) instead of scipy's pair-by-pair loop, and equal to it to rounding (cosine: 1 − the
    dot product of the unit rows; euclidean: √(‖a‖² + ‖b‖² − 2a·b), or from a − b itself for
    pairs closer than :data:`CANCELLATION` of their squared norms).
    Rows of ``block`` samples at a time, so that no n × n matrix is ever held."""
    x = np.asarray(x, dtype=np.float64)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    elif metric != "euclidean":
        raise ValueError(f"unknown metric {metric!r}; known: cosine, euclidean")
    n = len(x)
    squares = np.einsum("ij,ij->i", x, x)
    out = np.empty(n * (n - 1) // 2)
    for first in range(0, n, block):
        gram = x[first:first + block] @ x[first:].T
        for r in range(first, min(first + block, n)):
            dots = gram[r - first, r - first + 1:]
            start = r * n - r * (r + 1) // 2  # where row r's pairs (r, r+1 …) begin
            seg = out[start:start + n - r - 1]
            if metric == "cosine":
                np.subtract(1.0, dots, out=seg)
            else:
                scale = squares[r] + squares[r + 1:]
                np.subtract(scale, 2 * dots, out=seg)
                # ‖a‖² + ‖b‖² − 2a·b cancels for close pairs (a repeated row would come out
                # at ~1e-7, not 0): those pairs are computed from their difference, as pdist.
                close = np.flatnonzero(seg < CANCELLATION * scale) + r + 1
                np.maximum(seg, 0.0, out=seg)
                np.sqrt(seg, out=seg)
                if len(close):
                    seg[close - r - 1] = np.sqrt(((x[close] - x[r]) ** 2).sum(axis=1))
    if metric == "cosine":
        np.clip(out, 0.0, 2.0, out=out)  # pdist's cosine is never outside [0, 2] either
    return out


def agglomerative_labels(x: np.ndarray, metric: str, linkage: str,
                         distance_threshold: float) -> np.ndarray:
    """The labels of scikit-learn's ``AgglomerativeClustering(n_clusters=None, metric=metric,
    linkage=linkage, distance_threshold=distance_threshold).fit(x)``, by scikit-learn's own
    steps (scipy's linkage, then its cut of the tree: every merge at or above the threshold
    splits a cluster) from :func:`condensed_distances` instead of scipy's slower ``pdist``."""
    from scipy.cluster.hierarchy import linkage as scipy_linkage
    from sklearn.cluster._agglomerative import _hc_cut

    tree = scipy_linkage(condensed_distances(x, metric), method=linkage)
    n_clusters = int(np.count_nonzero(tree[:, 2] >= distance_threshold)) + 1
    return _hc_cut(n_clusters, tree[:, :2].astype(np.intp), len(x))


def _induce(ids: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    counts = np.zeros((ids.max() + 1, labels.max() + 1), dtype=np.int64)
    np.add.at(counts, (ids, labels), 1)
    sizes = counts.sum(axis=1)
    kept = sizes >= MIN_CLUSTER
    majority = np.where(kept, counts.argmax(axis=1), -1)
    induced = majority[ids]
    scored = induced >= 0
    summary = {
        "points": float(len(ids)),
        "clusters": float(kept.sum()),
        "small_clusters": float(((sizes > 0) & ~kept).sum()),
        "avg_points": float(sizes[kept].mean()) if kept.any() else math.nan,
        "accuracy": float((induced[scored] == labels[scored]).mean()) if scored.any()
        else math.nan,
        "excluded": float((~scored).sum()),
    }
    return induced, summary


def retention(clusters_from: np.ndarray, clusters_to: np.ndarray) -> float:
    """Hierarchy retention, thesis eq. 4.1: (1/N) Σ_{a ∈ A^ℓ} max_{a' ∈ A^{ℓ+1}} |a ∩ a'|.

    ``clusters_from`` are the cluster ids at layer ℓ, negative for points to leave out (the
    excluded ones: A^ℓ are the clusters of ≥ 3 points, N their points); ``clusters_to`` the
    complete ids at layer ℓ+1. NaN when nothing is left at ℓ (Table C.2.2 prints "-" there).
    """
    a, b = np.asarray(clusters_from), np.asarray(clusters_to)
    keep = a >= 0
    if not keep.any():
        return math.nan
    a_idx = np.unique(a[keep], return_inverse=True)[1]
    b_idx = np.unique(b[keep], return_inverse=True)[1]
    width = int(b_idx.max()) + 1
    pairs, counts = np.unique(a_idx.astype(np.int64) * width + b_idx, return_counts=True)
    best = np.zeros(int(a_idx.max()) + 1, dtype=np.int64)
    np.maximum.at(best, pairs // width, counts)  # largest overlap of each cluster a
    return float(best.sum() / keep.sum())


# --- UMAP, PCA, sparsity -----------------------------------------------------------------------

def umap_embedding(features: np.ndarray, seed: int, *, embeddings: int = 1) -> np.ndarray:
    """UMAP to 2-D (cosine, 20 neighbours, exact nearest neighbours at every size); (n, 2)
    float32. ``embeddings``: how many embeddings of this many points the process computes (a
    model's layers), which decides whether umap-learn's all-pairs distances are worth compiling
    (:data:`COMPILED_PAIRS_FROM`); the embedding is the same either way.

    ``random_state`` makes umap-learn run single-threaded, which is what makes the result
    identical for the same seed. numba compiles UMAP's kernels on the first call of a process
    (~20 s) unless its disk cache holds them (:mod:`nclayers.numba_cache`, enabled here).
    """
    import umap

    from nclayers import numba_cache

    numba_cache.enable()

    x = np.asarray(features, dtype=np.float32)
    knn = cosine_knn(x, UMAP_NEIGHBOURS) if len(x) >= UMAP_EXACT_FROM else (None, None, None)
    with warnings.catch_warnings():
        # "n_jobs overridden to 1 by setting random_state": intended, see above; "no search
        # index": only transform() would need one.
        warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*knn_search_index.*", category=UserWarning)
        reducer = umap.UMAP(n_neighbors=UMAP_NEIGHBOURS, metric="cosine", n_components=2,
                            random_state=seed, precomputed_knn=knn)
        pairs = embeddings * len(x) * (len(x) - 1) // 2
        with _umap_pairs_in_numba() if pairs >= COMPILED_PAIRS_FROM else nullcontext():
            return np.asarray(reducer.fit_transform(x), dtype=np.float32)


@contextmanager
def _umap_pairs_in_numba() -> Iterator[None]:
    """Below UMAP_EXACT_FROM points umap-learn computes all distances with scikit-learn's
    ``pairwise_distances`` on its numba metric, which calls the metric from Python once per
    pair (0.24 s of a 500 × 256 layer, a third of its UMAP). Within this block umap-learn's
    module gets :func:`numba_pairwise_distances` instead, where it gives the same matrix
    bitwise; anything else goes to scikit-learn as before. The swap is process-wide and not
    reentrant: nclayers runs UMAP from one thread."""
    import umap.umap_ as umap_module

    sklearn_pairwise = umap_module.pairwise_distances

    def pairwise(x, y=None, metric="euclidean", **kwds):
        if y is None and not kwds and _exact_in_a_loop(metric) and isinstance(x, np.ndarray) \
                and x.ndim == 2 and x.size and x.flags.c_contiguous and np.isfinite(x).all():
            return numba_pairwise_distances(x, metric)
        return sklearn_pairwise(x, y, metric=metric, **kwds)  # (its errors, too)

    umap_module.pairwise_distances = pairwise
    try:
        yield
    finally:
        umap_module.pairwise_distances = sklearn_pairwise


def _exact_in_a_loop(metric: object) -> bool:
    """A numba-compiled metric without fastmath: compiled into another loop, its arithmetic is
    what it is alone (fastmath lets the compiler reorder sums differently in each place:
    umap's euclidean is off by up to 4e-15 in some compile orders; its cosine has no fastmath)."""
    options = getattr(metric, "targetoptions", None)
    return hasattr(metric, "py_func") and options is not None and not options.get("fastmath")


def numba_pairwise_distances(x: np.ndarray, metric: Callable) -> np.ndarray:
    """scikit-learn's ``pairwise_distances(x, metric=metric)`` for a numba-compiled ``metric``
    without fastmath, in its arithmetic and order: the upper triangle, made symmetric by adding
    its transpose, then the diagonal, metric(x_i, x_i) (not always 0)."""
    if not _exact_in_a_loop(metric):
        raise ValueError(f"{getattr(metric, '__name__', metric)!r} is not a numba function "
                         "without fastmath: its distances here could differ from scikit-learn's "
                         "in the last bits; use sklearn.metrics.pairwise_distances")
    upper, diagonal = _pairs_kernel()(x, metric)
    out = upper + upper.T
    out[np.diag_indices(len(x))] = diagonal
    return out


@functools.cache
def _pairs_kernel() -> Callable:
    """The compiled loop of :func:`numba_pairwise_distances` (~0.7 s once per process and
    metric; not cached on disk, where it would outlive a change of the metric's code)."""
    import numba

    @numba.njit
    def pairs(x, metric):
        n = x.shape[0]
        upper, diagonal = np.zeros((n, n)), np.zeros(n)
        for i in range(n):
            diagonal[i] = metric(x[i], x[i])
            for j in range(i + 1, n):
                upper[i, j] = metric(x[i], x[j])
        return upper, diagonal

    return pairs


def cosine_knn(x: np.ndarray, k: int, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The exact ``k`` nearest neighbours of each row under cosine distance, the point itself
    included, as umap-learn's ``precomputed_knn`` takes them: (indices int64, distances
    float32), each (n, k), nearest first. Zero rows follow umap's cosine: at distance 1 from
    every other row and 0 from each other. From matrix products, ``block`` rows at a time."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1)
    zero = norms == 0
    unit = x / np.where(zero, 1.0, norms)[:, None]
    n = len(x)
    indices = np.empty((n, k), dtype=np.int64)
    distances = np.empty((n, k), dtype=np.float32)
    for first in range(0, n, block):
        rows = np.arange(first, min(first + block, n))
        d = np.clip(1.0 - unit[rows] @ unit.T, 0.0, 2.0)
        d[np.ix_(zero[rows], zero)] = 0.0
        d[np.arange(len(rows)), rows] = 0.0
        nearest = np.argpartition(d, k - 1, axis=1)[:, :k]
        near = np.take_along_axis(d, nearest, axis=1)
        order = np.argsort(near, axis=1, kind="stable")
        indices[rows] = np.take_along_axis(nearest, order, axis=1)
        distances[rows] = np.take_along_axis(near, order, axis=1)
    return indices, distances


def l1_dimension(l1: np.ndarray | float) -> np.ndarray | float:
    """"Corresponding dimensionality" of a unit vector of ℓ1 norm ``l1`` (§3.5.2): a uniform
    unit vector in R^d has E‖v‖₁ ≈ √(2d/π), so d = π‖v‖₁²/2 (a coordinate axis: π/2)."""
    return math.pi * np.square(l1) / 2


def pca(features: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Spectrum of the covariance of the rows of ``features`` and the ℓ1 sparsity of its unit
    principal directions (§3.5), against a seeded Haar-random orthonormal basis of equal size.

    Returns ``eigenvalues`` (descending), ``share``, ``cumulative``, ``n_components_99``
    (the first k, from 1, with 1 − cumulative share < 0.01), ``l1`` and ``dim``
    (π‖v‖₁²/2) of each direction, ``random_l1`` and ``random_dim``. With more units than
    points (p > n) the spectrum comes from the n × n Gram matrix (the same nonzero eigenvalues,
    p³ → n³) and only the n − 1 directions of nonzero variance are kept.
    """
    x = np.asarray(features, dtype=np.float64)
    n, p = x.shape
    if n < 2:
        raise ValueError(f"PCA needs at least 2 points, got {n}")
    xc = x - x.mean(axis=0)
    if p <= n:
        values, vectors = np.linalg.eigh(xc.T @ xc / (n - 1))
        values, vectors = values[::-1], vectors[:, ::-1]
    else:
        values, u = np.linalg.eigh(xc @ xc.T / (n - 1))
        values, u = values[::-1][:n - 1], u[:, ::-1][:, :n - 1]
        vectors = xc.T @ u
        vectors /= np.linalg.norm(vectors, axis=0)
    values = np.clip(values, 0, None)  # round-off below zero
    total = values.sum()
    share = values / total if total > 0 else np.full_like(values, math.nan)
    cumulative = np.cumsum(share)
    below = np.flatnonzero(1 - cumulative < 1 - EXPLAINED)
    l1 = np.abs(vectors).sum(axis=0)
    random_l1 = np.abs(random_orthonormal(p, len(values), seed)).sum(axis=0)
    return {"eigenvalues": values, "share": share, "cumulative": cumulative,
            "n_components_99": int(below[0]) + 1 if len(below) else 0,
            "l1": l1, "dim": l1_dimension(l1), "random_l1": random_l1,
            "random_dim": l1_dimension(random_l1)}


def random_orthonormal(p: int, k: int, seed: int) -> np.ndarray:
    """p × k matrix with orthonormal columns, Haar-distributed (QR of a Gaussian matrix with
    the signs of R's diagonal fixed); costs ~2pk² flops."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((p, k)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def sparsity(features: np.ndarray) -> pd.DataFrame:
    """Per unit: ``zero_share`` (exact zeros, eq. 4.2), ``mean`` and ``std`` (population) of
    its nonzero activations (NaN if it has none); sorted by sparsity, least sparse first, as
    in Fig. 4.4.3/4.4.4 (``unit_rank`` 0…p−1; ``unit`` is the original position)."""
    x = np.asarray(features, dtype=np.float64)
    nonzero = x != 0
    count = nonzero.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, x.sum(axis=0) / count, math.nan)
        var = np.where(count > 0, (np.where(nonzero, x - mean, 0) ** 2).sum(axis=0) / count,
                       math.nan)
    table = pd.DataFrame({"unit": np.arange(x.shape[1]), "zero_share": 1 - count / len(x),
                          "mean": mean, "std": np.sqrt(var)})
    table = table.sort_values("zero_share", kind="stable").reset_index(drop=True)
    table.insert(0, "unit_rank", np.arange(len(table)))
    return table


# --- all layers of a sample ------------------------------------------------------------------

def analyse_layers(sample: dict[str, Any], seed: int = 0,
                   methods: Sequence[str] = tuple(METHODS), umap: bool = True,
                   max_bytes: float | None = DEFAULT_MAX_BYTES,
                   log: Callable[[str], None] | None = None,
                   ward_scaling: str = DEFAULT_WARD_SCALING) -> dict[str, pd.DataFrame]:
    """Every analysis of every layer of ``sample`` (see :func:`sample_activations`), as tidy
    DataFrames (``layer_index`` is the position in ``sample["layers"]``, the input is 0):

    - ``clusters``: layer, layer_index, method, points, clusters, small_clusters, avg_points,
      accuracy, excluded (Table 4.3.1 / C.2.1);
    - ``retention``: method, layer_from, layer_to, index_from, index_to, retention (Table 4.3.2);
    - ``assignments``: layer, layer_index, method, point, label, cluster, induced;
    - ``umap``: layer, layer_index, point, label, pred, x, y (empty if ``umap`` is False);
    - ``pca``: layer, layer_index, units, component (from 1), eigenvalue, share, cumulative,
      l1, dim, random_l1, random_dim;
    - ``pca_summary``: layer, layer_index, units, components, total_variance, n_components_99;
    - ``sparsity``: layer, layer_index, unit_rank, unit, zero_share, mean, std.

    The ward method clusters the features scaled by ``ward_scaling`` (:func:`scale_for_ward`).
    A sample too large for clustering within ``max_bytes`` (None: no limit) is clustered on a
    seeded class-balanced subsample (:func:`clustering_index`, said in ``log``); ``point`` in
    ``assignments`` is the position in the sample, ``points`` in ``clusters`` the number
    clustered. UMAP, PCA and sparsity always use the whole sample.
    """
    labels = np.asarray(sample["labels"])
    names = list(sample["layers"])
    if ward_scaling not in WARD_SCALINGS:
        raise ValueError(f"unknown ward scaling {ward_scaling!r}; known: "
                         f"{', '.join(WARD_SCALINGS)}")
    say = log or (lambda _msg: None)
    chosen = clustering_index(labels, max_bytes, seed)
    if len(chosen) < len(labels):
        say(f"features: {len(labels):,} points need {clustering_bytes(len(labels)) / 2**30:.2f}"
            f" GiB to cluster, over the budget of {max_bytes / 2**30:.2f} GiB: clustering a "
            f"class-balanced subsample of {len(chosen):,} points (seed {seed}); UMAP, PCA and "
            f"sparsity use all {len(labels):,}")
    parts: dict[str, list[pd.DataFrame]] = {k: [] for k in (
        "clusters", "assignments", "umap", "pca", "pca_summary", "sparsity")}
    kept_ids: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {m: [] for m in methods}
    for index, name in enumerate(names):
        start = time.perf_counter()
        feats = np.asarray(sample[name])
        where = {"layer": name, "layer_index": index}
        for method in methods:
            result = cluster(feats[chosen], labels[chosen], method, ward_scaling=ward_scaling)
            kept_ids[method].append((np.where(result.induced >= 0, result.ids, -1), result.ids))
            parts["clusters"].append(pd.DataFrame([{**where, "method": method,
                                                    **result.summary}]))
            parts["assignments"].append(pd.DataFrame({
                **where, "method": method, "point": chosen, "label": labels[chosen],
                "cluster": result.ids, "induced": result.induced}))
        if umap:
            emb = umap_embedding(feats, seed, embeddings=len(names))
            parts["umap"].append(pd.DataFrame({
                **where, "point": np.arange(len(labels)), "label": labels,
                "pred": np.asarray(sample["pred"]), "x": emb[:, 0], "y": emb[:, 1]}))
        spec = pca(feats, seed)
        parts["pca"].append(pd.DataFrame({
            **where, "units": feats.shape[1],
            "component": np.arange(1, len(spec["eigenvalues"]) + 1),
            "eigenvalue": spec["eigenvalues"], "share": spec["share"],
            "cumulative": spec["cumulative"], "l1": spec["l1"], "dim": spec["dim"],
            "random_l1": spec["random_l1"], "random_dim": spec["random_dim"]}))
        parts["pca_summary"].append(pd.DataFrame([{
            **where, "units": feats.shape[1], "components": len(spec["eigenvalues"]),
            "total_variance": float(spec["eigenvalues"].sum()),
            "n_components_99": spec["n_components_99"]}]))
        parts["sparsity"].append(sparsity(feats).assign(**where))
        say(f"features: layer {index} ({name}, {feats.shape[1]} units) in "
            f"{time.perf_counter() - start:.1f} s")
    tables = {k: _concat(v, FEATURE_COLUMNS[k]) for k, v in parts.items()}
    tables["retention"] = pd.DataFrame(
        [{"method": m, "layer_from": names[i], "layer_to": names[i + 1], "index_from": i,
          "index_to": i + 1, "retention": retention(ids[i][0], ids[i + 1][1])}
         for m, ids in kept_ids.items() for i in range(len(names) - 1)],
        columns=FEATURE_COLUMNS["retention"])
    return tables


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]
