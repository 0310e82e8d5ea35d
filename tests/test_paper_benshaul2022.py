"""nclayers.papers.benshaul2022: the figures, Tables 1-2 and the conjectures on small synthetic
tables, where each claim's outcome is known by construction, one that fails included."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from nclayers.papers import CLAIM_COLUMNS, Tables
from nclayers.papers import benshaul2022 as bs
from nclayers.sweeps import run_records

LAYERS = ["input", "layer1", "layer2", "layer3", "layer4", "avgpool", "classifier"]
EPOCHS = 12
IT = 5  # the epoch train accuracy reaches 1 in every synthetic run


def _train_acc(epoch: int) -> float:
    return min(1.0, 0.2 + 0.8 * epoch / IT)


def _run(group: str, dataset: str, loss: str) -> str:
    return f"{group}-{dataset}-resnet18-{loss}-s0"


def _mismatch(first: float, index: int, epoch: int, loss: str, svsl_gain: float,
              rise: float) -> float:
    """Falls with depth (index 1 = layer1) and with the epochs; SVSL lower by svsl_gain;
    ``rise`` lifts layer3 above layer2."""
    depth = first * (1 - (index - 1) / 6)
    value = depth * (1 + 0.5 * max(0, IT + 3 - epoch) / (IT + 3))
    if loss == "svsl":
        value -= svsl_gain * depth
    if index == 3:
        value += rise
    return max(value, 0.0)


def make_tables(datasets=(("mnist", 0.16), ("cifar10", 0.6)), svsl_gain: float = 0.2,
                rise: float = 0.0, svsl_acc: float = 0.01, losses=("ce", "svsl")) -> Tables:
    training, epoch_rows, runs = [], [], []
    for dataset, first in datasets:
        group = dataset
        for loss in losses:
            run = _run(group, dataset, loss)
            for epoch in range(EPOCHS + 1):
                test = 0.5 + 0.4 * _train_acc(epoch) + (svsl_acc if loss == "svsl" else 0)
                training.append({"epoch": epoch, "train_acc": _train_acc(epoch),
                                 "test_acc": min(test, 1.0) - 0.001 * (epoch == EPOCHS),
                                 "run": run, "dataset": dataset, "arch": "resnet18",
                                 "seed": 0, "group": group, "loss": loss})
                for index, layer in enumerate(LAYERS):
                    for split in ("train", "test"):
                        value = (0.9 if index == 0 else
                                 _mismatch(first, index, epoch, loss, svsl_gain, rise))
                        epoch_rows.append({"run": run, "dataset": dataset, "arch": "resnet18",
                                           "seed": 0, "epoch": epoch, "layer": layer,
                                           "layer_index": index, "split": split,
                                           "metric": "nc4_mismatch", "value": value,
                                           "group": group, "loss": loss})
            runs.append({"run": run, "group": group, "dataset": dataset, "arch": "resnet18",
                         "seed": 0, "loss": loss, "selected": True, "diverged": False,
                         "svsl_alpha": 1e-5, "svsl_gamma": "layer1"})
    empty = pd.DataFrame(columns=["run"])
    return Tables(metrics=empty, training=pd.DataFrame(training), spectra=empty,
                  epoch_metrics=pd.DataFrame(epoch_rows), runs=pd.DataFrame(runs))


def holds(claims: pd.DataFrame, start: str) -> list:
    return list(claims.loc[claims["claim"].str.startswith(start), "holds"])


def test_models_pair_the_ce_and_svsl_runs_of_each_group_with_their_interpolation_epoch():
    found = bs.models(make_tables())
    assert [m.dataset for m in found] == ["mnist", "cifar10"]
    model = found[0]
    assert model.losses == ["ce", "svsl"]
    assert model.interpolation == {"ce": IT, "svsl": IT}
    # The input is left out; the layers in depth order.
    assert list(model.mismatch["ce"]["test"].columns) == LAYERS[1:]


def test_every_claim_holds_on_tables_built_to_satisfy_them():
    claims = bs.claims(make_tables())
    assert list(claims.columns) == CLAIM_COLUMNS
    assert claims["holds"].tolist() == [True] * len(claims), claims.to_string()
    assert claims["measured"].str.len().gt(0).all()


def test_a_rise_with_depth_and_an_svsl_that_raises_the_mismatch_fail_their_claims():
    claims = bs.claims(make_tables(svsl_gain=-0.2, rise=0.05))
    assert holds(claims, "Train NCC mismatch decreases with depth") == [False]
    assert holds(claims, "Test NCC mismatch decreases with depth") == [False]
    assert holds(claims, "SVSL's train NCC mismatch") == [False]
    measured = claims.loc[claims["claim"].str.startswith("Train NCC mismatch decreases"),
                          "measured"].iloc[0]
    assert "Layer2→Layer3" in measured


def test_accuracy_claims_fail_when_svsl_is_worse():
    claims = bs.claims(make_tables(svsl_acc=-0.02))
    assert holds(claims, "SVSL's EOT test accuracy") == [False]
    assert holds(claims, "SVSL's test accuracy ≥ CE's at almost all stages") == [False]


def test_the_first_layer_reference_fails_far_from_the_papers_value_and_needs_its_datasets():
    far = bs.claims(make_tables(datasets=(("mnist", 0.5), ("cifar10", 0.3))))
    assert holds(far, "First-layer mismatch as the paper's") == [False]
    assert holds(far, "First-layer mismatch lower on the easier dataset") == [False]
    digits = bs.claims(make_tables(datasets=(("digits", 0.1),)))
    assert holds(digits, "First-layer mismatch as the paper's") == [None]
    assert holds(digits, "First-layer mismatch lower") == [None]


def test_without_svsl_runs_the_svsl_claims_cannot_tell():
    claims = bs.claims(make_tables(losses=("ce",)))
    assert holds(claims, "SVSL's train NCC mismatch") == [None]
    assert holds(claims, "SVSL's EOT test accuracy") == [None]
    assert holds(claims, "Train NCC mismatch decreases with depth") == [True]


def test_table1_gives_accuracy_at_it_eot_and_best_with_the_papers_row_below_ours():
    table = bs.table1_accuracy(make_tables())
    assert table.columns.tolist() == bs.TABLE1_COLUMNS
    assert table["Source"].tolist() == ["ours", "paper", "ours", "paper"]
    ours = table.iloc[0]
    assert (ours["IT CE"], ours["IT SVSL"], ours["EOT CE"]) == ("90.00", "91.00", "89.90")
    assert ours["Best CE"] == "90.00" and ours["In TPT (CE)"] == "Yes"
    assert table.iloc[1]["EOT SVSL"] == "99.69"  # the paper's MNIST row


def test_table2_reads_the_svsl_settings_from_runs_csv_beside_the_papers():
    table = bs.table2_svsl(make_tables())
    assert table.iloc[1].tolist() == ["CIFAR10 / resnet18", 1e-5, "Layer1", 4e-6, "AvgPool"]


def test_runs_csv_holds_the_svsl_settings_of_every_run():
    info = {"run": "r", "dataset": {"label": "digits"}, "arch": {"label": "resnet18"},
            "seed": 0, "final_train_acc": 1.0, "final_test_acc": 0.9,
            "train": {"lr": 0.1, "weight_decay": 0.0, "loss": "svsl", "svsl_alpha": 0.01,
                      "svsl_gamma": "avgpool"}}
    row = run_records([info]).iloc[0]
    assert (row["svsl_alpha"], row["svsl_gamma"]) == (0.01, "avgpool")


def test_depth_violations_name_each_rise_beyond_the_tolerance():
    curve = pd.Series([0.5, 0.3, 0.304, 0.4, 0.0], index=["a", "b", "c", "d", "e"])
    assert bs.depth_violations(curve) == [("c", "d", pytest.approx(0.096))]


def test_a_run_that_never_interpolates_has_no_tpt_and_is_left_out():
    tables = make_tables(datasets=(("mnist", 0.16),))
    training = tables.training.copy()
    ce = training["loss"] == "ce"
    training.loc[ce, "train_acc"] = 0.9
    tables = Tables(metrics=tables.metrics, training=training, spectra=tables.spectra,
                    epoch_metrics=tables.epoch_metrics, runs=tables.runs)
    model = bs.models(tables)[0]
    assert math.isnan(model.interpolation["ce"])
    claims = bs.claims(tables)
    measured = claims.loc[claims["claim"].str.startswith("Train NCC mismatch decreases"),
                          "measured"].iloc[0]
    assert measured.startswith("1/1 runs") and "no TPT: MNIST/resnet18 CE" in measured
    assert bs.table1_accuracy(tables).iloc[0]["In TPT (CE)"] == "--"


@pytest.mark.parametrize("name", list(bs.FIGURES))
def test_each_figure_draws_a_column_per_model_and_a_row_per_split(name):
    fig = bs.FIGURES[name](make_tables())
    assert isinstance(fig, Figure)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 4
    assert any(ax.patches for ax in shown), "the TPT is shaded"
    lines = np.concatenate([ax.get_lines() for ax in shown[:1]])
    styles = {line.get_linestyle() for line in lines}
    assert styles == ({"-", "--"} if name == "fig2_ncc_mismatch" else {"-"})


@pytest.mark.parametrize("name", list(bs.FIGURES))
def test_each_figure_says_what_it_needs_without_a_loss_axis(name):
    tables = make_tables()
    training = tables.training.drop(columns="loss")
    tables = Tables(metrics=tables.metrics, training=training, spectra=tables.spectra,
                    epoch_metrics=tables.epoch_metrics, runs=tables.runs)
    fig = bs.FIGURES[name](tables)
    assert "loss axis" in fig.texts[0].get_text()
    assert bs.claims(tables)["holds"].isna().all()
