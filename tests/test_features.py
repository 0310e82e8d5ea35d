"""Feature analysis (nclayers.features, nclayers.feature_plots) on data with a known answer."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure
from sklearn.metrics import adjusted_rand_score

from nclayers import data, models
from nclayers import feature_plots as fp
from nclayers import features as ft
from nclayers.cluster_matrix import cluster_class_matrix
from nclayers.tables import clusters_tex, retention_tex
from nclayers.vocabulary import FEATURE_COLUMNS

C = 10


def gaussian_clusters(per_class: int = 30, p: int = 24, noise: float = 0.01, seed: int = 0,
                      scale: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Class c around scale·e_c: classes at cosine distance 1 and euclidean distance ≥ 4,
    points of a class within ~1e-4 (cosine) and ward merge heights ~σ√(2p) = 0.07 < 0.5."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(C), per_class)
    x = scale * np.eye(C, p)[y] + noise * rng.standard_normal((len(y), p))
    return x, y


def rotation(p: int, seed: int) -> np.ndarray:
    return ft.random_orthonormal(p, p, seed)


# --- clustering and retention ----------------------------------------------------------------

@pytest.mark.parametrize("method", list(ft.METHODS))
def test_separated_clusters_are_found_exactly(method):
    x, y = gaussian_clusters()
    result = ft.cluster(x, y, method)
    assert adjusted_rand_score(y, result.ids) == 1.0
    assert np.array_equal(result.induced, y)
    assert result.summary == {"points": 300, "clusters": C, "small_clusters": 0,
                              "avg_points": 30.0, "accuracy": 1.0, "excluded": 0}
    # A second "layer" with other noise keeps every cluster whole: retention 1.
    x2, _ = gaussian_clusters(seed=1)
    assert ft.retention(result.ids, ft.cluster(x2, y, method).ids) == 1.0


def test_rotation_leaves_cosine_clusters_unchanged():
    """Cosine distances are rotation invariant: the same partition, on data where the
    clustering is far from trivial (overlapping classes, many small clusters)."""
    x, y = gaussian_clusters(per_class=20, noise=1.0, scale=1.5, seed=3)
    before = ft.cluster(x, y, "cosine")
    after = ft.cluster(x @ rotation(x.shape[1], 7), y, "cosine")
    assert 1 < before.summary["clusters"] < len(y) / 3 and before.summary["accuracy"] < 1
    assert adjusted_rand_score(before.ids, after.ids) == 1.0
    assert np.array_equal(before.induced, after.induced)
    assert before.summary == after.summary


def test_small_clusters_are_excluded_and_majority_induced():
    # Two points far from everything (excluded), a cluster of 4 with a 3:1 majority.
    x = np.array([[1, 0], [1, 0.01], [1, -0.01], [1, 0.02], [0, 1], [-1, 0]], dtype=float)
    y = np.array([2, 2, 2, 1, 0, 0])
    result = ft.cluster(x, y, "cosine")
    assert list(result.induced) == [2, 2, 2, 2, -1, -1]
    assert result.summary["clusters"] == 1 and result.summary["small_clusters"] == 2
    assert result.summary["excluded"] == 2 and result.summary["accuracy"] == 0.75


def test_zero_vectors_are_their_own_clusters_under_cosine():
    x, y = gaussian_clusters(per_class=5)
    x[[0, 7]] = 0  # dead post-ReLU samples: no direction
    result = ft.cluster(x, y, "cosine")
    assert list(result.induced[[0, 7]]) == [-1, -1]
    assert len(set(result.ids[[0, 7]])) == 2 and result.summary["excluded"] == 2
    assert result.summary["accuracy"] == 1.0


def test_retention_is_eq_4_1():
    # From-clusters {0,1,2} (sizes 3, 3) and an excluded point; best overlaps 2 and 3.
    from_ids = np.array([0, 0, 0, 1, 1, 1, -1])
    to_ids = np.array([5, 5, 6, 6, 6, 6, 5])
    assert ft.retention(from_ids, to_ids) == pytest.approx(5 / 6)
    assert ft.retention(from_ids, np.arange(7)) == pytest.approx(2 / 6)  # all split
    assert math.isnan(ft.retention(np.full(4, -1), np.zeros(4)))  # Table C.2.2's "-"


def test_clustering_and_umap_are_identical_for_the_same_seed():
    x, y = gaussian_clusters(per_class=8, noise=0.8, scale=1.5, seed=5)
    for method in ft.METHODS:
        a, b = ft.cluster(x, y, method), ft.cluster(x, y, method)
        assert np.array_equal(a.ids, b.ids) and np.array_equal(a.induced, b.induced)
    first, second = ft.umap_embedding(x, seed=3), ft.umap_embedding(x, seed=3)
    assert first.shape == (len(y), 2) and first.dtype == np.float32
    assert np.array_equal(first, second)
    assert not np.array_equal(first, ft.umap_embedding(x, seed=4))


def test_cluster_class_matrix_sorted_by_induced_class_then_size():
    ids = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3])
    labels = np.array([1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0])
    matrix = cluster_class_matrix(ids, labels, num_classes=3)
    assert list(matrix["cluster"]) == [1, 2, 0]  # class 0; class 1 by size (5, then 3)
    assert list(matrix["induced"]) == [0, 1, 1] and list(matrix["size"]) == [4, 5, 3]
    assert np.allclose(matrix[[0, 1, 2]].sum(axis=1), 1)
    assert matrix.loc[0, 0] == 0.75


# --- the scaling of the ward method (docs/ward_scaling.md) -------------------------------------

def _scaled_by_hand(x: np.ndarray, scaling: str) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return {"raw": x, "l2": x / norms, "mean_norm": x / norms.mean()}[scaling]


@pytest.mark.parametrize("scaling", ft.WARD_SCALINGS)
def test_ward_clusters_are_scikit_learns_on_the_scaled_features(scaling):
    """Every scaling clusters exactly as AgglomerativeClustering does on features scaled by
    hand, on data where the partition is far from trivial."""
    from sklearn.cluster import AgglomerativeClustering

    x, y = gaussian_clusters(per_class=20, noise=0.25, scale=1.0, seed=6)
    x = np.abs(x) * {"raw": 0.1, "l2": 1.0, "mean_norm": 1.0}[scaling]  # post-ReLU-like
    result = ft.cluster(x, y, "ward", ward_scaling=scaling)
    expected = AgglomerativeClustering(n_clusters=None, metric="euclidean", linkage="ward",
                                       distance_threshold=0.5).fit(_scaled_by_hand(x, scaling))
    assert np.array_equal(result.ids, expected.labels_)
    assert result.summary["clusters"] > 1 and result.summary["excluded"] < len(y)
    assert adjusted_rand_score(y, result.ids) < 1  # not merely the classes


def relu_layer(n: int = 600, p: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A post-ReLU-like layer with the awkward cases of real ones: overlapping classes, dead
    units, and repeated rows (samples the layer maps to the same point)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    x = np.maximum(rng.standard_normal((C, p))[y] + 0.8 * rng.standard_normal((n, p)), 0)
    x[:, :5] = 0
    x[n // 2:n // 2 + 20] = x[:20]
    return x, y


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_condensed_distances_equal_scipys_pdist(metric):
    from scipy.spatial.distance import pdist

    x, _ = relu_layer()
    for block in (1024, 7):  # one block, and blocks that end mid-matrix
        fast = ft.condensed_distances(x, metric, block=block)
        assert fast.shape == (len(x) * (len(x) - 1) // 2,)
        assert np.allclose(fast, pdist(x, metric), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="unknown metric 'cityblock'"):
        ft.condensed_distances(x, "cityblock")


@pytest.mark.parametrize("method", list(ft.METHODS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agglomerative_labels_are_scikit_learns(method, seed):
    """The fast route gives scikit-learn's labels themselves (not only the same partition),
    on layers whose clusterings are far from trivial."""
    from sklearn.cluster import AgglomerativeClustering

    x, y = relu_layer(seed=seed)
    # Thresholds that cut this layer into tens of clusters (the thesis' would give ~20 cosine
    # clusters and ~500 ward ones here).
    params = {**ft.METHODS[method], "distance_threshold": {"cosine": 0.5, "ward": 1.0}[method]}
    if method == "ward":
        x = ft.scale_for_ward(x)
    expected = AgglomerativeClustering(n_clusters=None, **params).fit(x).labels_
    assert 5 < len(np.unique(expected)) < len(x) // 2
    assert np.array_equal(ft.agglomerative_labels(x, **params), expected)


def test_cosine_knn_is_the_exact_neighbours_under_umaps_cosine():
    """Against umap-learn's own cosine, zero rows (dead post-ReLU samples) and a repeated row
    included; blocks that end mid-matrix."""
    from umap.distances import cosine

    x, _ = relu_layer(n=150, p=12)
    x[[5, 9]] = 0
    indices, distances = ft.cosine_knn(x, 10, block=32)
    full = np.array([[cosine(a, b) for b in x] for a in x])
    np.fill_diagonal(full, 0.0)
    assert indices.shape == distances.shape == (len(x), 10)
    assert np.allclose(distances, np.sort(full, axis=1)[:, :10], atol=1e-6)
    assert np.allclose(np.take_along_axis(full, indices, axis=1), distances, atol=1e-6)
    assert (np.diff(distances, axis=1) >= 0).all()
    zero = np.flatnonzero(~x.any(axis=1))  # 5, 9 and any the ReLU zeroed
    assert set(indices[5, :len(zero)]) == set(zero) and (distances[5, :len(zero)] == 0).all()


def test_numba_pairwise_distances_are_scikit_learns_bitwise():
    """The all-pairs matrix umap-learn asks scikit-learn for below UMAP_EXACT_FROM points, from
    one compiled loop: equal to the last bit for metrics without fastmath (umap's cosine among
    them), float32 and float64, zero and repeated rows, a row of tiny values and a dimension of
    one included; a fastmath metric is refused."""
    from sklearn.metrics import pairwise_distances
    from umap.distances import correlation, cosine, euclidean

    rng = np.random.default_rng(11)
    for n, p in ((120, 64), (40, 300), (30, 1)):
        for dtype in (np.float32, np.float64):
            x = (relu_layer(n=n, p=p)[0] if p > 1 else rng.standard_normal((n, p))).astype(dtype)
            x[3], x[7] = 0, x[8]
            x[10] *= 1e-20
            for metric in (cosine, correlation):
                expected = pairwise_distances(x, metric=metric)
                assert np.array_equal(ft.numba_pairwise_distances(x, metric), expected)
    with pytest.raises(ValueError, match="fastmath"):
        ft.numba_pairwise_distances(x, euclidean)


def test_umap_with_the_compiled_pairs_is_umap_learns_own(monkeypatch):
    """umap_embedding below UMAP_EXACT_FROM, with the compiled all-pairs loop, against umap-learn
    left as it is: the same embedding, bitwise (well separated classes: UMAP lays out its
    disconnected components apart, from the data); the loop ran where the process's pairs pay
    for its compilation, and only there, and umap-learn is left as it was, after an error too."""
    import umap
    import umap.umap_ as umap_module
    from sklearn.metrics import pairwise_distances

    real, calls = ft.numba_pairwise_distances, []

    def spy(x, metric):
        calls.append(x.shape)
        return real(x, metric)

    monkeypatch.setattr(ft, "numba_pairwise_distances", spy)
    x, _ = gaussian_clusters(per_class=25, noise=0.05, scale=4.0, seed=2)  # 10 components
    pairs = len(x) * (len(x) - 1) // 2
    few = ft.COMPILED_PAIRS_FROM // pairs  # embeddings whose pairs do not pay for the compile
    alone = ft.umap_embedding(x, seed=3, embeddings=few)
    assert calls == []
    embedding = ft.umap_embedding(x, seed=3, embeddings=few + 1)
    assert calls == [(len(x), x.shape[1])]
    assert np.array_equal(embedding, alone)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        own = umap.UMAP(n_neighbors=ft.UMAP_NEIGHBOURS, metric="cosine", n_components=2,
                        random_state=3).fit_transform(np.asarray(x, dtype=np.float32))
    assert np.array_equal(embedding, own)
    assert umap_module.pairwise_distances is pairwise_distances  # put back
    with pytest.raises(ValueError):
        ft.umap_embedding(np.full((30, 4), np.nan), seed=0)
    assert umap_module.pairwise_distances is pairwise_distances


def test_umap_from_the_exact_neighbours_is_reproducible_and_keeps_classes_apart(monkeypatch):
    """From UMAP_EXACT_FROM points on (lowered here) the embedding starts from cosine_knn."""
    real, calls = ft.cosine_knn, []

    def spy(x, k):
        calls.append(len(x))
        return real(x, k)

    monkeypatch.setattr(ft, "UMAP_EXACT_FROM", 100)
    monkeypatch.setattr(ft, "cosine_knn", spy)
    x, y = gaussian_clusters(per_class=12)
    first, second = ft.umap_embedding(x, seed=3), ft.umap_embedding(x, seed=3)
    assert calls == [len(x), len(x)]
    assert first.shape == (len(x), 2) and np.array_equal(first, second)
    gaps = np.linalg.norm(first[:, None] - first[None], axis=2) + np.eye(len(x)) * 1e9
    assert (y[gaps.argmin(axis=1)] == y).mean() > 0.95


def test_default_ward_scaling_is_free_of_the_layers_scale_and_raw_is_not():
    x, y = gaussian_clusters(per_class=20, noise=0.25, scale=1.0, seed=6)
    x = np.abs(x)
    assert ft.DEFAULT_WARD_SCALING == "mean_norm"
    base = ft.cluster(x, y, "ward")
    for factor in (1e-3, 7.0, 1e3):
        for scaling in ("mean_norm", "l2"):
            scaled = ft.cluster(factor * x, y, "ward", ward_scaling=scaling)
            assert adjusted_rand_score(ft.cluster(x, y, "ward", ward_scaling=scaling).ids,
                                       scaled.ids) == 1.0
        assert adjusted_rand_score(base.ids, ft.cluster(factor * x, y, "ward").ids) == 1.0
    # Raw: a large layer is all singletons, a tiny one a single cluster.
    assert ft.cluster(1e3 * x, y, "ward", ward_scaling="raw").summary["excluded"] == len(y)
    assert ft.cluster(1e-3 * x, y, "ward", ward_scaling="raw").summary["clusters"] == 1
    # l2 ignores each sample's own norm too; cosine ignores the scaling altogether.
    rows = np.random.default_rng(0).uniform(0.5, 2.0, (len(y), 1))
    assert np.array_equal(ft.cluster(rows * x, y, "ward", ward_scaling="l2").ids,
                          ft.cluster(x, y, "ward", ward_scaling="l2").ids)
    assert np.array_equal(ft.cluster(x, y, "cosine", ward_scaling="raw").ids,
                          ft.cluster(x, y, "cosine").ids)


def test_scale_for_ward_values():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, 1.0]])  # norms 5, 0, 1: mean 2
    assert np.allclose(ft.scale_for_ward(x, "mean_norm"), x / 2)
    assert np.allclose(ft.scale_for_ward(x, "l2"), [[0.6, 0.8], [0, 0], [0, 1]])
    unit = ft.scale_for_ward(x[[0, 2]], "l2")  # on the sphere: |u - v|^2 = 2 - 2 cos
    assert np.sum((unit[0] - unit[1]) ** 2) == pytest.approx(2 - 2 * 0.8)
    assert np.array_equal(ft.scale_for_ward(np.zeros((3, 2)), "mean_norm"), np.zeros((3, 2)))
    assert np.array_equal(ft.scale_for_ward(x, "raw"), x)
    with pytest.raises(ValueError, match="unknown ward scaling 'zscore'"):
        ft.cluster(x, np.zeros(3, dtype=int), "ward", ward_scaling="zscore")


# --- clustering a sample too large for memory ------------------------------------------------

def test_max_points_is_the_edge_of_the_size_check():
    assert ft.max_points(2 * 2**30) == 16_384
    for budget in (1e5, 3.3e6, 2 * 2**30):
        n = ft.max_points(budget)
        assert ft.check_sample_size(n, budget) <= budget
        with pytest.raises(ValueError):
            ft.check_sample_size(n + 1, budget)


def test_too_large_a_sample_is_clustered_on_a_seeded_balanced_subsample():
    x, y = gaussian_clusters(per_class=30, noise=0.3, scale=2.0, seed=4)
    budget = ft.clustering_bytes(100)  # room for 100 of the 300 points: 10 per class
    chosen = ft.clustering_index(y, budget, seed=3)
    assert np.array_equal(chosen, ft.clustering_index(y, budget, seed=3))
    assert not np.array_equal(chosen, ft.clustering_index(y, budget, seed=4))
    assert np.array_equal(np.bincount(y[chosen]), np.full(C, 10))
    assert np.all(np.diff(chosen) > 0)
    assert np.array_equal(ft.clustering_index(y, None), np.arange(len(y)))
    assert np.array_equal(ft.clustering_index(y, ft.clustering_bytes(300)), np.arange(300))

    sample = {"labels": y, "pred": y, "index": np.arange(len(y)), "layers": ["a", "b"],
              "a": x, "b": np.abs(x)}
    said: list[str] = []
    tables = ft.analyse_layers(sample, seed=3, umap=False, max_bytes=budget, log=said.append)
    assert "clustering a class-balanced subsample of 100 points (seed 3)" in said[0]
    assert set(tables["clusters"]["points"]) == {100.0}
    points = tables["assignments"].groupby(["layer", "method"])["point"]
    assert all(np.array_equal(p.to_numpy(), chosen) for _, p in points)
    assert len(tables["retention"]) == 2 and tables["retention"]["retention"].notna().any()
    assert len(tables["sparsity"]) == 2 * x.shape[1]  # PCA and sparsity: the whole sample
    # The clusters are those of the subsample on its own.
    alone = ft.cluster(np.abs(x)[chosen], y[chosen], "ward")
    b = tables["assignments"].query("layer == 'b' and method == 'ward'")
    assert np.array_equal(b["cluster"].to_numpy(), alone.ids)


# --- PCA and ℓ1 dimensionality ----------------------------------------------------------------

def test_l1_dimension_of_known_vectors():
    p = 4000
    assert ft.l1_dimension(1.0) == pytest.approx(math.pi / 2)  # a coordinate axis
    v = np.random.default_rng(0).standard_normal(p)
    v /= np.linalg.norm(v)  # uniformly spread: a uniform random direction
    assert ft.l1_dimension(np.abs(v).sum()) == pytest.approx(p, rel=0.05)
    # The all-equal vector has the largest ℓ1 norm, √p, hence π p / 2, not p (§3.5.2's map).
    assert ft.l1_dimension(math.sqrt(p)) == pytest.approx(math.pi * p / 2)


def test_pca_matches_numpy_eigendecomposition():
    rng = np.random.default_rng(1)
    n, p = 400, 12
    x = rng.standard_normal((n, p)) @ np.diag(np.linspace(3, 0.1, p)) @ rotation(p, 2) + 5
    result = ft.pca(x, seed=0)
    values, vectors = np.linalg.eigh(np.cov(x, rowvar=False))
    values, vectors = values[::-1], vectors[:, ::-1]
    assert np.allclose(result["eigenvalues"], values, rtol=1e-10)
    assert np.allclose(result["l1"], np.abs(vectors).sum(axis=0), rtol=1e-8)  # sign-free
    assert np.allclose(result["share"], values / values.sum())
    assert result["n_components_99"] == 1 + int(np.argmax(1 - np.cumsum(values) / values.sum()
                                                          < 0.01))
    assert np.allclose(result["dim"], math.pi * result["l1"] ** 2 / 2)
    # The random basis is orthonormal, and its directions have dimensionality ≈ p on average.
    q = ft.random_orthonormal(300, 300, seed=0)
    assert np.allclose(q.T @ q, np.eye(300), atol=1e-10)
    assert ft.l1_dimension(np.abs(q).sum(axis=0)).mean() == pytest.approx(300, rel=0.03)
    assert len(result["random_l1"]) == p


def test_pca_with_more_units_than_points_uses_the_gram_matrix():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((30, 80)) * np.linspace(2, 0.5, 80)
    wide = ft.pca(x)
    values, vectors = np.linalg.eigh(np.cov(x, rowvar=False))
    values, vectors = values[::-1][:29], vectors[:, ::-1][:, :29]
    assert len(wide["eigenvalues"]) == 29
    assert np.allclose(wide["eigenvalues"], values, rtol=1e-8)
    assert np.allclose(wide["l1"], np.abs(vectors).sum(axis=0), rtol=1e-6)


def test_sparsity_per_unit():
    x = np.array([[0, 2, 1], [0, 0, 1], [0, 4, 1], [0, 0, 1]], dtype=float)
    table = ft.sparsity(x)
    assert list(table["unit"]) == [2, 1, 0] and list(table["unit_rank"]) == [0, 1, 2]
    assert list(table["zero_share"]) == [0.0, 0.5, 1.0]
    assert list(table["mean"][:2]) == [1.0, 3.0] and list(table["std"][:2]) == [0.0, 1.0]
    assert table["mean"].isna().iloc[2]


# --- sample, size check, save/load ------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_model():
    torch.manual_seed(0)
    return models.build("mlp", (1, 8, 8), 10, depth=2, width=16), data.load("digits")


def test_sample_is_class_balanced_and_fixed_by_the_seed(digits_model):
    model, splits = digits_model
    sample = ft.sample_activations(model, splits.x_train, splits.y_train, per_class=5, seed=1)
    assert sample["layers"] == ["input", "layer1", "layer2"]
    assert np.array_equal(np.bincount(sample["labels"]), np.full(10, 5))
    assert sample["input"].shape == (50, 64) and sample["layer2"].shape == (50, 16)
    assert sample["layer1"].dtype == np.float32
    x = splits.x_train[torch.as_tensor(sample["index"])]
    model.eval()
    with torch.no_grad():
        assert np.array_equal(sample["pred"], model(x).argmax(1).numpy())
        expected = model.layer2(model.layer1(model.flatten(x))).numpy()
    assert np.allclose(sample["layer2"], expected, atol=1e-6)
    assert np.array_equal(sample["labels"], splits.y_train.numpy()[sample["index"]])
    again = ft.sample_activations(model, splits.x_train, splits.y_train, per_class=5, seed=1)
    other = ft.sample_activations(model, splits.x_train, splits.y_train, per_class=5, seed=2)
    assert np.array_equal(sample["index"], again["index"])
    assert np.array_equal(sample["layer2"], again["layer2"])
    assert not np.array_equal(sample["index"], other["index"])
    with pytest.raises(ValueError, match="lower features.per_class"):
        ft.sample_activations(model, splits.x_train, splits.y_train, per_class=500, seed=0)


def test_too_large_a_sample_is_refused_before_running(digits_model):
    assert ft.check_sample_size(10_000) == 2 * 8 * 10_000 * 9_999 // 2  # 763 MiB, fits 2 GiB
    with pytest.raises(ValueError) as err:
        ft.check_sample_size(30_000, max_bytes=2 * 2**30)
    message = str(err.value)
    assert "30,000 points" in message and "6.71 GiB" in message
    assert "lower features.per_class" in message and "16,384" in message
    model, splits = digits_model
    with pytest.raises(ValueError, match="1,000 points"):  # before any forward pass
        ft.sample_activations(model, splits.x_train, splits.y_train, per_class=100, seed=0,
                              max_bytes=1e6)


def test_save_and_load_round_trip(digits_model, tmp_path):
    model, splits = digits_model
    sample = ft.sample_activations(model, splits.x_train, splits.y_train, per_class=3, seed=0)
    path = tmp_path / "out" / "sample.npz"
    ft.save_sample(path, sample)
    assert [p.name for p in path.parent.iterdir()] == ["sample.npz"]  # no temporary left
    loaded = ft.load_sample(path)
    assert loaded["layers"] == sample["layers"]
    for key in ("labels", "pred", "index", *sample["layers"]):
        assert np.array_equal(loaded[key], sample[key])
        assert loaded[key].dtype == sample[key].dtype


# --- all layers, tables and figures ------------------------------------------------------------

@pytest.fixture(scope="module")
def tables():
    x, y = gaussian_clusters(per_class=8, noise=0.3, scale=2.0, seed=4)
    relu = np.maximum(x @ rotation(x.shape[1], 1), 0)
    sample = {"labels": y, "pred": y, "index": np.arange(len(y)),
              "layers": ["input", "block1", "block2"], "input": x, "block1": relu,
              "block2": gaussian_clusters(per_class=8, seed=9)[0] * 0.05}
    return ft.analyse_layers(sample, seed=0)


def test_analyse_layers_tables(tables, tmp_path):
    for name, columns in FEATURE_COLUMNS.items():
        assert list(tables[name].columns) == columns, name
    clusters = tables["clusters"].set_index(["layer", "method"])
    assert clusters.loc[("block2", "cosine"), "accuracy"] == 1.0
    assert clusters.loc[("block2", "ward"), "clusters"] == C
    assert len(tables["retention"]) == 2 * 2
    assert len(tables["umap"]) == 3 * 80 and len(tables["assignments"]) == 2 * 3 * 80
    assert list(tables["pca_summary"]["units"]) == [24, 24, 24]
    tex = retention_tex(tables["retention"])
    assert r"\toprule" in tex and r"1 $\to$ 2" in tex
    clusters = clusters_tex(tables["clusters"])
    assert clusters.count(r"\multicolumn") == 2  # a heading per clustering method
    assert r"2 & block2 & 10 & 8 & 100.0 & 0 of 80 \\" in clusters
    # the accuracy covers the kept points only, and says so beside the excluded count
    assert "Accuracy on the kept points" in clusters and "Excluded points" in clusters


def test_feature_tex_has_a_block_per_run(tables):
    """Tables of several runs (the feature_tables step) get a heading per run and method."""
    two = pd.concat([tables["clusters"].assign(run="a-s0", epoch=3),
                     tables["clusters"].assign(run="b-s1", epoch=3)])
    tex = clusters_tex(two)
    assert "run a-s0: cosine" in tex and "run b-s1: euclidean, ward" in tex
    retention = pd.concat([tables["retention"].assign(run=r, epoch=3) for r in ("a", "b")])
    assert retention_tex(retention).count(r"\multicolumn") == 2


@pytest.mark.parametrize("name", list(fp.FEATURE_FIGURES))
def test_every_figure_draws(tables, name, tmp_path):
    fig = fp.FEATURE_FIGURES[name](tables)
    assert isinstance(fig, Figure)
    fig.savefig(tmp_path / f"{name}.png", dpi=40)


def test_figures_take_a_choice_of_layers(tables):
    assert len(fp.umap_by_class(tables["umap"], layers=[0, "block2"]).axes) == 2
    fig = fp.cluster_heatmaps(tables["assignments"], "ward", layers=["block1"], cols=1)
    assert isinstance(fig, Figure)
    with pytest.raises(ValueError, match="no layers"):
        fp.pca_l1(tables["pca"], layers=["nope"])
