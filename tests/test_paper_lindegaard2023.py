"""Lindegaard (2023)'s figures and claims (nclayers.papers.lindegaard2023) on hand-built tables
with a known answer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from nclayers.derived import derived_metrics
from nclayers.papers import CLAIM_COLUMNS, Tables
from nclayers.papers import lindegaard2023 as paper
from nclayers.vocabulary import PAPER_FIGURES, PAPER_TABLES

METRIC_COLUMNS = ["run", "dataset", "arch", "seed", "epoch", "layer", "layer_index", "split",
                  "metric", "value", "group"]


def _metric_rows(run, group, dataset, arch, seed, ratio, ncc_train, ncc_test, epoch=10):
    rows = []
    for metric, split, values in (("nc1_ratio", "train", ratio), ("ncc_accuracy", "train",
                                  ncc_train), ("ncc_accuracy", "test", ncc_test)):
        rows += [(run, dataset, arch, seed, epoch, f"l{i}", i, split, metric, v, group)
                 for i, v in enumerate(values)]
        # An earlier checkpoint that must be ignored: everything collapsed.
        rows += [(run, dataset, arch, seed, 1, f"l{i}", i, split, metric, 0.0, group)
                 for i in range(len(values))]
    return rows


def with_derived(metrics: pd.DataFrame) -> pd.DataFrame:
    """``metrics`` with the per-run rows (empty layer) that ``aggregate`` derives from them: the
    collapse layer the paper reads, per run and epoch."""
    training = pd.DataFrame(columns=["run", "dataset", "arch", "seed", "epoch", "train_acc"])
    derived = derived_metrics(metrics.drop(columns="group"), training)
    return pd.concat([metrics, derived.assign(layer=None, layer_index=np.nan)],
                     ignore_index=True)


RUNS = [  # run, group, dataset, arch, seed, lr, wd, final test acc, selected
    ("sweep-mnist-mlp-lr0.1-s0", "sweep", "mnist", "mlp", 0, 0.1, 2e-3, 0.98, True),
    ("sweep-mnist-mlp-lr0.01-s0", "sweep", "mnist", "mlp", 0, 0.01, 2e-3, 0.90, False),
    ("grid-cifar10-mlp-lr0.1-wd0.002-s0", "grid", "cifar10", "mlp", 0, 0.1, 2e-3, 0.60, False),
    ("grid-cifar10-mlp-lr0.01-wd0.002-s0", "grid", "cifar10", "mlp", 0, 0.01, 2e-3, 0.50, False),
    ("grid-cifar10-mlp-lr0.1-wd0.0005-s0", "grid", "cifar10", "mlp", 0, 0.1, 5e-4, 0.55, False),
    ("features-cifar10-mlp-s0", "features", "cifar10", "mlp", 0, 0.025, 2e-3, 0.6, True),
]
COLLAPSING = ([0.8, 0.6, 0.15, 0.05, 0.01], [0.9, 0.95, 1.0, 1.0, 1.0],
              [0.8, 0.85, 0.97, 0.975, 0.98])
NEVER = ([0.9, 0.8, 0.7, 0.5, 0.4], [0.5, 0.6, 0.7, 0.8, 0.9], [0.5, 0.5, 0.6, 0.6, 0.6])
LATE = ([0.9, 0.8, 0.7, 0.5, 0.1], [0.5, 0.6, 0.7, 0.8, 1.0], [0.5, 0.5, 0.5, 0.5, 0.5])


def features(collapsing: bool = True) -> dict[str, pd.DataFrame]:
    """Feature tables of the features run at epoch 10 (and a stale epoch 5 to ignore)."""
    clusters = pd.DataFrame({
        "layer_index": [0, 1, 2, 3, 4] * 2,
        "method": ["cosine"] * 5 + ["ward"] * 5,
        "avg_points": [11, 4.4, 4.2, 18, 543, np.nan, 4.4, 121, 1667, 5000],
        "accuracy": [0.45, 0.69, 0.77, 0.99, 0.999, np.nan, 0.63, 0.48, 0.97, 0.997]})
    if not collapsing:
        clusters["accuracy"] = clusters["accuracy"][::-1].to_numpy()
    retention = pd.DataFrame({"method": ["cosine"] * 4 + ["ward"] * 4,
                              "index_from": [0, 1, 2, 3] * 2,
                              "retention": [0.19, 0.48, 0.50, 0.998, np.nan, 0.62, 0.42, 0.97]})
    pca = pd.DataFrame({"layer_index": [0, 1, 2, 3, 4], "units": [64] * 5,
                        "n_components_99": [40, 60, 58, 9, 9]})
    out = {}
    for name, table in (("clusters", clusters), ("retention", retention), ("pca_summary", pca)):
        table = table.assign(run="features-cifar10-mlp-s0", epoch=10)
        stale = table.assign(epoch=5)
        if name == "clusters":
            stale = stale.assign(accuracy=0.0)
        out[name] = pd.concat([stale, table], ignore_index=True)
    return out


def with_features(tables: Tables, feats: dict | None) -> Tables:
    """``tables`` with ``features`` (a field of Tables once the report provides it)."""
    if "features" in {f.name for f in dataclasses.fields(Tables)}:
        return dataclasses.replace(tables, features=feats)
    object.__setattr__(tables, "features", feats)
    return tables


def make_tables(grid_best=COLLAPSING, sweep_best=COLLAPSING, feats: bool = True,
                drop_groups: tuple[str, ...] = ()) -> Tables:
    shapes = {RUNS[0][0]: sweep_best, RUNS[1][0]: NEVER, RUNS[2][0]: grid_best,
              RUNS[3][0]: NEVER, RUNS[4][0]: LATE, RUNS[5][0]: COLLAPSING}
    runs = pd.DataFrame(RUNS, columns=["run", "group", "dataset", "arch", "seed", "lr",
                                       "weight_decay", "final_test_acc", "selected"])
    runs = runs.assign(diverged=False, final_epoch=10, final_train_acc=1.0)
    runs = runs[~runs["group"].isin(drop_groups)]
    rows = [r for _, run in runs.iterrows() for r in _metric_rows(
        run["run"], run["group"], run["dataset"], run["arch"], run["seed"], *shapes[run["run"]])]
    metrics = with_derived(pd.DataFrame(rows, columns=METRIC_COLUMNS))
    empty = pd.DataFrame()
    tables = Tables(metrics=metrics, training=empty, spectra=empty, epoch_metrics=empty,
                    runs=runs)
    return with_features(tables, features() if feats else None)


def claims_by_where(tables: Tables) -> pd.DataFrame:
    table = paper.claims(tables)
    assert list(table.columns) == CLAIM_COLUMNS
    return table


def test_names_match_the_vocabulary():
    assert tuple(paper.FIGURES) == PAPER_FIGURES["lindegaard2023"]
    assert tuple(paper.TABLES) == PAPER_TABLES["lindegaard2023"]


def test_every_claim_holds_on_a_collapsing_experiment():
    table = claims_by_where(make_tables())
    assert len(table) == 7
    assert table["holds"].tolist() == [True] * 7, table.to_string()
    measured = table["measured"].tolist()
    assert "mnist/mlp s0: 0.8 → 0.01, rho -1.00, collapse layer 2" in measured[0]
    assert "sweep-mnist-mlp-lr0.01" not in " ".join(measured)  # not selected: not read
    assert "from layer 2: NCC train ≥ 1.000, max |NCC test − net test 0.980| = 0.010" \
        in measured[1]
    assert "best test acc 0.600 (grid-cifar10-mlp-lr0.1-wd0.002-s0) collapses at 2 of 0…4" \
        in measured[2]
    assert "ward: 0 4.4 121 1.67e+03 5e+03, rho +1.00" in measured[4]
    assert "cosine: 0.19 0.48 0.50 1.00, rho +1.00" in measured[5]
    assert "99 % variance in 93.8% of the units before layer 2, 39.6% from it" in measured[6]


def test_claims_that_do_not_hold_are_reported():
    reversed_nc1 = ([0.01, 0.05, 0.15, 0.6, 0.8],) + COLLAPSING[1:]
    table = claims_by_where(make_tables(grid_best=LATE, sweep_best=reversed_nc1))
    assert table["holds"].tolist()[:3] == [False, None, False]
    assert "no collapse layer" in table["measured"][1]  # NCC: cannot tell without a collapse
    assert "collapses at 4 of 0…4" in table["measured"][2]  # at the last layer: not the middle
    falling = claims_by_where(with_features(make_tables(), features(collapsing=False)))
    assert falling["holds"].tolist()[3] is False  # cluster accuracy falls with depth


def test_claims_without_the_groups_cannot_tell():
    table = claims_by_where(make_tables(feats=False, drop_groups=("sweep", "grid", "features")))
    assert table["holds"].isna().all()
    assert "no measured best run of a sweep group" in table["measured"][0]
    assert "no measured grid group" in table["measured"][2]
    assert "no feature analysis of the features group" in table["measured"][3]


def test_collapse_layers_read_each_runs_last_epoch():
    layers = paper.collapse_layers(make_tables(), pd.Series([r[0] for r in RUNS]))
    assert layers.tolist()[:5] == [2.0, pytest.approx(np.nan, nan_ok=True), 2.0,
                                   pytest.approx(np.nan, nan_ok=True), 4.0]


def test_collapse_layers_are_those_aggregate_derived():
    tables = make_tables()
    metrics = tables.metrics.copy()
    derived = metrics["metric"] == "collapse_layer"
    metrics.loc[derived & (metrics["run"] == RUNS[0][0]), "value"] = 3.0
    layers = paper.collapse_layers(dataclasses.replace(tables, metrics=metrics), [RUNS[0][0]])
    assert layers.tolist() == [3.0]


def test_collapse_layers_read_the_epoch_the_features_were_analysed_at():
    run = "features-cifar10-mlp-s0"
    at = pd.DataFrame({"run": [run], "epoch": [1]})  # the earlier checkpoint: all collapsed
    assert paper.collapse_layers(make_tables(), [run], at).tolist() == [0.0]
    assert paper.collapse_layers(make_tables(), [run]).tolist() == [2.0]


@pytest.mark.parametrize("name", list(paper.FIGURES))
def test_figures_draw_within_the_page(name, tmp_path):
    fig = paper.FIGURES[name](make_tables())
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


def test_collapse_vs_accuracy_plots_one_point_per_grid_run():
    fig = paper.fig4_2_1_collapse_vs_accuracy(make_tables())
    (ax,) = [ax for ax in fig.axes if ax.get_visible()]
    offsets = np.concatenate([c.get_offsets() for c in ax.collections])
    assert sorted(map(tuple, offsets.tolist())) == [(2.0, 0.6), (4.0, 0.55), (5.0, 0.5)]
    assert ax.get_xticklabels()[-1].get_text() == "none"  # x = 5: never collapsed
