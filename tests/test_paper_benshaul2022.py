"""nclayers.papers.benshaul2022: the figures, Tables 1-2 and the conjectures on small synthetic
tables, where each claim's outcome is known by construction, one that fails included."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import assert_on_page, bands_at
from matplotlib.figure import Figure

from nclayers.design import design_row
from nclayers.papers import CLAIM_COLUMNS, Tables
from nclayers.papers import benshaul2022 as bs
from nclayers.sweeps import run_records
from nclayers.vocabulary import PAPER_FIGURE_READS

LAYERS = ["input", "layer1", "layer2", "layer3", "layer4", "avgpool", "classifier"]
EPOCHS = 12
IT = 5  # the epoch train accuracy reaches 1 in every synthetic run



def mismatch_row(run: str, dataset: str, arch: str, group: str, loss: str, epoch: int,
                 layer: str, index: int, split: str, value: float) -> dict:
    """One row of epoch_metrics.csv: a layer's NCC mismatch on a split at an epoch."""
    return {"run": run, "dataset": dataset, "arch": arch, "seed": 0, "epoch": epoch,
            "layer": layer, "layer_index": index, "split": split, "metric": "nc4_mismatch",
            "value": value, "group": group, "loss": loss}


def tables_of(training: list[dict], epoch_rows: list[dict], runs: list[dict]) -> Tables:
    """The tables of ``runs`` (runs.csv's rows) with their design: the loss compared, the SVSL
    settings their recipe's."""
    empty = pd.DataFrame(columns=["run"])
    design = pd.DataFrame([{"run": r["run"], "group": r["group"], "seed": r["seed"],
                            "dataset": r["dataset"], "arch": r["arch"], "selected_axes": "",
                            "compared_axes": "loss", "train.loss": r["loss"],
                            "train.svsl_alpha": r["svsl_alpha"],
                            "train.svsl_gamma": r["svsl_gamma"]} for r in runs])
    return Tables(metrics=empty, training=pd.DataFrame(training), spectra=empty,
                  epoch_metrics=pd.DataFrame(epoch_rows), runs=pd.DataFrame(runs),
                  design=design)

def _train_acc(epoch: int) -> float:
    return min(1.0, 0.2 + 0.8 * epoch / IT)


def _run(group: str, dataset: str, loss: str) -> str:
    return f"{group}-{dataset}-resnet18-{loss}-s0"


def _mismatch(first: float, index: int, epoch: int, loss: str, svsl_gain: float,
              rise: float, worsen: float = 0.0) -> float:
    """Falls with depth (index 1 = layer1) and with the epochs; SVSL lower by svsl_gain;
    ``rise`` lifts layer3 above layer2; ``worsen`` lifts every layer from the IT to the EOT."""
    depth = first * (1 - (index - 1) / 6)
    value = depth * (1 + 0.5 * max(0, IT + 3 - epoch) / (IT + 3))
    if loss == "svsl":
        value -= svsl_gain * depth
    if index == 3:
        value += rise
    return max(value + worsen * max(0, epoch - IT) / (EPOCHS - IT), 0.0)


def make_tables(datasets=(("mnist", 0.16), ("cifar10", 0.6)), svsl_gain: float = 0.2,
                rise: float = 0.0, svsl_acc: float = 0.01, losses=("ce", "svsl"),
                worsen: float = 0.0, early_best: float = 0.0) -> Tables:
    """CE and SVSL runs per dataset built to satisfy every claim; each keyword breaks one:
    ``early_best`` lifts the test accuracy the epoch before the IT above all later ones."""
    training, epoch_rows, runs = [], [], []
    for dataset, first in datasets:
        group = dataset
        for loss in losses:
            run = _run(group, dataset, loss)
            for epoch in range(EPOCHS + 1):
                test = (0.5 + 0.4 * _train_acc(epoch) + (svsl_acc if loss == "svsl" else 0)
                        + early_best * (epoch == IT - 1))
                training.append({"epoch": epoch, "train_acc": _train_acc(epoch),
                                 "test_acc": min(test, 1.0) - 0.001 * (epoch == EPOCHS),
                                 "run": run, "dataset": dataset, "arch": "resnet18",
                                 "seed": 0, "group": group, "loss": loss})
                for index, layer in enumerate(LAYERS):
                    for split in ("train", "test"):
                        value = (0.9 if index == 0 else
                                 _mismatch(first, index, epoch, loss, svsl_gain, rise, worsen))
                        epoch_rows.append(mismatch_row(run, dataset, "resnet18", group, loss,
                                                       epoch, layer, index, split, value))
            runs.append({"run": run, "group": group, "dataset": dataset, "arch": "resnet18",
                         "seed": 0, "loss": loss, "selected": True, "diverged": False,
                         "svsl_alpha": 1e-5, "svsl_gamma": "layer1"})
    return tables_of(training, epoch_rows, runs)


def holds(claims: pd.DataFrame, start: str) -> list:
    return list(claims.loc[claims["claim"].str.startswith(start), "holds"])


def test_models_pair_the_ce_and_svsl_runs_of_each_group_with_their_interpolation_epoch():
    found = bs.loss_curves(make_tables())
    assert [m.model.dataset for m in found] == ["mnist", "cifar10"]
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
    # Conjectures 7, 8 and 11, each on the train split, then on the test split; then the rest.
    assert claims["where"].tolist()[:7] == [
        *["Conj. 7; Fig. 2"] * 2, *["Conj. 8; Fig. 2"] * 2, *["Conj. 11; §6.2; Fig. 2"] * 2,
        "Conj. 12; Table 1"]
    assert [c.split()[0] for c in claims["claim"][:4]] == ["Train", "Test", "Train", "Test"]


def test_a_rise_with_depth_and_an_svsl_that_raises_the_mismatch_fail_their_claims():
    claims = bs.claims(make_tables(svsl_gain=-0.2, rise=0.05))
    assert holds(claims, "Train NCC mismatch decreases with depth") == [False]
    assert holds(claims, "Test NCC mismatch decreases with depth") == [False]
    assert holds(claims, "SVSL's train NCC mismatch") == [False]
    measured = claims.loc[claims["claim"].str.startswith("Train NCC mismatch decreases"),
                          "measured"].iloc[0]
    assert "Layer2→Layer3" in measured


# Every claim row: keywords of make_tables where it holds, and where it fails.
FAR = (("mnist", 0.5), ("cifar10", 0.3))  # first layers far from §7's, in the wrong order
CLAIM_PAIRS = {
    "Train NCC mismatch decreases with depth": ({}, {"rise": 0.05}),
    "Test NCC mismatch decreases with depth": ({}, {"rise": 0.05}),
    "Train NCC mismatch at the IT ≥ at the EOT": ({}, {"worsen": 0.05}),
    "Test NCC mismatch at the IT ≥ at the EOT": ({}, {"worsen": 0.05}),
    "SVSL's train NCC mismatch < CE's": ({}, {"svsl_gain": -0.2}),
    "SVSL's test NCC mismatch < CE's": ({}, {"svsl_gain": -0.2}),
    "SVSL's EOT test accuracy ≥ CE's": ({}, {"svsl_acc": -0.02}),
    "SVSL's test accuracy ≥ CE's at almost all stages": ({}, {"svsl_acc": -0.02}),
    "Most runs reach their best test accuracy in the TPT": ({}, {"early_best": 0.1}),
    "First-layer mismatch as the paper's": ({}, {"datasets": FAR}),
    "First-layer mismatch lower on the easier dataset": ({}, {"datasets": FAR}),
}


def test_every_claim_row_has_a_holds_and_a_fails_case():
    assert len(bs.claims(make_tables())) == len(CLAIM_PAIRS)
    for claim in bs.claims(make_tables())["claim"]:
        assert sum(claim.startswith(start) for start in CLAIM_PAIRS) == 1, claim


@pytest.mark.parametrize("start", list(CLAIM_PAIRS))
def test_each_claim_holds_on_its_holding_tables(start):
    assert holds(bs.claims(make_tables(**CLAIM_PAIRS[start][0])), start) == [True]


@pytest.mark.parametrize("start", list(CLAIM_PAIRS))
def test_each_claim_fails_on_its_failing_tables(start):
    assert holds(bs.claims(make_tables(**CLAIM_PAIRS[start][1])), start) == [False]


def _svsl_layer1_shifted(shift: float) -> Tables:
    """SVSL's mismatch equal to CE's (every layer a tie) but for Layer1, ``shift`` higher."""
    tables = make_tables(svsl_gain=0.0)
    rows = tables.epoch_metrics.copy()
    rows.loc[(rows["loss"] == "svsl") & (rows["layer"] == "layer1"), "value"] += shift
    return replace(tables, epoch_metrics=rows)


def test_conjecture_11_counts_only_the_layers_where_svsl_and_ce_differ_beyond_the_tolerance():
    assert bs.svsl_decided(pd.Series([-0.01, 0.004, -0.004, 0.02, -0.0051])) == (2, 3)
    # Ties must not hold: SVSL higher in the one decided layer per model fails, though it is
    # within the tolerance of CE's in 10 of the 12 layers.
    higher = bs.claims(_svsl_layer1_shifted(0.05))
    assert holds(higher, "SVSL's train NCC mismatch") == [False]
    measured = higher.loc[higher["claim"].str.startswith("SVSL's train"), "measured"].iloc[0]
    assert measured.startswith("0/2 decided layers lower") and "10 ties" in measured
    assert holds(bs.claims(_svsl_layer1_shifted(-0.05)), "SVSL's train NCC mismatch") == [True]
    # Every layer a tie: nothing decided, the claim cannot tell.
    tied = bs.claims(make_tables(svsl_gain=0.0))
    assert holds(tied, "SVSL's train NCC mismatch") == [None]
    assert holds(tied, "SVSL's test NCC mismatch") == [None]
    assert "12 ties" in tied.loc[tied["claim"].str.startswith("SVSL's test"), "measured"].iloc[0]


def test_the_claims_give_the_papers_value_and_source_beside_ours():
    assert bs.paper_table1_counts() == {"eot": (9, 9), "stages": (23, 27), "tpt": (13, 18)}
    claims = bs.claims(make_tables())
    measured = dict(zip(claims["claim"], claims["measured"], strict=True))
    assert all("paper" in text for text in measured.values()), measured
    assert claims["where"].str.len().gt(0).all()
    eot = next(v for k, v in measured.items() if k.startswith("SVSL's EOT"))
    assert eot.endswith("paper (Table 1, its 9 datasets): 9/9 datasets")


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


def test_table2_reads_the_svsl_settings_from_the_design_beside_the_papers():
    table = bs.table2_svsl(make_tables())
    assert table.iloc[1].tolist() == ["CIFAR10 / resnet18", "1e-05", "Layer1", "4e-06",
                                      "AvgPool"]


def test_the_design_table_holds_the_svsl_settings_of_every_run():
    info = {"run": "r", "dataset": {"name": "digits", "label": "digits"},
            "arch": {"name": "resnet18", "label": "resnet18"}, "seed": 0,
            "final_train_acc": 1.0, "final_test_acc": 0.9,
            "train": {"lr": 0.1, "weight_decay": 0.0, "loss": "svsl", "svsl_alpha": 0.01,
                      "svsl_gamma": "avgpool"}}
    row = design_row(info, None)
    assert (row["train.svsl_alpha"], row["train.svsl_gamma"]) == (0.01, "avgpool")
    assert "svsl_alpha" not in run_records([info])  # one place: the design table


def test_depth_violations_name_each_rise_beyond_the_tolerance():
    curve = pd.Series([0.5, 0.3, 0.304, 0.4, 0.0], index=["a", "b", "c", "d", "e"])
    assert bs.depth_violations(curve) == [("c", "d", pytest.approx(0.096))]


def test_a_run_that_never_interpolates_has_no_tpt_and_is_left_out():
    tables = make_tables(datasets=(("mnist", 0.16),))
    training = tables.training.copy()
    ce = training["loss"] == "ce"
    training.loc[ce, "train_acc"] = 0.9
    tables = replace(tables, training=training)
    model = bs.loss_curves(tables)[0]
    assert math.isnan(model.interpolation["ce"])
    claims = bs.claims(tables)
    measured = claims.loc[claims["claim"].str.startswith("Train NCC mismatch decreases"),
                          "measured"].iloc[0]
    assert measured.startswith("1/1 runs") and "no TPT: MNIST/resnet18 CE" in measured
    assert bs.table1_accuracy(tables).iloc[0]["In TPT (CE)"] == "--"


@pytest.mark.parametrize("name", list(bs.FIGURES))
def test_each_figure_draws_a_column_per_model_and_a_row_per_split(name):
    fig = bs.FIGURES[name](make_tables().only(PAPER_FIGURE_READS["benshaul2022"][name], name))
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
    tables = replace(tables, training=tables.training.drop(columns="loss"),
                     runs=tables.runs.drop(columns="loss"))
    fig = bs.FIGURES[name](tables)
    assert "loss axis" in fig.texts[0].get_text()
    assert bs.claims(tables)["holds"].isna().all()


# --- GLUE: a BERT-like model on CoLA (MCC) and SST-2 ------------------------------------------

GLUE_EPOCHS = 10
GLUE_IT = 3  # train accuracy reaches 1 from this epoch on


def bert_layers(encoder: int) -> list[str]:
    """The taps of nclayers.sequence's adapter (input, embeddings, encoder.layer.*, pooler,
    classifier)."""
    return ["input", "embeddings", *(f"encoder.layer.{k}" for k in range(encoder)), "pooler",
            "classifier"]


def make_glue_tables(encoder: int = 2, svsl_acc: float = 0.01, svsl_mcc: float = 0.02,
                     mcc: bool = True, extra_rise: float = 0.3, rise: float = 0.0) -> Tables:
    """CE and SVSL runs of a BERT with ``encoder`` transformer layers on CoLA and SST-2: the
    mismatch falls with depth over the paper's layers (embeddings, every encoder layer but the
    last), while the last encoder layer, the pooler and the classifier lie ``extra_rise``
    above (they are drawn, not judged); ``rise`` lifts encoder.layer.0 above the embeddings."""
    layers = bert_layers(encoder)
    judged = 1 + encoder - 1  # embeddings and encoder.layer.0 … {encoder-2}
    training, epoch_rows, runs = [], [], []
    for dataset in ("cola", "sst2"):
        for loss in ("ce", "svsl"):
            run = f"{dataset}-{dataset}-bert-{loss}-s0"
            for epoch in range(GLUE_EPOCHS + 1):
                train = min(1.0, 0.6 + 0.4 * epoch / GLUE_IT)
                svsl = loss == "svsl"
                row = {"epoch": epoch, "train_acc": train,
                       "test_acc": 0.7 + 0.1 * train + (svsl_acc if svsl else 0)}
                if mcc:  # a training log's column: before the group and the axes
                    row["test_mcc"] = 0.4 + 0.1 * train + (svsl_mcc if svsl else 0)
                training.append({**row, "run": run, "dataset": dataset, "arch": "bert",
                                 "seed": 0, "group": dataset, "loss": loss})
                for index, layer in enumerate(layers):
                    depth = min(index - 1, judged) / judged if index else 0.0
                    value = (0.6 if index == 0 else 0.4 * (1 - 0.8 * depth)
                             + 0.1 * max(0, GLUE_IT - epoch) / GLUE_IT
                             - (0.05 if svsl else 0) + (extra_rise if index > judged else 0)
                             + (rise if layer == "encoder.layer.0" else 0))
                    for split in ("train", "test"):
                        epoch_rows.append(mismatch_row(run, dataset, "bert", dataset, loss,
                                                       epoch, layer, index, split, value))
            runs.append({"run": run, "group": dataset, "dataset": dataset, "arch": "bert",
                         "seed": 0, "loss": loss, "selected": True, "diverged": False,
                         "svsl_alpha": 5e-6 if dataset == "cola" else 4.132e-5,
                         "svsl_gamma": "encoder.layer.0" if dataset == "cola"
                         else "encoder.layer.9"})
    return tables_of(training, epoch_rows, runs)


def test_bert_layers_are_named_as_the_paper_numbers_them():
    names = [bs.layer_name(layer) for layer in bert_layers(12)[1:]]
    assert names == ["Emb", *(f"L{k}" for k in range(1, 13)), "Pooler", "FC"]
    # The paper's 12 (App. B): the embeddings and hidden_states[1..11], not L12, Pooler, FC.
    assert [bs.layer_name(x) for x in bs.paper_layers(bert_layers(12)[1:])] == \
        ["Emb", *(f"L{k}" for k in range(1, 12))]
    assert bs.paper_layers(LAYERS[1:]) == LAYERS[1:]  # a ResNet's: all


def test_glue_models_take_the_mcc_for_cola_and_the_accuracy_otherwise():
    found = bs.loss_curves(make_glue_tables())
    assert [(m.model.label, m.metric) for m in found] == [("CoLA / bert", "test_mcc"),
                                                   ("SST-2 / bert", "test_acc")]
    assert found[0].interpolation == {"ce": GLUE_IT, "svsl": GLUE_IT}


def test_table1_shows_colas_mcc_and_the_papers_glue_rows_with_their_metric():
    table = bs.table1_accuracy(make_glue_tables())
    assert table["Model"].tolist() == ["CoLA / bert", "CoLA", "SST-2 / bert", "SST-2"]
    assert table["Metric"].tolist() == ["MCC × 100", "MCC × 100", "acc. %", "acc. %"]
    cola, paper_cola, sst2, paper_sst2 = (table.iloc[i] for i in range(4))
    # MCC 0.4 + 0.1 · train accuracy: 50.00 from the IT on; SVSL's 2 points higher.
    assert (cola["IT CE"], cola["EOT SVSL"], cola["Best CE"]) == ("50.00", "52.00", "50.00")
    assert cola["In TPT (CE)"] == "Yes"
    assert (sst2["IT CE"], sst2["EOT SVSL"]) == ("80.00", "81.00")
    assert paper_cola.iloc[3:].tolist() == ["51.59", "52.91", "53.46", "55.54", "53.95", "No",
                                            "55.54", "Yes"]
    assert paper_sst2["Best SVSL"] == "89.22"


def test_table1_says_nothing_for_cola_without_a_test_mcc_column_rather_than_its_accuracy():
    table = bs.table1_accuracy(make_glue_tables(mcc=False))
    cola = table.iloc[0]
    assert cola["Metric"] == "MCC × 100"
    assert cola.iloc[3:].tolist() == ["--"] * 8
    assert table.iloc[2]["EOT CE"] == "80.00"  # SST-2 keeps its accuracy
    claims = bs.claims(make_glue_tables(mcc=False))
    measured = claims.loc[claims["claim"].str.startswith("SVSL's EOT test accuracy"),
                          "measured"].iloc[0]
    assert measured.startswith("1/1 models") and "no test MCC logged: CoLA/bert" in measured


def test_a_run_that_never_reaches_the_threshold_in_its_ten_epochs_has_no_it():
    tables = make_glue_tables()
    training = tables.training.copy()
    training.loc[training["dataset"] == "cola", "train_acc"] = 0.9
    tables = replace(tables, training=training)
    cola = bs.table1_accuracy(tables).iloc[0]
    assert (cola["IT CE"], cola["In TPT (CE)"], cola["In TPT (SVSL)"]) == ("--", "--", "--")
    assert cola["EOT CE"] == "50.00" and cola["Best CE"] == "50.00"


def test_table2_gives_the_papers_bert_gamma_as_its_number_and_ours_by_the_same_number():
    table = bs.table2_svsl(make_glue_tables())
    assert table.values.tolist() == [["CoLA / bert", "5e-06", "L1", "5e-06", "1"],
                                     ["SST-2 / bert", "4.132e-05", "L10", "4.132e-05", "10"]]


def test_the_glue_claims_hold_over_the_papers_layers_whatever_pooler_and_fc_do():
    claims = bs.claims(make_glue_tables())
    held = dict(zip(claims["claim"], claims["holds"], strict=True))
    assert all(v is True or v is None for v in held.values()), claims.to_string()
    assert holds(claims, "Train NCC mismatch decreases with depth") == [True]
    assert holds(claims, "SVSL's EOT test accuracy") == [True]
    assert "CoLA: MCC" in claims.loc[claims["claim"].str.startswith("SVSL's EOT"),
                                     "claim"].iloc[0]
    assert holds(claims, "First-layer mismatch as the paper's") == [None]
    # A rise among the paper's layers fails, named by the paper's layer numbers.
    risen = bs.claims(make_glue_tables(encoder=3, rise=0.2))
    assert holds(risen, "Train NCC mismatch decreases with depth") == [False]
    measured = risen.loc[risen["claim"].str.startswith("Train NCC mismatch decreases"),
                         "measured"].iloc[0]
    assert "Emb→L1" in measured and "Pooler" not in measured


def test_the_eot_claim_follows_colas_mcc_where_it_disagrees_with_the_accuracy():
    # SVSL's CoLA accuracy is higher, its MCC lower: Conjecture 12 fails, on the MCC.
    claims = bs.claims(make_glue_tables(svsl_acc=0.02, svsl_mcc=-0.03))
    assert holds(claims, "SVSL's EOT test accuracy") == [False]
    measured = claims.loc[claims["claim"].str.startswith("SVSL's EOT test accuracy"),
                          "measured"].iloc[0]
    assert measured.startswith("1/2 models") and "CoLA/bert -3.00 MCC×100" in measured
    assert holds(claims, "SVSL's test accuracy ≥ CE's at almost all stages") == [False]
    # The same runs judged by CoLA's accuracy (no MCC logged) would hold.
    assert holds(bs.claims(make_glue_tables(svsl_acc=0.02, svsl_mcc=-0.03, mcc=False)),
                 "SVSL's EOT test accuracy") == [True]


def _figure_labels(fig: Figure) -> set[str]:
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    texts = {t.get_text() for legend in legends for t in legend.get_texts()}
    ticks = {t.get_text() for ax in fig.axes for t in ax.get_yticklabels()}
    return texts | ticks


@pytest.mark.parametrize("encoder", [2, 12])
def test_fig2_names_bert_layers_as_the_paper_does_in_a_legend_or_a_depth_colour_bar(encoder):
    fig = bs.fig2_ncc_mismatch(make_glue_tables(encoder=encoder))
    labels = _figure_labels(fig)
    wanted = {"Emb", *(f"L{k}" for k in range(1, encoder + 1)), "Pooler", "FC"}
    assert wanted <= labels, labels
    assert not any("encoder.layer" in label for label in labels)
    panels = [ax for ax in fig.axes if ax.get_lines()]
    assert len(panels) == 4  # CoLA and SST-2, train and test
    assert {ax.get_title() for ax in panels} >= {"CoLA / bert", "SST-2 / bert"}
    if encoder == 12:  # 15 layers: a colour bar keys them, the legend only the losses
        assert len([ax for ax in fig.axes if not ax.get_lines()]) == 1
        assert "L12" not in {t.get_text() for t in fig.legends[0].get_texts()}


def test_fig1_draws_colas_test_mcc_and_says_so_and_sst2s_test_accuracy():
    tables = make_glue_tables()
    fig = bs.fig1_accuracy(tables)
    panels = [ax for ax in fig.axes if ax.get_lines()]
    assert [ax.get_ylabel() for ax in panels] == ["train accuracy", "", "test MCC",
                                                  "test accuracy"]
    cola_svsl = panels[2].get_lines()[1].get_ydata()
    assert cola_svsl[-1] == pytest.approx(0.52)  # the MCC, not the accuracy (0.82)
    assert "CoLA: test MCC" in fig._suptitle.get_text()
    without = bs.fig1_accuracy(make_glue_tables(mcc=False))
    assert [ax.get_ylabel() for ax in without.axes if ax.get_lines()][2] == "test accuracy"


@pytest.mark.parametrize("name", list(bs.FIGURES))
def test_a_figure_keys_no_tpt_shade_where_no_run_reached_the_threshold(name):
    tables = make_glue_tables()
    tables = replace(tables, training=tables.training.assign(train_acc=0.9))
    fig = bs.FIGURES[name](tables)
    labels = {t.get_text() for legend in fig.legends for t in legend.get_texts()}
    assert {"CE", "SVSL"} <= labels and not any(label.startswith("TPT") for label in labels)
    glue = bs.FIGURES[name](make_glue_tables())
    assert "TPT, both" in {t.get_text() for t in glue.legends[0].get_texts()}
    assert_on_page(glue, name)  # the GLUE title and legend are the widest


def with_second_seed(tables: Tables, mismatch: float, test_acc: float) -> Tables:
    """``tables`` with a second seed (``-s1``) of each run: every NCC mismatch ``mismatch``
    higher, every test accuracy ``test_acc`` higher (the train accuracy, so the IT, the same)."""
    def both(frame: pd.DataFrame, column: str | None = None, shift: float = 0.0) -> pd.DataFrame:
        second = frame.assign(run=frame["run"].str.replace("-s0", "-s1"), seed=1)
        if column is not None:
            second[column] += shift
        return pd.concat([frame, second], ignore_index=True)
    return replace(tables, training=both(tables.training, "test_acc", test_acc),
                   epoch_metrics=both(tables.epoch_metrics, "value", mismatch),
                   runs=both(tables.runs), design=both(tables.design))


def _bands(ax) -> list[tuple[float, float]]:
    """(low, high) at the last epoch of each ± sd band of ``ax``."""
    return bands_at(ax, EPOCHS)


def test_seed_means_are_drawn_in_a_band_of_one_sd_and_one_seed_has_none():
    one = make_tables(datasets=(("mnist", 0.16),))
    two = with_second_seed(one, mismatch=0.04, test_acc=-0.02)
    (model,) = bs.loss_curves(two)
    assert len(model.runs["ce"]) == 2 and model.interpolation == {"ce": IT, "svsl": IT}
    # a uniform shift between two seeds: sd = |shift| / √2 everywhere (ddof 1)
    for name, ylabel, shift in (("fig1_accuracy", "test accuracy", 0.02),
                                ("fig2_ncc_mismatch", "train NCC mismatch", 0.04)):
        ax = next(ax for ax in bs.FIGURES[name](two).axes if ax.get_ylabel() == ylabel)
        ends = [line.get_ydata()[-1] for line in ax.lines]  # a band per (loss, curve) line
        sd = shift / math.sqrt(2)
        assert _bands(ax) == [pytest.approx((end - sd, end + sd)) for end in ends], name
        assert len(ends) == (2 if name == "fig1_accuracy" else 2 * (len(LAYERS) - 1))
    for name in bs.FIGURES:  # one seed: sd NaN, the mean lines alone
        axes = [ax for ax in bs.FIGURES[name](one).axes if ax.lines]
        assert axes and not any(_bands(ax) for ax in axes), name
