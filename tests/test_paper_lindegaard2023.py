"""Lindegaard (2023)'s figures and claims (nclayers.papers.lindegaard2023) on hand-built tables
with a known answer: every claim holds on one experiment and fails on a changed copy."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from nclayers.derived import derived_metrics
from nclayers.papers import CLAIM_COLUMNS, Tables
from nclayers.papers import lindegaard2023 as paper
from nclayers.vocabulary import PAPER_FIGURE_READS, PAPER_FIGURES, PAPER_TABLES

METRIC_COLUMNS = ["run", "dataset", "arch", "seed", "epoch", "layer", "layer_index", "split",
                  "metric", "value", "group"]
RUNS = [  # run, group, dataset, arch, seed, lr, wd, final test acc, selected
    ("sweep-mnist-mlp-lr0.1-s0", "sweep", "mnist", "mlp", 0, 0.1, 2e-3, 0.98, True),
    ("sweep-mnist-mlp-lr0.01-s0", "sweep", "mnist", "mlp", 0, 0.01, 2e-3, 0.90, False),
    ("grid-cifar10-mlp-lr0.1-wd0.002-s0", "grid", "cifar10", "mlp", 0, 0.1, 2e-3, 0.60, False),
    ("grid-cifar10-mlp-lr0.01-wd0.002-s0", "grid", "cifar10", "mlp", 0, 0.01, 2e-3, 0.50, False),
    ("grid-cifar10-mlp-lr0.1-wd0.0005-s0", "grid", "cifar10", "mlp", 0, 0.1, 5e-4, 0.55, False),
    ("features-cifar10-mlp-s0", "features", "cifar10", "mlp", 0, 0.025, 2e-3, 0.6, True),
    ("sweep-cifar10-mlp-lr0.05-s0", "sweep", "cifar10", "mlp", 0, 0.05, 2e-3, 0.50, True),
    ("sweep_convnet-mnist-convnet-s0", "sweep_convnet", "mnist", "convnet", 0, 0.05, 2e-3,
     0.975, True),
    ("grid-cifar10-mlp-lr0.1-wd0.002-s1", "grid", "cifar10", "mlp", 1, 0.1, 2e-3, 0.60, False),
]
MNIST_MLP, _, GRID_BEST, _, _, FEATURES, CIFAR_MLP, MNIST_CONVNET, GRID_BEST_S1 = \
    [r[0] for r in RUNS]
# NC1 ratio, NCC train and NCC test accuracy per layer 0…4 at epoch 10 (ε = 0.2)
COLLAPSING = ([0.8, 0.6, 0.15, 0.05, 0.01], [0.9, 0.95, 1.0, 1.0, 1.0],
              [0.8, 0.85, 0.97, 0.975, 0.98])  # ℓ* = 2
NEVER = ([0.9, 0.8, 0.7, 0.5, 0.4], [0.5, 0.6, 0.7, 0.8, 0.9], [0.5, 0.5, 0.6, 0.6, 0.6])
LATE = ([0.9, 0.8, 0.7, 0.5, 0.1], [0.5, 0.6, 0.7, 0.8, 1.0], [0.5, 0.5, 0.5, 0.5, 0.5])  # 4
NC1 = {MNIST_MLP: COLLAPSING, RUNS[1][0]: NEVER, GRID_BEST: COLLAPSING, RUNS[3][0]: NEVER,
       RUNS[4][0]: LATE, FEATURES: COLLAPSING, CIFAR_MLP: LATE, MNIST_CONVNET: COLLAPSING,
       GRID_BEST_S1: COLLAPSING}
# NC2 (each of eqs. 2.19–2.21; eq. 2.19 negative) and AvCosPABS per layer at epoch 10; epoch 1:
NC2_INIT, PABS_INIT = [0.5] * 5, [0.3] * 5
NC2_GOOD, NC2_SMALL, NC2_BAD = ([0.5, 0.5, 0.2, 0.1, 0.05], [0.5, 0.1, 0.05, 0.02, 0.01],
                                [0.5, 0.1, 0.6, 0.6, 0.6])
PABS_GOOD, PABS_WEAK, PABS_BEST, PABS_BAD = (
    [0.4, 0.5, 0.9, 0.95, 0.97], [0.35, 0.4, 0.6, 0.7, 0.75], [0.9, 0.95, 0.98, 0.99, 0.99],
    [0.3, 0.3, 0.2, 0.2, 0.2])
PABS = {CIFAR_MLP: PABS_WEAK, MNIST_CONVNET: PABS_WEAK}  # else PABS_GOOD
# σ_k of the weights reading layers 0…3 (8 each) at epoch 10; the classifier's (layer 4): C = 4
RANK_C_MINUS_1 = [1, 1, 1, 0.01, 0.009, 0.008, 0.007, 0.006]
RANK_C = [1, 1, 1, 1, 0.3, 0.3, 0.3, 0.3]
SPECTRA = {MNIST_MLP: RANK_C_MINUS_1}  # else RANK_C; epoch 1: all σ equal


def _metric_rows(run, group, dataset, arch, seed, nc1, nc2, pabs):
    ratio, ncc_train, ncc_test = nc1
    rows = []
    for metric, split, values in (("nc1_ratio", "train", ratio), ("ncc_accuracy", "train",
                                  ncc_train), ("ncc_accuracy", "test", ncc_test)):
        rows += [(run, dataset, arch, seed, 10, f"l{i}", i, split, metric, v, group)
                 for i, v in enumerate(values)]
        # An earlier checkpoint that must be ignored: everything collapsed.
        rows += [(run, dataset, arch, seed, 1, f"l{i}", i, split, metric, 0.0, group)
                 for i in range(len(values))]
    for epoch, profiles in ((10, (nc2, pabs)), (1, (NC2_INIT, PABS_INIT))):
        for metric, values in zip(("nc2_angle_shift", "nc2_equiangle", "nc2_equinorm",
                                   "nc3_pabs"), (*[profiles[0]] * 3, profiles[1]), strict=True):
            sign = -1 if metric == "nc2_angle_shift" else 1
            rows += [(run, dataset, arch, seed, epoch, f"l{i}", i, "train", metric, sign * v,
                      group) for i, v in enumerate(values)]
    return rows


def _spectrum_rows(run, group, dataset, arch, seed, sigma):
    rows = []
    for epoch, values in ((10, sigma), (1, [1.0] * 8)):
        for i in range(5):
            layer = np.array(values[:4] if i == 4 else values, dtype=float)
            rows += [(run, dataset, arch, seed, epoch, f"l{i}", i, k, s, s / layer.sum(), group)
                     for k, s in enumerate(layer)]
    return rows


def with_derived(metrics: pd.DataFrame) -> pd.DataFrame:
    """``metrics`` with the per-run rows (empty layer) that ``aggregate`` derives from them: the
    collapse layer the paper reads, per run and epoch."""
    training = pd.DataFrame(columns=["run", "dataset", "arch", "seed", "epoch", "train_acc"])
    derived = derived_metrics(metrics.drop(columns="group"), training)
    return pd.concat([metrics, derived.assign(layer=None, layer_index=np.nan)],
                     ignore_index=True)


def features(collapsing: bool = True, points=None, retention=None,
             components=None) -> dict[str, pd.DataFrame]:
    """Feature tables of the features run at epoch 10 (and a stale epoch 5 to ignore)."""
    clusters = pd.DataFrame({
        "layer_index": [0, 1, 2, 3, 4] * 2,
        "method": ["cosine"] * 5 + ["ward"] * 5,
        "avg_points": points or [11, 4.4, 4.2, 18, 543, np.nan, 4.4, 121, 1667, 5000],
        "accuracy": [0.45, 0.69, 0.77, 0.99, 0.999, np.nan, 0.63, 0.48, 0.97, 0.997]})
    if not collapsing:
        clusters["accuracy"] = clusters["accuracy"][::-1].to_numpy()
    retention = pd.DataFrame({"method": ["cosine"] * 4 + ["ward"] * 4,
                              "index_from": [0, 1, 2, 3] * 2,
                              "retention": retention or [0.19, 0.48, 0.50, 0.998, np.nan, 0.62,
                                                         0.42, 0.97]})
    pca = pd.DataFrame({"layer_index": [0, 1, 2, 3, 4], "units": [64] * 5,
                        "n_components_99": components or [40, 60, 58, 9, 9]})
    out = {}
    for name, table in (("clusters", clusters), ("retention", retention), ("pca_summary", pca)):
        table = table.assign(run=FEATURES, epoch=10)
        stale = table.assign(epoch=5)
        if name == "clusters":
            stale = stale.assign(accuracy=0.0)
        out[name] = pd.concat([stale, table], ignore_index=True)
    return out


def with_features(tables: Tables, feats: dict | None) -> Tables:
    return dataclasses.replace(tables, features=feats or {})


def make_tables(nc1=None, nc2=None, pabs=None, spectra=None, accuracy=None, feats=None,
                drop_groups: tuple[str, ...] = (), drop_runs: tuple[str, ...] = (),
                datasets: dict | None = None) -> Tables:
    """The experiment of :data:`RUNS`, every claim holding; the arguments change it: ``nc1``,
    ``nc2``, ``pabs``, ``spectra`` and ``accuracy`` (final test) per run, ``feats`` the
    feature tables (False: none), ``datasets`` renames datasets."""
    nc1, spectra = {**NC1, **(nc1 or {})}, {**SPECTRA, **(spectra or {})}
    nc2, pabs, accuracy = nc2 or {}, {**PABS, **(pabs or {})}, accuracy or {}
    runs = pd.DataFrame(RUNS, columns=["run", "group", "dataset", "arch", "seed", "lr",
                                       "weight_decay", "final_test_acc", "selected"])
    runs = runs.assign(diverged=False, final_epoch=10, final_train_acc=1.0,
                       final_test_acc=runs["run"].map(accuracy).fillna(runs["final_test_acc"]),
                       dataset=runs["dataset"].replace(datasets or {}))
    runs = runs[~runs["group"].str.split("_").str[0].isin(drop_groups)
                & ~runs["run"].isin(drop_runs)]
    keys = ["run", "group", "dataset", "arch", "seed"]
    metrics = with_derived(pd.DataFrame(
        [r for run in runs[keys].itertuples(index=False) for r in _metric_rows(
            *run, nc1[run.run], nc2.get(run.run, NC2_GOOD), pabs.get(run.run, PABS_GOOD))],
        columns=METRIC_COLUMNS))
    spectra = pd.DataFrame([r for run in runs[keys].itertuples(index=False)
                            for r in _spectrum_rows(*run, spectra.get(run.run, RANK_C))],
                           columns=["run", "dataset", "arch", "seed", "epoch", "layer",
                                    "layer_index", "k", "sigma", "share", "group"])
    training = pd.DataFrame([(run, e, min(1.0, e / 5), min(0.9, e / 6)) for run in runs["run"]
                             for e in range(11)],
                            columns=["run", "epoch", "train_acc", "test_acc"])
    design = runs[keys].assign(
        selected_axes=np.where(runs["group"] == "sweep", "lr", ""),
        compared_axes=np.where(runs["group"] == "grid", "lr;weight_decay", ""),
        **{"arch.name": runs["arch"], "dataset.name": runs["dataset"]})
    empty = pd.DataFrame()
    tables = Tables(metrics=metrics, training=training, spectra=spectra, epoch_metrics=empty,
                    runs=runs, design=design)
    return with_features(tables, None if feats is False else feats or features())


def holds(tables: Tables) -> list:
    table = paper.claims(tables)
    assert list(table.columns) == CLAIM_COLUMNS
    return table["holds"].tolist()


def test_names_match_the_vocabulary():
    assert tuple(paper.FIGURES) == PAPER_FIGURES["lindegaard2023"]
    assert tuple(paper.TABLES) == PAPER_TABLES["lindegaard2023"]


def test_every_claim_holds_on_a_collapsing_experiment():
    table = paper.claims(make_tables())
    assert len(table) == len(paper.CLAIMS) == 15
    assert table["holds"].tolist() == [True] * 15, table.to_string()
    measured = table["measured"].tolist()
    assert all(m.startswith("thesis: ") and "; measured: " in m and "; criterion: " in m
               for m in measured)
    assert "mnist/mlp s0: 0.8 → 0.01, rho -1.00, collapse layer 2" in measured[0]
    assert "sweep-mnist-mlp-lr0.01" not in " ".join(measured)  # not selected: not read
    assert "from layer 2: NCC train ≥ 1.000, max |NCC test − net test 0.980| = 0.010" \
        in measured[1]
    assert "mnist / mlp from ℓ* = 2: |eq. 2.19| 0.5 → 0.117 (before ℓ* 0.5)" in measured[2]
    assert "mnist / mlp from ℓ* = 2: AvCosPABS 0.300 → 0.940, top-C share 0.500 → " \
        in measured[3]
    assert "ℓ* MNIST 2 (thesis 3), CIFAR10 4 (thesis 5)" in measured[4]
    assert "mnist: convnet 0.683, mlp 0.940" in measured[8]
    assert "best lr 0.1, weight_decay 0.002 (test acc 0.600, 2 seed(s)) collapses at 2 2 of " \
        "0…4 (middle: 1.33–2.67)" in measured[9]
    assert "cifar10/mlp: ℓ* spread over seeds 0 in 1 settings" in measured[10]
    assert "ward: 0 4.4 121 1.67e+03 5e+03, rho +1.00" in measured[12]
    assert "cosine, ℓ* = 2: before 19% 48%; from it 50% 100%" in measured[13]
    assert "99 % variance in 93.8% of the units before layer 2, 39.6% from it" in measured[14]


REVERSED = ([0.01, 0.05, 0.15, 0.6, 0.8],) + COLLAPSING[1:]


@pytest.mark.parametrize("row, change", [
    (0, {"nc1": {MNIST_MLP: REVERSED}}),  # NC1 rises with depth
    (1, {"accuracy": {MNIST_MLP: 0.9}}),  # the NCC's test accuracy is not the network's
    (2, {"nc2": {MNIST_MLP: NC2_BAD}}),  # NC2 grows in the collapsed layers
    (3, {"pabs": {MNIST_MLP: PABS_BAD}}),  # AvCosPABS falls through training
    (4, {"nc1": {MNIST_MLP: LATE, CIFAR_MLP: COLLAPSING}}),  # MNIST collapses later
    (5, {"pabs": {CIFAR_MLP: PABS_BEST}}),  # CIFAR10's NC3 is the stronger
    (6, {"nc2": {MNIST_MLP: NC2_SMALL}}),  # MNIST's NC2 is the stronger
    (7, {"spectra": {MNIST_MLP: RANK_C}}),  # MNIST's weights have rank C
    (8, {"pabs": {MNIST_CONVNET: PABS_BEST}}),  # the ConvNet's NC3 is the stronger
    (9, {"nc1": {GRID_BEST: LATE, GRID_BEST_S1: LATE}}),  # the best collapse at the last layer
    (10, {"nc1": {GRID_BEST_S1: NEVER}}),  # one seed of the best setting never collapses
    (11, {"feats": features(collapsing=False)}),  # cluster accuracy falls with depth
    (12, {"feats": features(points=[543, 18, 5.0, 4.4, 4.2, 5000, 1667, 121, 4.4, 4.2])}),
    (13, {"feats": features(retention=[0.19, 0.95, 0.5, 0.998, np.nan, 0.62, 0.42, 0.97])}),
    (14, {"feats": features(components=[40, 9, 60, 58, 60])}),  # more units after ℓ*
])
def test_each_claim_fails_where_the_thesis_would_not_hold(row, change):
    assert holds(make_tables(**change))[row] is False


def test_the_dataset_claims_cannot_tell_without_mnist_and_cifar10():
    told = holds(make_tables(datasets={"mnist": "digits", "cifar10": "svhn"}))
    assert told[4:8] == [None] * 4
    assert holds(make_tables(drop_runs=(CIFAR_MLP,)))[4:8] == [None, None, None, True]


def test_an_mnist_collapse_far_from_the_theses_decides_the_depth_claim_alone():
    near = paper.claims(make_tables(drop_runs=(CIFAR_MLP,))).iloc[4]
    assert near["holds"] is None  # MNIST's ℓ* = 2 is near the thesis' 3; CIFAR10 is missing
    assert "measured: ℓ* MNIST 2 (thesis 3); no CIFAR10 model;" in near["measured"]
    never = paper.claims(make_tables(nc1={MNIST_MLP: NEVER}, drop_runs=(CIFAR_MLP,))).iloc[4]
    assert never["holds"] is False and "ℓ* MNIST none (thesis 3)" in never["measured"]


def test_the_seeds_and_architectures_claims_cannot_tell_with_one_each():
    told = holds(make_tables(drop_runs=(GRID_BEST_S1, MNIST_CONVNET)))
    assert told[8] is None and told[10] is None
    assert told[9] is True  # the middle: the one seed of the best setting


def test_claims_without_the_groups_cannot_tell():
    table = paper.claims(make_tables(feats=False, drop_groups=("sweep", "grid", "features")))
    assert table["holds"].isna().all()
    measured = table["measured"]
    assert "measured: no measured best run of a sweep group" in measured[0]
    assert "measured: no measured grid group" in measured[9]
    assert "measured: no grid setting with 2 or more measured seeds" in measured[10]
    assert "measured: no feature analysis of the features group" in measured[11]


def test_the_ncc_claim_cannot_tell_without_a_collapse():
    table = paper.claims(make_tables(nc1={MNIST_MLP: REVERSED, CIFAR_MLP: NEVER,
                                          MNIST_CONVNET: NEVER}))
    assert table["holds"][1] is None
    assert "no collapse layer" in table["measured"][1]


def test_collapse_layers_read_each_runs_last_epoch():
    layers = paper.collapse_layers(make_tables(), pd.Series([r[0] for r in RUNS]))
    assert layers.tolist()[:5] == [2.0, pytest.approx(np.nan, nan_ok=True), 2.0,
                                   pytest.approx(np.nan, nan_ok=True), 4.0]


def test_collapse_layers_are_those_aggregate_derived():
    tables = make_tables()
    metrics = tables.metrics.copy()
    derived = metrics["metric"] == "collapse_layer"
    metrics.loc[derived & (metrics["run"] == MNIST_MLP), "value"] = 3.0
    layers = paper.collapse_layers(dataclasses.replace(tables, metrics=metrics), [MNIST_MLP])
    assert layers.tolist() == [3.0]


def test_collapse_layers_read_the_epoch_the_features_were_analysed_at():
    at = pd.DataFrame({"run": [FEATURES], "epoch": [1]})  # the earlier checkpoint: all collapsed
    assert paper.collapse_layers(make_tables(), [FEATURES], at).tolist() == [0.0]
    assert paper.collapse_layers(make_tables(), [FEATURES]).tolist() == [2.0]


@pytest.mark.parametrize("name", list(paper.FIGURES))
def test_figures_draw_within_the_page(name, tmp_path):
    fig = paper.FIGURES[name](make_tables().only(PAPER_FIGURE_READS["lindegaard2023"][name],
                                                 name))
    assert isinstance(fig, Figure)
    width, height = fig.get_size_inches()
    assert width <= 9.5 and height <= 11
    assert [ax for ax in fig.axes if ax.get_visible()]
    fig.savefig(tmp_path / f"{name}.png", dpi=30)


@pytest.mark.parametrize("name", list(paper.FIGURES))
def test_figures_are_placeholders_where_the_config_lacks_the_group(name, tmp_path):
    tables = make_tables(feats=False, drop_groups=("sweep", "grid", "features"))
    fig = paper.FIGURES[name](tables)
    assert isinstance(fig, Figure) and not fig.axes
    assert "lindegaard2023" in fig.texts[0].get_text()
    fig.savefig(tmp_path / f"{name}.png", dpi=30)


def test_the_mlp_figures_draw_a_row_per_dataset_a_line_per_epoch():
    fig = paper.fig4_1_2_nc2_by_layer(make_tables())
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 6  # MNIST and CIFAR10's MLP, eqs. 2.19–2.21; not the ConvNet
    assert [line.get_label() for line in axes[0].lines[:2]] == ["epoch 1", "epoch 10"]
    assert axes[0].lines[1].get_ydata().tolist() == NC2_GOOD  # eq. 2.19 as its magnitude


def test_the_appendix_figures_draw_a_line_per_architecture():
    fig = paper.fig_b0_nc3_nc4(make_tables())
    mnist = [ax for ax in fig.axes if ax.get_visible()][0]
    assert {line.get_label() for line in mnist.lines} >= {"mlp", "convnet"}


def test_collapse_vs_accuracy_plots_one_point_per_grid_run():
    fig = paper.fig4_2_1_collapse_vs_accuracy(make_tables(drop_runs=(GRID_BEST_S1,)))
    (ax,) = [ax for ax in fig.axes if ax.get_visible()]
    offsets = np.concatenate([c.get_offsets() for c in ax.collections])
    assert sorted(map(tuple, offsets.tolist())) == [(2.0, 0.6), (4.0, 0.55), (5.0, 0.5)]
    assert ax.get_xticklabels()[-1].get_text() == "none"  # x = 5: never collapsed


def with_second_seed(tables: Tables, run: str, shift: float) -> Tables:
    """``tables`` with a seed 1 of ``run``: its per-layer values, σ'_k and accuracies + ``shift``
    (its derived collapse layer as the seed 0's)."""
    twin = run.replace("-s0", "-s1")

    def copy(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
        rows = table[table["run"] == run].assign(run=twin)
        if "seed" in rows:
            rows = rows.assign(seed=1)
        shifted = rows["layer_index"].notna() if "layer_index" in rows else slice(None)
        rows.loc[shifted, columns] += shift
        return pd.concat([table, rows], ignore_index=True)
    return dataclasses.replace(
        tables, metrics=copy(tables.metrics, ["value"]), spectra=copy(tables.spectra, ["share"]),
        training=copy(tables.training, ["train_acc", "test_acc"]), runs=copy(tables.runs, []),
        design=copy(tables.design, []))


def bands(*axes) -> list:
    """The ± sd bands (fill_between) of ``axes``."""
    return [c for ax in axes for c in ax.collections if isinstance(c, PolyCollection)]


def test_the_nc_curves_by_layer_are_seed_means_in_a_band_of_one_sd():
    shift = 0.02
    fig = paper.fig4_1_nc_by_layer(with_second_seed(make_tables(), MNIST_MLP, shift))
    nc1 = fig.axes[0]  # the MLP's NC1 ratio: MNIST's two seeds in a band, CIFAR10's one not
    (band,) = bands(nc1)
    (line,) = [line for line in nc1.lines if line.get_label() == "mnist"]
    assert np.allclose(band.get_facecolor()[0][:3], line.get_color()[:3])
    mean, sd = np.array(COLLAPSING[0]) + shift / 2, np.std([0, shift], ddof=1)
    assert np.allclose(line.get_ydata(), mean)
    vertices = band.get_paths()[0].vertices
    at = [vertices[vertices[:, 0] == x, 1] for x in range(len(mean))]
    assert np.allclose([y.min() for y in at], mean - sd)
    assert np.allclose([y.max() for y in at], mean + sd)
    assert len(bands(fig.axes[1])) == 2  # MNIST's NCC train and test accuracy
    assert not bands(*paper.fig4_1_nc_by_layer(make_tables()).axes)  # one seed: no band


BY_RUN = ("fig4_2_1_collapse_vs_accuracy", "fig4_3_feature_shape")  # a point, a line per run


@pytest.mark.parametrize("name", [n for n in paper.FIGURES if n not in BY_RUN])
def test_every_figure_of_seed_means_draws_bands_where_there_are_seeds(name):
    two = with_second_seed(make_tables(), MNIST_MLP, 0.02)
    assert bands(*paper.FIGURES[name](two).axes)
    assert not bands(*paper.FIGURES[name](make_tables()).axes)
