"""NC3 (feature-weight alignment, self-duality), weight spectra, stable rank and the derived
per-run quantities, against known answers and dense references."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from nclayers import models
from nclayers.derived import collapse_layer, derived_metrics, effective_depth, interpolation_epoch
from nclayers.measurement import measure, weight_spectra
from nclayers.metrics import ClassMeans, SplitStats, top_eigenvalue
from nclayers.weights import duality, find_consumers, pabs, spectrum, weight_matrix


def centred_means(C: int, p: int, seed: int = 0) -> torch.Tensor:
    means = torch.randn(C, p, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return means - means.mean(0)


def test_duality_is_zero_for_scaled_means_and_two_for_opposite():
    m = centred_means(5, 12)
    layer = nn.Linear(12, 5)
    with torch.no_grad():
        layer.weight.copy_(3.0 * m)
    assert duality(layer, m) == pytest.approx(0.0, abs=1e-7)
    with torch.no_grad():
        layer.weight.copy_(-m)
    assert duality(layer, m) == pytest.approx(2.0, abs=1e-7)
    assert math.isnan(duality(nn.Linear(11, 5), m))  # shapes that do not match


def test_pabs_is_one_when_weight_rows_span_the_means_and_low_for_orthogonal():
    C, p = 4, 20
    m = torch.zeros(C, p, dtype=torch.float64)
    m[:, :C] = centred_means(C, C)  # range(M) inside the first C coordinates
    aligned, orthogonal = nn.Linear(p, 6), nn.Linear(p, 6)
    with torch.no_grad():
        aligned.weight.zero_()
        aligned.weight[:C, :C] = torch.randn(C, C)
        orthogonal.weight.zero_()
        orthogonal.weight[:, 10:16] = torch.eye(6)
    assert pabs(aligned, m, (p,)) == pytest.approx(1.0, abs=1e-6)
    assert pabs(orthogonal, m, (p,)) == pytest.approx(0.0, abs=1e-6)


def test_pabs_of_a_conv_uses_the_input_channel_axis():
    """Means that live in channels 0..2 only, a kernel reading only those channels → 1."""
    C, c_in, hw = 4, 8, 3
    m = torch.zeros(C, c_in, hw, hw, dtype=torch.float64)
    m[:, :3] = torch.randn(C, 3, hw, hw, dtype=torch.float64)
    m = (m - m.mean(0)).reshape(C, -1)
    conv = nn.Conv2d(c_in, 5, 3)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, :3] = torch.randn(5, 3, 3, 3)
    assert weight_matrix(conv).shape == (5 * 9, c_in)
    assert pabs(conv, m, (c_in, hw, hw)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("global_mean", ["classes", "samples"])
@pytest.mark.parametrize("seed", range(4))
def test_pabs_equals_the_mean_cosine_of_scipys_principal_angles(global_mean, seed):
    """On an unbalanced split, PABS as measured (through ClassMeans' geometry) is the mean
    cosine of scipy's principal angles between range(M), M centred as the convention says, and
    the top-C input space of the consumer's weight. M has rank C − 1 about either global mean
    (both lie in the means' affine hull), so there are C − 1 angles, not the papers' C ("1/C
    Σ_k^C cos θ_k", rangamani2023 §3, lindegaard2023 eq. 2.25), and the two conventions give
    the same PABS."""
    from scipy.linalg import subspace_angles

    rng = np.random.default_rng(seed)
    C, p = 4, 12
    y = np.repeat(np.arange(C), [30, 5, 12, 8])
    h = rng.normal(size=(C, p))[y] * 3 + rng.normal(size=(len(y), p))
    layer = nn.Linear(p, 9)
    acc = ClassMeans(C, global_mean=global_mean)
    acc.update(torch.tensor(h), torch.tensor(y))
    geometry = acc.compute()
    got = pabs(layer, geometry.centred, (p,))

    means = np.stack([h[y == c].mean(0) for c in range(C)])
    mu_g = means.mean(0) if global_mean == "classes" else h.mean(0)
    M = (means - mu_g).T
    M = np.linalg.svd(M, full_matrices=False)[0][:, :np.linalg.matrix_rank(M)]
    v_c = np.linalg.svd(layer.weight.detach().double().numpy())[2][:C].T
    assert M.shape[1] == C - 1
    assert got == pytest.approx(float(np.cos(subspace_angles(M, v_c)).mean()), abs=1e-9)
    other = ClassMeans(C, global_mean="classes" if global_mean == "samples" else "samples")
    other.update(torch.tensor(h), torch.tensor(y))
    assert pabs(layer, other.compute().centred, (p,)) == pytest.approx(got, abs=1e-12)


def test_pabs_is_nan_when_trivial():
    m = centred_means(10, 8)
    assert math.isnan(pabs(nn.Linear(8, 16), m, (8,)))  # top-10 space of R^8 is everything


def test_spectrum_and_weight_spectra_table():
    net = models.build("mlp", (1, 4, 4), 3, depth=2, width=8, batchnorm=False)
    consumers = find_consumers(net, net.tapped_layers, torch.zeros(2, 1, 4, 4))
    assert consumers == {"input": net.layer1[0], "layer1": net.layer2[0],
                         "layer2": net.classifier}
    table = weight_spectra(net, consumers, net.tapped_layers)
    assert list(table.groupby("layer_index").size()) == [8, 8, 3]
    assert table.groupby("layer")["share"].sum().to_numpy() == pytest.approx(1.0)
    ref = np.linalg.svd(net.classifier.weight.detach().double().numpy(), compute_uv=False)
    assert spectrum(net.classifier).numpy() == pytest.approx(ref)


def test_consumers_skip_pooling_and_prefer_the_direct_reader():
    net = models.build("resnet18", (3, 8, 8), 5, width=4)
    consumers = find_consumers(net, net.tapped_layers, torch.zeros(2, 3, 8, 8))
    assert consumers["stem"] is net.layer1[0].conv1
    assert consumers["layer1.1"] is net.layer2[0].conv1
    assert consumers["avgpool"] is net.classifier


def stats_of(h: torch.Tensor, y: torch.Tensor, C: int, batch: int = 64) -> dict:
    acc = ClassMeans(C)
    for i in range(0, len(h), batch):
        acc.update(h[i:i + batch], y[i:i + batch])
    stats = SplitStats(acc.compute())
    for i in range(0, len(h), batch):
        stats.update(h[i:i + batch], y[i:i + batch])
    return stats.compute()


@pytest.mark.parametrize("p", [5, 24, 40, 200])
def test_stable_rank_matches_the_exact_value_on_decaying_spectra(p):
    g = torch.Generator().manual_seed(p)
    C, n = 6, 600
    y = torch.arange(n) % C
    scale = 0.8 ** torch.arange(p, dtype=torch.float64)
    h = torch.randn(n, p, dtype=torch.float64, generator=g) * scale + 5 * torch.randn(
        C, p, dtype=torch.float64, generator=g)[y] + 20.0  # large common offset
    got = stats_of(h, y, C)["stable_rank"]
    means = torch.stack([h[y == c].mean(0) for c in range(C)])
    centred = h - means[y]
    eig = torch.linalg.eigvalsh(centred.T @ centred)
    assert got == pytest.approx(float(eig.sum() / eig[-1]), rel=1e-6)


def test_top_eigenvalue_is_exact_for_low_rank_and_never_above():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 5, dtype=torch.float64, generator=g) @ torch.randn(
        5, 50, dtype=torch.float64, generator=g)
    a = x.T @ x
    omega = torch.randn(50, 12, dtype=torch.float64, generator=g)
    exact = float(torch.linalg.eigvalsh(a)[-1])
    assert top_eigenvalue(a @ omega, omega) == pytest.approx(exact, rel=1e-9)
    iso = torch.randn(400, 50, dtype=torch.float64, generator=g)
    b = iso.T @ iso
    assert top_eigenvalue(b @ omega, omega) <= float(torch.linalg.eigvalsh(b)[-1]) * (1 + 1e-9)


def test_measure_emits_nc3_for_the_classifier_layer_only():
    torch.manual_seed(0)
    net = models.build("mlp", (1, 8, 8), 4, depth=2, width=16)
    x, y = torch.randn(64, 1, 8, 8), torch.arange(64) % 4
    table = measure(net, [(x, y)], [(x, y)])
    duals = table[table["metric"] == "nc3_duality"]
    assert list(duals["layer"]) == ["layer2"] and list(duals["split"]) == ["train"]
    assert set(table[table["metric"] == "nc3_pabs"]["layer"]) == {"input", "layer1", "layer2"}
    shift = table[table["metric"] == "nc2_angle_shift"]
    assert len(shift) == 3


def test_derived_quantities():
    ratios = pd.Series([0.9, 0.1, 0.5, 0.15, 0.1], index=[0, 1, 2, 3, 4])
    assert collapse_layer(ratios, 0.2) == 3
    assert math.isnan(collapse_layer(pd.Series([0.1, 0.3], index=[0, 1]), 0.2))
    assert effective_depth(pd.Series([0.5, 0.995, 0.9, 1.0]), 0.99) == 1
    assert math.isnan(effective_depth(pd.Series([0.5, 0.9]), 0.99))
    assert interpolation_epoch(pd.Series([0.1, 0.99, 0.996, 1.0], index=[0, 5, 10, 15]),
                               0.995) == 10


def test_derived_metrics_rows_join_the_tidy_table():
    ids = {"run": "r", "dataset": "d", "arch": "a", "seed": 0}
    metrics = pd.DataFrame([
        {**ids, "epoch": 3, "layer": f"l{i}", "layer_index": i, "split": "train",
         "metric": m, "value": v}
        for i in range(3) for m, v in (("nc1_ratio", [0.5, 0.1, 0.05][i]),
                                      ("ncc_accuracy", [0.5, 0.99, 1.0][i]))])
    training = pd.DataFrame({**ids, "epoch": [0, 1, 2, 3], "train_acc": [0.1, 0.5, 1.0, 1.0]})
    rows = derived_metrics(metrics, training).set_index("metric")["value"]
    assert rows["collapse_layer"] == 1 and rows["effective_depth"] == 1
    assert rows["interpolation_epoch"] == 2


def test_nystrom_fallback_is_a_lower_bound(monkeypatch):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 50, dtype=torch.float64, generator=g)
    a, omega = x.T @ x, torch.randn(50, 12, dtype=torch.float64, generator=g)
    exact = float(torch.linalg.eigvalsh(a)[-1])
    monkeypatch.setattr(torch.linalg, "cholesky_ex", lambda m: (m, torch.tensor(1)))
    assert 0.5 * exact < top_eigenvalue(a @ omega, omega) <= exact


def test_degenerate_inputs_give_documented_nans_not_crashes():
    """Constant features (Σ_B = 0, Σ_W = 0) and a class with a single sample."""
    y = torch.tensor([0, 0, 1, 1, 2])
    constant = stats_of(torch.ones(5, 7, dtype=torch.float64), y, 3)
    for metric in ("nc1", "nc1_ratio", "stable_rank", "cdnv"):
        assert math.isnan(constant[metric]), metric
    assert constant["tr_sigma_w"] == 0.0
    h = torch.randn(5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    single = stats_of(h, y, 3)  # class 2 has one sample: its variance is 0, nothing breaks
    assert all(math.isfinite(single[m]) for m in ("nc1", "nc1_ratio", "cdnv", "stable_rank"))
