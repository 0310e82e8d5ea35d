"""Streaming NC statistics (nclayers.metrics) against the dense p × p reference and known cases.

Data are generated with numpy from a hypothesis-drawn seed, fed to the streaming classes as torch
tensors in hypothesis-drawn batches, and compared with :func:`nclayers.metrics_dense.dense_metrics`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nclayers.metrics import (
    MEAN_METRICS,
    SKETCH_COLUMNS,
    SPLIT_METRICS,
    ClassMeans,
    SplitStats,
    labels,
)
from nclayers.metrics_dense import dense_metrics

ALL_METRICS = MEAN_METRICS + SPLIT_METRICS
REL, ABS = 1e-8, 1e-12

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# ----------------------------------------------------------------------------------- helpers


def _split(a: np.ndarray, cuts) -> list[np.ndarray]:
    return np.split(a, list(cuts)) if len(a) else [a]


def streaming(
    h_train: np.ndarray,
    y_train: np.ndarray,
    h: np.ndarray,
    y: np.ndarray,
    net_pred: np.ndarray | None,
    num_classes: int,
    train_cuts=(),
    cuts=(),
    dtype: torch.dtype = torch.float64,
    global_mean: str = "classes",
    precision: str = "float64",
) -> dict[str, float]:
    """All metrics through ClassMeans → MeanGeometry → SplitStats, in the given batches."""
    means = ClassMeans(num_classes, global_mean=global_mean, precision=precision)
    for hb, yb in zip(_split(h_train, train_cuts), _split(y_train, train_cuts), strict=True):
        means.update(torch.tensor(hb, dtype=dtype), torch.tensor(yb))
    geometry = means.compute()
    stats = SplitStats(geometry)
    preds = _split(net_pred, cuts) if net_pred is not None else [None] * (len(cuts) + 1)
    for hb, yb, pb in zip(_split(h, cuts), _split(y, cuts), preds, strict=True):
        stats.update(torch.tensor(hb, dtype=dtype), torch.tensor(yb),
                     None if pb is None else torch.tensor(pb))
    return {**geometry.mean_metrics(), **stats.compute()}


def dense(h_train, y_train, h, y, net_pred, num_classes, global_mean="classes"
          ) -> dict[str, float]:
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # mean of an empty list (cdnv with < 2 present classes), division by a zero distance
        warnings.simplefilter("ignore", RuntimeWarning)
        return dense_metrics(h_train, y_train, h, y, net_pred, num_classes, global_mean)


def same(a: float, b: float, rel: float = REL, abs_: float = ABS) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def stable_rank_agrees(got: float, want: float, p: int, rel: float) -> bool:
    """The stable rank's λ_max comes from a rank-SKETCH_COLUMNS sketch: exact when that spans
    the features (p ≤ SKETCH_COLUMNS), otherwise a Nyström estimate that never exceeds λ_max,
    so the stable rank is never below the exact one."""
    if math.isnan(got) or math.isnan(want):
        return math.isnan(got) and math.isnan(want)
    if p <= SKETCH_COLUMNS:
        return math.isclose(got, want, rel_tol=max(rel, 1e-7))
    return got >= want * (1 - 1e-7)


def assert_metrics_equal(got: dict, want: dict, rel: float = REL, abs_: float = ABS,
                         keys=ALL_METRICS, p: int = 0) -> None:
    assert set(got) == set(ALL_METRICS)
    bad = {k: (got[k], want[k]) for k in keys
           if k != "stable_rank" and not same(got[k], want[k], rel, abs_)}
    if "stable_rank" in keys and p and not stable_rank_agrees(got["stable_rank"],
                                                               want["stable_rank"], p, rel):
        bad["stable_rank"] = (got["stable_rank"], want["stable_rank"])
    assert not bad, f"streaming vs reference differ: {bad}"


def class_means(h: np.ndarray, y: np.ndarray, C: int) -> np.ndarray:
    return np.stack([h[y == c].mean(axis=0) for c in range(C)])


def ncc_numpy(h: np.ndarray, means: np.ndarray) -> np.ndarray:
    return ((h[:, None, :] - means[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)


def conditioning_ok(means: np.ndarray, rank: int, floor: float = 1e-3) -> bool:
    """Σ_B well conditioned on its ``rank``-dim range, centred means of comparable norms.

    The dense path squares the condition number of M, so an ill-conditioned draw would make the
    two implementations differ by round-off; near-zero centred means make cosines round-off.
    """
    centred = means - means.mean(axis=0)
    s = np.linalg.svd(centred, compute_uv=False)
    norms = np.linalg.norm(centred, axis=1)
    return bool(s[rank - 1] > floor * s[0] and norms.min() > floor * norms.max())


def margin_ok(means: np.ndarray, *hs: np.ndarray, margin: float = 1e-9) -> bool:
    """No sample is a near tie between two class means.

    The streaming NCC ranks ‖μ‖² − 2h·μ, the dense one ‖h − μ‖²; they agree up to round-off.
    """
    scale = float((means**2).sum(axis=1).max())
    for h in hs:
        d = np.sort(((h[:, None, :] - means[None]) ** 2).sum(axis=2), axis=1)
        if np.any(d[:, 1] - d[:, 0] <= margin * ((h**2).sum(axis=1) + scale)):
            return False
    return True


def well_posed(h_train: np.ndarray, y_train: np.ndarray, C: int, *hs: np.ndarray) -> bool:
    """Rule out draws where the two implementations may legitimately differ by round-off."""
    means = class_means(h_train, y_train, C)
    return conditioning_ok(means, min(means.shape[1], C - 1)) and margin_ok(means, *hs)


@dataclass
class Problem:
    C: int
    h_train: np.ndarray
    y_train: np.ndarray
    h_test: np.ndarray
    y_test: np.ndarray
    pred_train: np.ndarray
    pred_test: np.ndarray
    train_cuts: list[int]
    test_cuts: list[int]


def cuts_for(draw, n: int) -> list[int]:
    """Batch boundaries: sorted distinct indices in (0, n), i.e. non-empty batches."""
    if n < 2:
        return []
    return sorted(draw(st.lists(st.integers(1, n - 1), unique=True, max_size=12)))


@st.composite
def problems(draw, max_p: int = 60, allow_missing: bool = True) -> Problem:
    C = draw(st.integers(2, 8))
    p = draw(st.integers(1, min(C, max_p)) | st.integers(1, max_p))  # p < C often
    n_train = draw(st.integers(C, 120))
    n_test = draw(st.integers(1, 80))
    concentration = draw(st.floats(0.2, 5.0))  # class imbalance
    noise = draw(st.sampled_from([0.1, 0.5, 1.0, 3.0]))
    offset = draw(st.sampled_from([0.0, 3.0]))
    missing = draw(st.integers(0, C - 1)) if allow_missing else 0
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    centres = rng.normal(size=(C, p)) + offset
    w = rng.dirichlet(np.full(C, concentration)) + 0.02 / C
    w /= w.sum()
    y_train = np.concatenate([np.arange(C), rng.choice(C, n_train - C, p=w)])
    rng.shuffle(y_train)
    h_train = centres[y_train] + noise * rng.normal(size=(n_train, p))

    present = np.sort(rng.choice(C, C - missing, replace=False))
    y_test = rng.choice(present, n_test, p=w[present] / w[present].sum())
    h_test = centres[y_test] + noise * rng.normal(size=(n_test, p))

    return Problem(
        C, h_train, y_train, h_test, y_test,
        rng.integers(0, C, n_train), rng.integers(0, C, n_test),
        cuts_for(draw, n_train), cuts_for(draw, n_test),
    )


def cuts_for_fixed(n: int) -> list[int]:
    """Fixed batch boundaries: batches of 3."""
    return list(range(1, n, 3))


def simplex_etf(C: int) -> np.ndarray:
    """Rows of sqrt(C/(C−1)) (I − 11ᵀ/C): C unit vectors with pairwise cosine −1/(C−1)."""
    return math.sqrt(C / (C - 1)) * (np.eye(C) - np.ones((C, C)) / C)


def orthonormal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(rows, cols)))
    return q


def centre_per_class(x: np.ndarray, y: np.ndarray, C: int) -> np.ndarray:
    """Subtract each class's mean from ``x`` so that adding it leaves class means unchanged."""
    return x - class_means(x, y, C)[y]


# ----------------------------------------------------------- 1. streaming == dense reference


@SETTINGS
@given(problems(allow_missing=False))
def test_train_split_matches_dense(pb: Problem) -> None:
    assume(well_posed(pb.h_train, pb.y_train, pb.C, pb.h_train))
    got = streaming(pb.h_train, pb.y_train, pb.h_train, pb.y_train, pb.pred_train, pb.C,
                    pb.train_cuts, pb.train_cuts)
    want = dense(pb.h_train, pb.y_train, pb.h_train, pb.y_train, pb.pred_train, pb.C)
    assert_metrics_equal(got, want, p=pb.h_train[0].size)


@SETTINGS
@given(problems())
def test_test_split_matches_dense(pb: Problem) -> None:
    """Test split evaluated with train means, possibly with classes missing from it."""
    assume(well_posed(pb.h_train, pb.y_train, pb.C, pb.h_test))
    got = streaming(pb.h_train, pb.y_train, pb.h_test, pb.y_test, pb.pred_test, pb.C,
                    pb.train_cuts, pb.test_cuts)
    want = dense(pb.h_train, pb.y_train, pb.h_test, pb.y_test, pb.pred_test, pb.C)
    assert_metrics_equal(got, want, p=pb.h_train[0].size)
    if len(np.unique(pb.y_test)) < 2:
        assert math.isnan(got["cdnv"])


def test_cdnv_averages_over_present_classes_only() -> None:
    """Hand-checked cdnv: class 2 is absent from the split, so only the pair (0, 1) counts."""
    h_train = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [10.0, 2.0], [0.0, 50.0]])
    y_train = np.array([0, 0, 1, 1, 2])  # means (1, 0), (10, 1), (0, 50)
    h = np.array([[1.0, 1.0], [1.0, -1.0], [10.0, 4.0]])  # Var_0 = 1, Var_1 = 9
    y = np.array([0, 0, 1])
    pred = np.array([0, 2, 1])
    got = streaming(h_train, y_train, h, y, pred, 3)
    want_cdnv = (1.0 + 9.0) / (2.0 * (81.0 + 1.0))  # both ordered pairs give the same ratio
    assert math.isclose(got["cdnv"], want_cdnv, rel_tol=1e-12)
    assert_metrics_equal(got, dense(h_train, y_train, h, y, pred, 3))


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 2), (1, 1, 5)])
def test_feature_maps_are_flattened(shape) -> None:
    rng = np.random.default_rng(1)
    C, n = 3, 30
    y = np.concatenate([np.arange(C), rng.integers(0, C, n - C)])
    h = rng.normal(size=(n, *shape)) + 2.0 * y.reshape(-1, *[1] * len(shape))
    pred = rng.integers(0, C, n)
    got = streaming(h, y, h, y, pred, C, [7, 19], [4])
    assert_metrics_equal(got, dense(h, y, h, y, pred, C))
    flat = h.reshape(n, -1)
    assert_metrics_equal(got, streaming(flat, y, flat, y, pred, C), rel=1e-12, abs_=1e-15)


# ------------------------------------------------------------------ 2. batch-split invariance


@SETTINGS
@given(problems())
def test_batch_split_invariance(pb: Problem) -> None:
    assume(well_posed(pb.h_train, pb.y_train, pb.C, pb.h_test))
    args = (pb.h_train, pb.y_train, pb.h_test, pb.y_test, pb.pred_test, pb.C)
    one = streaming(*args)
    many = streaming(*args, pb.train_cuts, pb.test_cuts)
    singles = streaming(*args, range(1, len(pb.y_train)), range(1, len(pb.y_test)))
    assert_metrics_equal(many, one, rel=1e-10, abs_=1e-13)
    assert_metrics_equal(singles, one, rel=1e-10, abs_=1e-13)
    # The sketch's basis depends on the batching through rounding; where Σ_W is (nearly) rank-
    # deficient its null directions are arbitrary, so the estimate moves a little (< 1 %).
    for other in (many, singles):
        assert same(other["stable_rank"], one["stable_rank"], rel=1e-2), (
            other["stable_rank"], one["stable_rank"], pb.h_train.shape, pb.h_test.shape)
    for key in ("ncc_accuracy", "nc4_mismatch"):  # counts: exactly equal
        assert many[key] == one[key] == singles[key]


# -------------------------------------- 2. the global mean of unbalanced splits (GLOBAL_MEANS)


def samples_well_posed(h_train: np.ndarray, y_train: np.ndarray, C: int, *hs: np.ndarray
                       ) -> bool:
    """:func:`well_posed` for means centred at the samples' mean, whose M has rank C on an
    unbalanced split (C − 1 on a balanced one): every direction kept is well conditioned, and
    none lies in between round-off and the kept ones."""
    means = class_means(h_train, y_train, C)
    centred = means - h_train.mean(axis=0)
    s = np.linalg.svd(centred, compute_uv=False)
    kept = s > 1e-9 * s[0]
    norms = np.linalg.norm(centred, axis=1)
    return bool(s[kept].min() > 1e-3 * s[0] and norms.min() > 1e-3 * norms.max()
                and margin_ok(means, *hs))


@SETTINGS
@given(problems())
def test_samples_global_mean_matches_dense_on_unbalanced_splits(pb: Problem) -> None:
    """μ_G the train samples' mean (lindegaard2023): streaming equals the dense reference,
    which centres at ``h_train.mean(axis=0)``, on both splits of unbalanced data."""
    assume(samples_well_posed(pb.h_train, pb.y_train, pb.C, pb.h_train, pb.h_test))
    for h, y, pred, cuts in ((pb.h_train, pb.y_train, pb.pred_train, pb.train_cuts),
                             (pb.h_test, pb.y_test, pb.pred_test, pb.test_cuts)):
        got = streaming(pb.h_train, pb.y_train, h, y, pred, pb.C, pb.train_cuts, cuts,
                        global_mean="samples")
        want = dense(pb.h_train, pb.y_train, h, y, pred, pb.C, "samples")
        assert_metrics_equal(got, want, p=pb.h_train[0].size)


def test_the_global_means_agree_on_balanced_splits_and_differ_on_unbalanced_ones() -> None:
    """Balanced: the two conventions give the same numbers (to round-off). Unbalanced (90 of
    class 0, 10 of each other): the samples' mean is pulled to class 0, so class 0's centred mean
    is shorter and NC2's equinorm worse than about the class means; NC1's Σ_W and the NCC, which
    do not depend on μ_G, stay the same."""
    rng = np.random.default_rng(0)
    C, p = 4, 6
    centres = 5 * simplex_etf(C) @ orthonormal(rng, C, C).T
    centres = np.column_stack([centres, np.zeros((C, p - C))])
    for counts, equal in (([20] * C, True), ([90, 10, 10, 10], False)):
        y = np.repeat(np.arange(C), counts)
        h = centres[y] + centre_per_class(0.3 * rng.normal(size=(len(y), p)), y, C)
        classes = streaming(h, y, h, y, y, C)
        samples = streaming(h, y, h, y, y, C, global_mean="samples")
        for key in ("tr_sigma_w", "cdnv", "ncc_accuracy", "nc4_mismatch"):
            assert same(classes[key], samples[key], rel=1e-12), key
        assert classes["nc2_equinorm"] <= 1e-12  # the ETF about the mean of its means
        if equal:
            assert_metrics_equal(samples, classes, rel=1e-9, abs_=1e-12)
        else:
            assert samples["nc2_equinorm"] > 0.2
            assert samples["nc2_maxangle"] > 0.1
            assert_metrics_equal(samples, dense(h, y, h, y, y, C, "samples"))


def test_an_unknown_global_mean_is_refused() -> None:
    with pytest.raises(ValueError, match="global_mean 'weighted': expected one of classes, samp"):
        ClassMeans(3, global_mean="weighted")


# ------------------------------------------------------------------------------ 3. known cases


@SETTINGS
@given(
    C=st.integers(2, 8),
    extra_dims=st.integers(0, 20),
    noise=st.sampled_from([0.0, 0.01, 1.0]),
    scale=st.sampled_from([1.0, 7.5]),
    per_class=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
)
def test_simplex_etf_means(C, extra_dims, noise, scale, per_class, seed) -> None:
    rng = np.random.default_rng(seed)
    p = C - 1 + extra_dims
    # ETF in the (C−1)-dim space 1⊥, rotated into R^p, shifted by an arbitrary global mean.
    ones = np.ones(C) / math.sqrt(C)
    in_complement = simplex_etf(C) @ np.linalg.qr(
        np.column_stack([ones, rng.normal(size=(C, C - 1))]))[0][:, 1:]
    means = scale * in_complement @ orthonormal(rng, p, C - 1).T + rng.normal(size=p)
    y = np.repeat(np.arange(C), per_class)
    h = means[y]
    if noise and per_class > 1:
        h = h + noise * centre_per_class(rng.normal(size=h.shape), y, C)

    got = streaming(h, y, h, y, y, C, cuts_for_fixed(len(y)), ())
    for key in ("nc2_equinorm", "nc2_equiangle", "nc2_equiangle_ratio", "nc2_maxangle"):
        assert abs(got[key]) <= 1e-12, (key, got[key])
    assert math.isclose(got["tr_sigma_b"], scale**2, rel_tol=1e-12)
    assert got["ncc_accuracy"] == 1.0 or noise == 1.0
    if noise == 0.0 or per_class == 1:
        assert got["nc1"] <= 1e-20
    assert_metrics_equal(got, dense(h, y, h, y, y, C))


@SETTINGS
@given(
    C=st.integers(2, 8),
    p=st.integers(1, 40),
    counts=st.lists(st.integers(1, 9), min_size=8, max_size=8),
    integer_means=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_zero_within_class_variance(C, p, counts, integer_means, seed) -> None:
    """Every sample equals its class mean: NC1 is fully collapsed."""
    rng = np.random.default_rng(seed)
    if integer_means:  # sums and k·x/k are exact: the within-class residuals are exactly zero
        means = rng.integers(-20, 21, size=(C, p)).astype(np.float64)
    else:
        means = rng.normal(size=(C, p)) * 3.0 + 1.0
    assume(len(np.unique(means, axis=0)) == C)
    y = np.repeat(np.arange(C), counts[:C])
    rng.shuffle(y)
    h = means[y]
    got = streaming(h, y, h, y, y, C, cuts_for_fixed(len(y)), [len(y) // 2] if len(y) > 1 else [])
    if integer_means:
        assert got["nc1"] == 0.0
        assert got["tr_sigma_w"] == 0.0
        assert got["cdnv"] == 0.0
        assert got["cdnv_own"] == 0.0
        assert got["nc1_ratio"] == 0.0
    assert 0.0 <= got["nc1"] <= 1e-20
    assert 0.0 <= got["tr_sigma_w"] <= 1e-20
    assert 0.0 <= got["cdnv"] <= 1e-20
    assert 0.0 <= got["cdnv_own"] <= 1e-20
    assert got["ncc_accuracy"] == 1.0
    assert got["nc4_mismatch"] == 0.0
    assert math.isclose(got["tr_sigma_t"], got["tr_sigma_b"], rel_tol=1e-12)


@SETTINGS
@given(C=st.integers(2, 8), extra=st.integers(0, 30), seed=st.integers(0, 2**32 - 1))
def test_well_separated_clusters(C, extra, seed) -> None:
    rng = np.random.default_rng(seed)
    p = C + extra
    means = 50.0 * orthonormal(rng, p, C).T + rng.normal(size=p) * 10.0  # pairwise dist 50√2
    y_train = np.concatenate([np.arange(C), rng.integers(0, C, 60)])
    y_test = rng.integers(0, C, 40)
    h_train = means[y_train] + rng.normal(size=(len(y_train), p))
    h_test = means[y_test] + rng.normal(size=(len(y_test), p))
    for h, y in ((h_train, y_train), (h_test, y_test)):
        right = streaming(h_train, y_train, h, y, y, C, [5, 17], [3])
        wrong = streaming(h_train, y_train, h, y, (y + 1) % C, C, [5, 17], [3])
        assert right["ncc_accuracy"] == wrong["ncc_accuracy"] == 1.0
        assert right["nc4_mismatch"] == 0.0
        assert wrong["nc4_mismatch"] == 1.0
        assert right["nc1_ratio"] < 0.05


@SETTINGS
@given(problems())
def test_nc4_mismatch_against_ncc_predictions(pb: Problem) -> None:
    assume(well_posed(pb.h_train, pb.y_train, pb.C, pb.h_test))
    ncc = ncc_numpy(pb.h_test, class_means(pb.h_train, pb.y_train, pb.C))
    args = (pb.h_train, pb.y_train, pb.h_test, pb.y_test)
    agree = streaming(*args, ncc, pb.C, pb.train_cuts, pb.test_cuts)
    disagree = streaming(*args, (ncc + 1) % pb.C, pb.C, pb.train_cuts, pb.test_cuts)
    half = ncc.copy()
    half[::2] = (half[::2] + 1) % pb.C
    mixed = streaming(*args, half, pb.C, pb.train_cuts, pb.test_cuts)
    no_pred = streaming(*args, None, pb.C, pb.train_cuts, pb.test_cuts)
    assert agree["nc4_mismatch"] == 0.0
    assert disagree["nc4_mismatch"] == 1.0
    assert mixed["nc4_mismatch"] == len(ncc[::2]) / len(ncc)
    assert no_pred["nc4_mismatch"] == 0.0
    assert agree["ncc_accuracy"] == np.mean(ncc == pb.y_test)


@SETTINGS
@given(
    C=st.integers(3, 8),
    p=st.integers(2, 30),
    per_class=st.integers(2, 8),
    seed=st.integers(0, 2**32 - 1),
)
def test_rank_deficient_duplicate_means(C, p, per_class, seed) -> None:
    """Classes 0 and 1 hold the same samples, so μ_0 = μ_1 exactly and rank Σ_B ≤ C − 2.

    Integer-valued features make every sum exact, so both implementations see bitwise equal
    means: NCC ties go to class 0 in both, and cdnv is +inf in both (zero distance).
    """
    rng = np.random.default_rng(seed)
    blocks = [rng.integers(-9, 10, size=(per_class, p)) + 5 * rng.integers(-3, 4, size=p)
              for _ in range(C - 1)]
    h = np.concatenate([blocks[0], *blocks]).astype(np.float64)
    y = np.repeat(np.arange(C), per_class)
    perm = rng.permutation(len(y))
    h, y = h[perm], y[perm]
    means = class_means(h, y, C)
    assume(len(np.unique(means, axis=0)) == C - 1)
    assume(conditioning_ok(means, min(p, C - 2)) and margin_ok(np.delete(means, 1, axis=0), h))
    pred = rng.integers(0, C, len(y))
    got = streaming(h, y, h, y, pred, C, cuts_for_fixed(len(y)), [len(y) // 3])
    want = dense(h, y, h, y, pred, C)
    assert_metrics_equal(got, want)
    assert got["cdnv"] == math.inf
    assert got["ncc_accuracy"] <= 1.0 - 1.0 / C + 1e-12  # class 1 always loses the tie


@SETTINGS
@given(
    C=st.integers(3, 8),
    p=st.integers(3, 30),
    rank=st.integers(1, 2),
    per_class=st.integers(2, 10),
    seed=st.integers(0, 2**32 - 1),
)
def test_rank_deficient_subspace_means(C, p, rank, per_class, seed) -> None:
    """Means in a random ``rank``-dim affine subspace: nc1 only sees Σ_W inside that subspace."""
    rng = np.random.default_rng(seed)
    basis = orthonormal(rng, p, rank)
    coords = rng.normal(size=(C, rank)) * 3.0
    means = coords @ basis.T + rng.normal(size=p)
    y = np.concatenate([np.repeat(np.arange(C), per_class), rng.integers(0, C, 7)])
    h = means[y] + centre_per_class(rng.normal(size=(len(y), p)), y, C)
    fitted = class_means(h, y, C)
    assume(conditioning_ok(fitted, rank) and margin_ok(fitted, h))
    pred = rng.integers(0, C, len(y))
    got = streaming(h, y, h, y, pred, C, cuts_for_fixed(len(y)), [5])
    assert_metrics_equal(got, dense(h, y, h, y, pred, C))

    # Independent check in subspace coordinates, where Σ_B is invertible.
    z = (h - means.mean(axis=0)) @ basis
    mz = class_means(z, y, C)
    mz_c = mz - mz.mean(axis=0)
    sigma_b = mz_c.T @ mz_c / C
    resid = z - mz[y]
    sigma_w = resid.T @ resid / len(y)
    nc1 = np.trace(sigma_w @ np.linalg.inv(sigma_b)) / C
    assert math.isclose(got["nc1"], nc1, rel_tol=1e-8)


@SETTINGS
@given(problems(max_p=1))
def test_one_dimensional_features(pb: Problem) -> None:
    """p = 1: Σ_B has rank 1 whatever C, and every cosine is ±1."""
    assume(well_posed(pb.h_train, pb.y_train, pb.C, pb.h_test))
    got = streaming(pb.h_train, pb.y_train, pb.h_test, pb.y_test, pb.pred_test, pb.C,
                    pb.train_cuts, pb.test_cuts)
    assert_metrics_equal(got, dense(pb.h_train, pb.y_train, pb.h_test, pb.y_test,
                                    pb.pred_test, pb.C))
    means = class_means(pb.h_train, pb.y_train, pb.C)[:, 0]
    resid = pb.h_test[:, 0] - means[pb.y_test]
    var_b = np.var(means)
    assert math.isclose(got["nc1"], np.mean(resid**2) / var_b / pb.C, rel_tol=1e-10)


def test_p1_three_classes_explicit() -> None:
    h = np.array([[-2.0], [-1.0], [0.5], [1.5], [3.0], [5.0]])
    y = np.array([0, 0, 1, 1, 2, 2])  # means −1.5, 1, 4 ; μ_G = 7/6
    pred = np.array([0, 1, 1, 1, 2, 0])
    got = streaming(h, y, h, y, pred, 3, [1, 4], [2, 3])
    assert_metrics_equal(got, dense(h, y, h, y, pred, 3))
    assert got["ncc_accuracy"] == 1.0
    assert got["nc4_mismatch"] == 2 / 6
    assert math.isclose(got["tr_sigma_w"], (0.25 * 2 + 0.25 * 2 + 1.0 * 2) / 6, rel_tol=1e-12)


# ------------------------------------------------------------------------------ 4. error cases


def _geometry(C: int = 3, p: int = 4):
    rng = np.random.default_rng(0)
    y = np.arange(3 * C) % C
    cm = ClassMeans(C)
    cm.update(torch.tensor(rng.normal(size=(len(y), p))), torch.tensor(y))
    return cm.compute()


def test_class_without_training_samples() -> None:
    cm = ClassMeans(4)
    cm.update(torch.randn(6, 3, dtype=torch.float64), torch.tensor([0, 1, 3, 3, 1, 0]))
    with pytest.raises(ValueError, match=r"\[2\]"):
        cm.compute()


def test_several_classes_without_training_samples() -> None:
    cm = ClassMeans(5)
    cm.update(torch.randn(3, 2, dtype=torch.float64), torch.tensor([1, 3, 1]))
    with pytest.raises(ValueError, match=r"\[0, 2, 4\]"):
        cm.compute()


def test_a_nan_label_is_refused() -> None:
    # cast to int64 it is the most negative int64, whose negation overflows back to itself
    cm = ClassMeans(3)
    cm.update(torch.randn(4, 2, dtype=torch.float64), torch.tensor([0.0, 1.0, 2.0, math.nan]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\], got range \[-"):
        cm.compute()


@pytest.mark.parametrize("bad", [[0, 1, 3], [-1, 0, 1], [0, 7, 2]])
def test_labels_out_of_range_are_refused_when_computed(bad) -> None:
    # Nothing is read back per batch (on a GPU that would stall it): update takes the batch,
    # compute refuses the split, naming the range of its labels.
    h = torch.randn(3, 4, dtype=torch.float64)
    span = rf"got range \[{min(bad)}, {max(bad)}\]"
    whole = rf"got range \[{min(bad + [0])}, {max(bad + [2])}\]"  # with the good batch
    cm = ClassMeans(3)
    cm.update(h, torch.tensor([0, 1, 2]))
    cm.update(h, torch.tensor(bad))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\], " + whole):
        cm.compute()
    stats = SplitStats(_geometry())
    stats.update(h, torch.tensor(bad))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\], " + span):
        stats.compute()


def test_labels_make_their_counts_and_span_without_reading_back() -> None:
    batch = labels(torch.tensor([2, 0, 2, 5, -1]), 3, "cpu")
    assert batch.y.tolist() == [2, 0, 2, 2, 0]  # clamped: the sums stay in bounds
    assert batch.counts.dtype == torch.float64 and batch.counts.tolist() == [2.0, 0.0, 3.0]
    assert batch.span.tolist() == [-1, 5]  # (min, max)
    assert labels(torch.zeros(0, dtype=torch.long), 3, "cpu").span.tolist() == [0, 0]


def test_compute_before_update() -> None:
    with pytest.raises(ValueError, match="before any update"):
        ClassMeans(3).compute()
    with pytest.raises(ValueError, match="before any update"):
        SplitStats(_geometry()).compute()


# --------------------------------------------------------------------- 5. float32 accumulation


@SETTINGS
@given(problems(max_p=30))
def test_float32_inputs_accumulate_in_float64(pb: Problem) -> None:
    h_train32 = pb.h_train.astype(np.float32)
    h_test32 = pb.h_test.astype(np.float32)
    args = (pb.y_test, pb.pred_test, pb.C, pb.train_cuts, pb.test_cuts)
    from32 = streaming(h_train32, pb.y_train, h_test32, *args, dtype=torch.float32)
    from64 = streaming(h_train32.astype(np.float64), pb.y_train, h_test32.astype(np.float64),
                       *args, dtype=torch.float64)
    for key in ALL_METRICS:
        assert same(from32[key], from64[key], rel=0.0, abs_=0.0), key


def test_float32_accumulators_are_float64() -> None:
    h = torch.randn(10, 3, dtype=torch.float32) + 1e4  # float32 sums would lose digits
    y = torch.arange(10) % 2
    cm = ClassMeans(2)
    for i in range(10):
        cm.update(h[i : i + 1], y[i : i + 1])
    assert cm.sums.dtype == torch.float64
    geometry = cm.compute()
    want = torch.stack([h.double()[y == c].mean(dim=0) for c in range(2)])
    torch.testing.assert_close(geometry.means, want, rtol=1e-15, atol=0.0)
    stats = SplitStats(geometry)
    stats.update(h, y)
    assert stats.within_sq.dtype == stats.proj_sq.dtype == torch.float64


# ------------------------------------------------- 6. float32 arithmetic (precision="float32")
# The tolerances the float32 path is held to (metrics.PRECISIONS): every metric within
# REL32 relative (ABS32 absolute, for values near zero such as the NC2 angle shift) of the dense
# float64 reference on the same float32 features, on well-posed draws (well_posed32): their
# errors grow with Σ_B's condition and with how close two class means are against the spread.
# Measured over 1,500 such draws of `problems()`, as error / (|value| + 0.01): nc1 9.6e-7, cdnv
# 6.2e-7, the rest ≤ 4e-7, the counts exact; cdnv_own, exactly 0 where every test class has one
# sample, came out up to 2.5e-8 (its variance is a difference of two float32-rounded sums).
# The float64 path is held to REL = 1e-8.
REL32, ABS32 = 1e-5, 1e-7


def separated(h: np.ndarray, y: np.ndarray, bound: float = 100.0) -> bool:
    """No two of the split's own class means so close that (Var_c + Var_c') / (2‖μ_c − μ_c'‖²)
    exceeds ``bound``: the CDNV divides by that distance, so round-off of the means (~1e-7 of
    the spread in float32) grows by the ratio."""
    present = np.unique(y)
    means = np.stack([h[y == c].mean(axis=0) for c in present])
    var = np.array([((h[y == c] - m) ** 2).sum(axis=1).mean()
                    for c, m in zip(present, means, strict=True)])
    dist = ((means[:, None] - means[None]) ** 2).sum(axis=2)
    off = ~np.eye(len(present), dtype=bool)
    return bool(np.all((var[:, None] + var[None])[off] <= 2 * bound * dist[off]))


def well_posed32(h_train: np.ndarray, y_train: np.ndarray, C: int, *hs: np.ndarray) -> bool:
    """:func:`well_posed` for float32 round-off (~1e-7 of a row): Σ_B's smallest kept singular
    value ≥ 1% of its largest (NC1 divides by its square), no sample within 1e-4 of a tie,
    and the classes :func:`separated` (the CDNVs divide by their means' distances)."""
    means = class_means(h_train, y_train, C)
    return (separated(h_train, y_train)
            and conditioning_ok(means, min(means.shape[1], C - 1), floor=1e-2)
            and margin_ok(means, *hs, margin=1e-4))


@SETTINGS
@given(problems(), st.booleans())
def test_float32_arithmetic_matches_dense(pb: Problem, on_train: bool) -> None:
    """precision="float32" against the dense float64 reference of the same float32 features,
    on the train split or the test split (classes possibly missing), in drawn batches."""
    h_train = pb.h_train.astype(np.float32)
    h, y, pred, cuts = ((h_train, pb.y_train, pb.pred_train, pb.train_cuts) if on_train else
                        (pb.h_test.astype(np.float32), pb.y_test, pb.pred_test, pb.test_cuts))
    assume(well_posed32(h_train, pb.y_train, pb.C, h) and separated(h, y))
    got = streaming(h_train, pb.y_train, h, y, pred, pb.C, pb.train_cuts, cuts,
                    dtype=torch.float32, precision="float32")
    want = dense(h_train.astype(np.float64), pb.y_train, h.astype(np.float64), y, pred, pb.C)
    assert_metrics_equal(got, want, REL32, ABS32, p=h.shape[1])


@pytest.mark.parametrize("offset", [0.0, 1e3])
@pytest.mark.parametrize("spread", [1.0, 1e-3])
def test_float32_keeps_a_collapsed_layer_far_from_the_origin(offset, spread) -> None:
    """Class means 1 apart around ``offset``, samples ``spread`` from them: the within-class
    variance is ~1e-12 of the features' squared size at (1e3, 1e-3), below float32's round-off
    of a sum of squares. Shifted sums and centring on head + tail keep it: every metric within
    REL32 of the float64 path (the same features), which the tests above hold to the dense
    reference; without the tail, tr_sigma_w misses by ~1e-3 at (1e3, 1e-3)."""
    rng = np.random.default_rng(7)
    C, p = 5, 40
    means = rng.normal(size=(C, p)) + offset
    y = np.repeat(np.arange(C), 60)
    rng.shuffle(y)
    h = (means[y] + spread * rng.normal(size=(len(y), p))).astype(np.float32)
    cuts = list(range(37, len(y), 37))
    args = (h, y, h, y, y, C, cuts, cuts)
    got = streaming(*args, dtype=torch.float32, precision="float32")
    want = streaming(*args, dtype=torch.float32)
    assert want["tr_sigma_w"] < 2 * spread**2 * p
    assert_metrics_equal(got, want, REL32, 1e-12, p=p)  # an absolute 1e-7 would pass anything


@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_float32_zero_within_class_variance_and_etf(offset) -> None:
    """Every sample at its class mean, the means a simplex ETF: in float32 the within-class
    quantities are exactly 0 (a row minus the head of its mean, then its tail, both exact) and
    the NC2 measures of an ETF 0 to float32's round-off."""
    rng = np.random.default_rng(3)
    C, p = 6, 9
    ones = np.ones(C) / math.sqrt(C)
    in_complement = simplex_etf(C) @ np.linalg.qr(
        np.column_stack([ones, rng.normal(size=(C, C - 1))]))[0][:, 1:]
    means = (4.0 * in_complement @ orthonormal(rng, p, C - 1).T + offset).astype(np.float32)
    y = np.repeat(np.arange(C), 7)
    rng.shuffle(y)
    h = means[y]
    got = streaming(h, y, h, y, y, C, [10, 25], [], dtype=torch.float32, precision="float32")
    for key in ("nc1", "tr_sigma_w", "cdnv", "cdnv_own", "nc1_ratio", "nc4_mismatch"):
        assert got[key] == 0.0, (key, got[key])
    assert got["ncc_accuracy"] == 1.0
    for key in ("nc2_equinorm", "nc2_equiangle", "nc2_maxangle"):
        assert abs(got[key]) <= 1e-5 * (1 + offset / 4), (key, got[key])


def test_float32_arithmetic_in_float32_and_totals_in_float64() -> None:
    """The batches stay float32 (no float64 copy: the point of it) and every total is float64;
    the geometry says which arithmetic its split statistics follow."""
    h, y = torch.randn(20, 6) + 3, torch.arange(20) % 4
    acc = ClassMeans(4, precision="float32")
    acc.update(h, y)
    assert acc.sums.dtype == acc.scatter_sketch.dtype == torch.float64
    assert acc.shift.dtype == torch.float32
    geometry = acc.compute()
    assert geometry.precision == "float32" and geometry.means.dtype == torch.float64
    assert geometry.batch_side.means.dtype == geometry.batch_side.tail.dtype == torch.float32
    stats = SplitStats(geometry)
    stats.update(h, y, y)
    assert {t.dtype for t in (stats.within_sq, stats.proj_sq, stats.sketched)} == {torch.float64}
    with pytest.raises(ValueError, match="precision 'float16': expected one of float64, float32"):
        ClassMeans(4, precision="float16")


def test_float32_overflow_is_named_not_a_crash() -> None:
    """Finite features whose deviations from the class means reach ~1e19 overflow float32's
    products (the scatter sketch first): the accumulators turn non-finite and compute() says
    so, naming float64 as the way out, where the eigen-solver would otherwise fail on an inf
    sketch. float64 measures the same features."""
    torch.manual_seed(0)
    y = torch.arange(200) % 4
    h = (torch.randn(4, 12)[y] * 5 + 50 + 0.01 * torch.randn(200, 12)) * 3e20
    assert torch.isfinite(h).all()
    exact = ClassMeans(4)
    exact.update(h, y)
    stats = SplitStats(exact.compute())
    stats.update(h, y)
    assert math.isfinite(stats.compute()["stable_rank"])
    fast = ClassMeans(4, precision="float32")
    fast.update(h, y)
    assert not fast.finite()
    with pytest.raises(ValueError, match="float32 arithmetic.*use precision float64"):
        fast.compute()


def test_empty_batches_and_small_label_dtypes_are_accepted():
    rng = np.random.default_rng(0)
    h = torch.tensor(rng.normal(size=(12, 4)))
    y = torch.arange(12) % 3
    one, many = ClassMeans(3), ClassMeans(3)
    one.update(h, y)
    many.update(h[:0], y[:0])
    many.update(h, y.to(torch.uint8))
    assert torch.equal(one.compute().means, many.compute().means)
    stats = SplitStats(one.compute())
    stats.update(h[:0], y[:0], y[:0])
    stats.update(h, y.to(torch.int16), y)
    assert stats.compute()["ncc_accuracy"] >= 0


def test_ncc_survives_a_large_common_offset():
    """Means 1e-5 apart on top of an offset of 1e5: nearest means must still be found."""
    rng = np.random.default_rng(0)
    means = np.array([[0.0], [1e-5], [3e-5]]) + 1e5
    y = np.repeat(np.arange(3), 4)
    h = means[y] + rng.normal(scale=1e-7, size=(12, 1))
    acc = ClassMeans(3)
    acc.update(torch.tensor(h), torch.tensor(y))
    stats = SplitStats(acc.compute())
    stats.update(torch.tensor(h), torch.tensor(y))
    assert stats.compute()["ncc_accuracy"] == 1.0


def test_cdnv_own_uses_the_splits_own_means() -> None:
    """A test split whose classes sit 10 away from the train means, each a tight cluster: with
    the train means its CDNV is large, with its own means (galanti2022) it is the clusters'."""
    rng = np.random.default_rng(0)
    C, p, n = 3, 5, 40
    train_means = rng.normal(size=(C, p)) * 20
    y = np.repeat(np.arange(C), n)
    h_train = train_means[y] + 0.1 * rng.normal(size=(len(y), p))
    shift = 10 * rng.normal(size=(C, p))
    h_test = train_means[y] + shift[y] + 0.1 * rng.normal(size=(len(y), p))
    got = streaming(h_train, y, h_test, y, y, C, cuts_for_fixed(len(y)), [])
    want = dense(h_train, y, h_test, y, y, C)
    assert got["cdnv"] > 100 * got["cdnv_own"]
    assert math.isclose(got["cdnv_own"], want["cdnv_own"], rel_tol=1e-9)


def test_equiangle_ratio_is_undefined_when_the_mean_cosine_is_zero() -> None:
    """Four class means on one line, one on one side of their centre and three on the other:
    the cosines are three +1 and three −1 and average to 0, so their std relative to the mean
    is NaN (both paths), not ±inf."""
    means = np.array([[3.0, 0, 0], [-0.5, 0, 0], [-1.0, 0, 0], [-1.5, 0, 0]])
    y = np.repeat(np.arange(4), 2)
    got = streaming(means[y], y, means[y], y, y, 4)
    assert math.isnan(got["nc2_equiangle_ratio"])
    assert math.isnan(dense(means[y], y, means[y], y, y, 4)["nc2_equiangle_ratio"])


def test_the_registry_is_the_one_list_of_the_metrics() -> None:
    """vocabulary.METRICS names every metric once: the streaming path computes exactly its
    split and mean metrics, the dense reference each of them, and docs/architecture.md
    defines every one (so that adding a metric is metrics.py, metrics_dense.py and one
    registry line, and its definition)."""
    from pathlib import Path

    from nclayers.vocabulary import METRICS

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 5)
    h = rng.normal(size=(15, 4)) + 3 * np.eye(4)[y]
    got, want = streaming(h, y, h, y, y, 3), dense(h, y, h, y, y, 3)
    computed = {n for n, m in METRICS.items() if m.source in ("split", "means")}
    assert set(got) == computed == set(MEAN_METRICS) | set(SPLIT_METRICS)
    assert computed <= set(want)
    assert {m.source for m in METRICS.values()} == {"split", "means", "weights"}
    docs = (Path(__file__).parents[1] / "docs" / "architecture.md").read_text()
    section = docs.split("## Metric definitions")[1].split("\n## ")[0]
    assert [n for n in METRICS if f"`{n}`" not in section] == []
