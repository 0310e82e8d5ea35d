"""nclayers.papers.query, the one way the papers read the experiment, on tables with known
answers: which runs, their compared axes and recipes (the design table), the model view, the
derived per-run rows as aggregate writes them, and the claims' words."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from nclayers.derived import derived_metrics
from nclayers.papers import Tables, query
from nclayers.vocabulary import Thresholds

RUNS = pd.DataFrame({
    "run": ["a-s0", "a-s1", "a_plain-s0", "b-lr1-s0", "b-lr2-s0", "c-s0"],
    "group": ["a", "a", "a_plain", "b", "b", "ab"],
    "dataset": ["digits"] * 6,
    "arch": ["mlp", "mlp", "mlp", "mlp", "convnet", "mlp"],
    "seed": [0, 1, 0, 0, 0, 0],
    "lr": [0.1, 0.1, 0.1, 1.0, 2.0, 0.1],
    "etf_layers": [0, 0, 0, 3, None, 0],
    "selected": [True, True, True, False, True, True],
    "diverged": [False, False, False, False, False, True],
    "final_test_acc": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
})
DESIGN = pd.DataFrame({
    "run": RUNS["run"], "group": RUNS["group"],
    "selected_axes": ["", "", "", "lr", "lr", ""],
    "compared_axes": ["", "", "", "etf_layers", "etf_layers", ""],
    "train.loss": ["mse", "mse", "ce", "mse", "mse", "mse"],
})


def tables(metrics: pd.DataFrame | None = None, training: pd.DataFrame | None = None) -> Tables:
    empty = pd.DataFrame()
    return Tables(metrics=empty if metrics is None else metrics,
                  training=empty if training is None else training, spectra=empty,
                  epoch_metrics=empty, runs=RUNS, design=DESIGN)


def test_runs_selects_by_group_family_and_selection_and_drops_diverged_runs():
    t = tables()
    assert list(query.runs(t, "a")["run"]) == ["a-s0", "a-s1", "a_plain-s0"]  # a and a_…
    assert list(query.runs(t, "b")["run"]) == ["b-lr2-s0"]  # selected only
    assert list(query.runs(t, "b", selected=None)["run"]) == ["b-lr1-s0", "b-lr2-s0"]
    assert list(query.runs(t, "b", selected=False)["run"]) == ["b-lr1-s0"]
    assert query.runs(t, "ab").empty  # its one run diverged; "ab" is no member of "a"
    assert list(query.etf_layers(RUNS)) == [0, 0, 0, 3, 0, 0]


def test_axes_and_recipes_come_from_the_design_table():
    t = tables()
    assert query.compared_axes(t, ["b-lr1-s0"]) == ["etf_layers"]
    assert query.compared_axes(t, ["b-lr1-s0"], selected=True) == ["lr", "etf_layers"]
    assert query.compared_axes(t, ["a-s0"]) == []
    assert query.recipe(t, "train.loss")["a_plain-s0"] == "ce"
    assert query.recipe(t, "train.schedule").empty


def test_models_group_the_seeds_of_a_setting():
    found = query.models(query.runs(tables(), "a"))
    assert [(m.label, m.runs) for m in found] == [("digits / mlp / a", ("a-s0", "a-s1")),
                                                   ("digits / mlp / a_plain", ("a_plain-s0",))]
    assert found[0].final(tables(), "final_test_acc") == pytest.approx(0.85)
    assert {found[0]: 1}[found[0]] == 1  # hashable: models key the papers' dicts


def test_derived_reads_the_rows_aggregate_wrote():
    """At the config's thresholds, the collapse layer of each run's last epoch and the
    interpolation epoch, as derived_metrics computes them for aggregate."""
    rows = []
    for run, ratios in (("a-s0", [0.9, 0.5, 0.1, 0.05]), ("a-s1", [0.9, 0.8, 0.7, 0.3])):
        for epoch, scale in ((0, 5.0), (3, 1.0)):
            for index, ratio in enumerate(ratios):
                for metric, value in (("nc1_ratio", min(1.0, ratio * scale)),
                                      ("ncc_accuracy", 1 - ratio)):
                    rows.append((run, "digits", "mlp", 0, epoch, f"l{index}", index, "train",
                                 metric, value))
    metrics = pd.DataFrame(rows, columns=["run", "dataset", "arch", "seed", "epoch", "layer",
                                          "layer_index", "split", "metric", "value"])
    training = pd.DataFrame({"run": ["a-s0"] * 3 + ["a-s1"] * 3, "dataset": "digits",
                             "arch": "mlp", "seed": 0, "epoch": [0, 1, 2] * 2,
                             "train_acc": [0.5, 0.996, 1.0, 0.5, 0.9, 0.99]})
    t = tables(pd.concat([metrics, derived_metrics(metrics, training, Thresholds())]))
    collapse = query.derived(t, "collapse_layer")
    assert collapse["a-s0"] == 2 and math.isnan(collapse["a-s1"])
    every = query.derived(t, "collapse_layer", epoch="all")
    assert math.isnan(every[("a-s0", 0)]) and every[("a-s0", 3)] == 2
    interpolation = query.derived(t, "interpolation_epoch")
    assert interpolation["a-s0"] == 1 and math.isnan(interpolation["a-s1"])
    with pytest.raises(ValueError, match="known: collapse_layer"):
        query.derived(t, "nc1")


def test_the_claims_words():
    assert query.claim("c", "§1", "m", 1) == {"claim": "c", "where": "§1", "measured": "m",
                                              "holds": True}
    assert query.claim("c", "§1", "m", None)["holds"] is None
    assert (query.fmt(math.nan), query.fmt(0.123456), query.percent(0.25)) == ("-", "0.123",
                                                                               "25 %")
    assert (query.layer_text(math.nan), query.layer_text(3.0)) == ("none", "3")
    assert query.all_told([None, True, False]) is False and query.all_told([None]) is None
    assert query.majority([True, True, False]) is True and query.majority([True, False]) is False
    assert query.majority([]) is None
    assert query.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert query.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(query.spearman([1, 2], [3, 4]))  # fewer than 3 pairs


def test_the_grid_hides_the_panels_it_does_not_use():
    fig, axes = query.grid(5, 3, "title")
    assert axes.shape == (2, 3) and not axes[1, 2].get_visible()
    assert fig.get_size_inches()[0] <= 9.5
