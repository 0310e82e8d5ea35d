"""Parker et al. (2023) (nclayers.papers.parker2023): the depth criteria on curves with known
answers, the claims on small hand-built tidy tables (a model where every claim holds, one where
none does), and every figure on such tables and on tables without its activation."""

from __future__ import annotations

import dataclasses
import io
import math
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from nclayers.derived import interpolation_epoch
from nclayers.papers import CLAIM_COLUMNS, Tables
from nclayers.papers import parker2023 as pk
from nclayers.vocabulary import DEFAULT_THRESHOLDS, PAPER_FIGURES, PAPER_TABLES

MAX_WIDTH, MAX_HEIGHT = 9.5, 11.0
EPOCHS = (0, 5, 10, 20)
TPT_EPOCH = 7  # train accuracy reaches 1.0 here: the first checkpoint after TPT is 10

# After TPT (input first, then six hidden layers). GOOD: every claim holds; BAD: none does.
GOOD = {
    "nc1": [1.0, 0.3, 0.1, 0.05, 0.045, 0.042, 0.04],  # plateau from layer 2, 99 % by layer 3
    "nc2_equinorm": [0.2, 0.18, 0.15, 0.12, 0.1, 0.08, 0.05],  # falls to the last layer
    "nc2_maxangle": [0.3, 0.28, 0.25, 0.2, 0.15, 0.1, 0.02],
    "nc4_mismatch": [0.5, 0.4, 0.3, 0.2, 0.1, 0.02, 0.0],  # plateau from layer 5
}
BAD = {
    "nc1": [1.0, 0.9, 0.8, 0.55, 2.0, 0.2, 0.1],  # above init in layer 4; half by layer 3
    "nc2_equinorm": [0.2, 0.1, 0.05, 0.06, 0.08, 0.1, 0.12],  # rises again
    "nc2_maxangle": [0.3, 0.1, 0.05, 0.06, 0.08, 0.1, 0.12],
    "nc4_mismatch": [0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # plateau from layer 1
}
INIT = 1.5  # every metric at initialisation, every layer


def model_rows(run: str, dataset: str, arch: str, activation: str, after: dict,
               seed: int = 0, group: str = "main", layers: int = 7,
               tail: tuple[str, ...] = ()) -> list[dict]:
    """Tidy train and test rows of one run: INIT at epoch 0, ``after`` from the first
    checkpoint after TPT on, halfway between before it; ``tail`` adds layers after the hidden
    ones (avgpool, classifier) with nonsense values the paper's figures leave out."""
    names = ["input", *(f"layer{i}" for i in range(1, layers))] + list(tail)
    rows = []
    for epoch in EPOCHS:
        for index, name in enumerate(names):
            for metric, values in after.items():
                trained = values[index] if index < len(values) else 99.0
                value = (INIT if epoch == 0 else trained if epoch > TPT_EPOCH
                         else (INIT + trained) / 2)
                for split in ("train", "test"):
                    rows.append({"run": run, "dataset": dataset, "arch": arch, "seed": seed,
                                 "epoch": epoch, "layer": name, "layer_index": index,
                                 "split": split, "metric": metric, "value": value,
                                 "group": group, "activation": activation})
    return rows


def training_rows(run: str, tpt: int | None = TPT_EPOCH) -> list[dict]:
    return [{"epoch": e, "train_acc": 1.0 if tpt is not None and e >= tpt else 0.5,
             "test_acc": 0.9, "run": run} for e in range(max(EPOCHS) + 1)]


def derived_rows(run: str, dataset: str, arch: str, activation: str, training: list[dict],
                 seed: int = 0) -> list[dict]:
    """The interpolation_epoch row ``aggregate`` writes for the run (no layer)."""
    train_acc = pd.Series({r["epoch"]: r["train_acc"] for r in training})
    return [{"run": run, "dataset": dataset, "arch": arch, "seed": seed,
             "epoch": int(train_acc.index.max()), "layer": None, "layer_index": math.nan,
             "split": "train", "metric": "interpolation_epoch",
             "value": interpolation_epoch(train_acc, DEFAULT_THRESHOLDS.interpolation),
             "group": "main", "activation": activation}]


def make_tables(models: list[dict], activation_column: bool = True,
                compared: str = "activation") -> Tables:
    """Tables of ``models``: dicts with dataset, arch, activation, after (curves), and
    optionally seed, selected, tpt, layers, tail; ``compared``: the design's compared axes."""
    metrics, training, runs = [], [], []
    for m in models:
        seed = m.get("seed", 0)
        run = f"{m['dataset']}-{m['arch']}-{m['activation']}-s{seed}"
        metrics += model_rows(run, m["dataset"], m["arch"], m["activation"], m["after"], seed,
                              layers=m.get("layers", 7), tail=m.get("tail", ()))
        log = training_rows(run, m.get("tpt", TPT_EPOCH))
        metrics += derived_rows(run, m["dataset"], m["arch"], m["activation"], log, seed)
        training += log
        runs.append({"run": run, "group": "main", "dataset": m["dataset"], "arch": m["arch"],
                     "seed": seed, "activation": m["activation"],
                     "selected": m.get("selected", True)})
    metrics, runs = pd.DataFrame(metrics), pd.DataFrame(runs)
    design = runs[["run", "group", "seed", "dataset", "arch"]].assign(
        selected_axes="", compared_axes=compared if activation_column else "")
    if not activation_column:
        metrics, runs = metrics.drop(columns="activation"), runs.drop(columns="activation")
    empty = pd.DataFrame()
    return Tables(metrics=metrics, training=pd.DataFrame(training), spectra=empty,
                  epoch_metrics=empty, runs=runs, design=design)


def claims_of(tables: Tables, activation: str) -> pd.DataFrame:
    table = pk.claims(tables)
    return table[table["claim"].str.startswith(f"{pk.ACTIVATIONS[activation]}: ")]


# --- the registry -------------------------------------------------------------------------

def test_figures_and_tables_are_the_vocabularys():
    assert tuple(pk.FIGURES) == PAPER_FIGURES["parker2023"]
    assert tuple(pk.TABLES) == PAPER_TABLES["parker2023"]


@pytest.mark.parametrize(("name", "number"), [("nc1_relu", 1), ("nc4_relu", 4),
                                              ("nc1_tanh", 5), ("maxangle_tanh", 7),
                                              ("equinorm_leaky_relu", 10),
                                              ("nc4_leaky_relu", 12)])
def test_figure_numbers_are_the_papers(name, number):
    metric, activation = name.split("_", 1)
    assert pk.figure_number(metric, activation) == number
    assert f"Fig. {number}:" in pk.FIGURES[name].__doc__


# --- the criteria on one curve ------------------------------------------------------------

def curve(values: list[float]) -> pd.Series:
    return pd.Series(values, index=range(len(values)), dtype=float)


def test_below_everywhere_compares_the_hidden_layers_only():
    init, after = curve([0.1, 1, 1, 1]), curve([0.5, 0.5, 0.9, 0.2])
    assert pk.below_everywhere(init, after) == (True, 3, 3)
    assert pk.below_everywhere(init, curve([0.5, 0.5, 1.1, 0.2])) == (False, 2, 3)


def test_fall_share_by_middle():
    assert pk.fall_share_by_middle(curve([1, 0.8, 0.6, 0.4, 0.2])) == pytest.approx(0.5)
    # five hidden layers: the middle one is layer 3
    assert pk.fall_share_by_middle(curve([1, 0.5, 0.2, 0.1, 0.1, 0.0])) == pytest.approx(0.9)
    assert math.isnan(pk.fall_share_by_middle(curve([1, 1.2, 1.5])))


def test_last_near_min():
    assert pk.last_near_min(curve([9, 0.3, 0.2, 0.21])) == (True, pytest.approx(1.05))
    ok, ratio = pk.last_near_min(curve([0.0, 0.3, 0.2, 0.3]))  # the input does not count
    assert not ok and ratio == pytest.approx(1.5)
    assert pk.last_near_min(curve([1, 0.0, 0.0])) == (True, 1.0)


def test_plateau_layer():
    assert pk.plateau_layer(curve(GOOD["nc1"])) == 2
    assert pk.plateau_layer(curve(GOOD["nc4_mismatch"])) == 5
    assert pk.plateau_layer(curve([1, 0.8, 0.6, 0.4, 0.2])) == 4
    assert pk.plateau_layer(curve([1, 1, 1])) == 0


# --- models and claims --------------------------------------------------------------------

def test_the_first_checkpoint_after_tpt_seeds_averaged_and_hidden_layers_only():
    tables = make_tables([
        {"dataset": "mnist", "arch": "resnet18", "activation": "relu", "after": GOOD,
         "tail": ("avgpool", "classifier"), "seed": s} for s in (0, 1)])
    ((model, rows, tpt),) = pk.activation_models(tables, "relu")
    assert tpt == 10 and model.label == "mnist / resnet18"
    nc1 = pk.curve(rows, "nc1", 10)
    assert list(nc1.index) == list(range(7)) and list(nc1) == GOOD["nc1"]
    with pytest.raises(LookupError):
        pk.curve(rows, "nc1", TPT_EPOCH)  # no checkpoint there
    assert pk.activation_models(tables, "tanh") == []


def test_tpt_is_the_interpolation_epoch_aggregate_derived():
    tables = make_tables([{"dataset": "mnist", "arch": "mlp6", "activation": "relu",
                           "after": GOOD}])
    derived = tables.metrics["metric"] == "interpolation_epoch"
    for epoch, tpt in ((12.0, 20), (math.nan, None), (25.0, None)):
        metrics = tables.metrics.assign(value=tables.metrics["value"].mask(derived, epoch))
        changed = dataclasses.replace(tables, metrics=metrics)
        ((_, _, after),) = pk.activation_models(changed, "relu")
        assert after == tpt


def test_every_claim_holds_on_a_model_that_shows_them_all():
    claims = claims_of(make_tables([{"dataset": "mnist", "arch": "mlp6", "activation": "relu",
                                     "after": GOOD}]), "relu")
    assert list(claims.columns) == CLAIM_COLUMNS
    assert len(claims) == len(pk.CLAIMS) and claims["holds"].tolist() == [True] * 5
    assert claims["measured"].str.startswith("1/1 (mnist/mlp6: ").all()
    assert claims["measured"].tolist() == [
        "1/1 (mnist/mlp6: 6/6 layers, max ratio 0.2)", "1/1 (mnist/mlp6: 99%)",
        "1/1 (mnist/mlp6: last/min 1.00)", "1/1 (mnist/mlp6: last/min 1.00)",
        "1/1 (mnist/mlp6: NC1 2, NC4 5 of 6)"]
    assert claims["where"].iloc[0] == "§3, Fig. 1"


def test_no_claim_holds_on_a_model_that_shows_none():
    claims = claims_of(make_tables([{"dataset": "mnist", "arch": "mlp6", "activation": "tanh",
                                     "after": BAD}]), "tanh")
    assert claims["holds"].tolist() == [False] * 5
    assert claims["measured"].tolist() == [
        "0/1 (mnist/mlp6: 5/6 layers, max ratio 1.3)", "0/1 (mnist/mlp6: 50%)",
        "0/1 (mnist/mlp6: last/min 2.40)", "0/1 (mnist/mlp6: last/min 2.40)",
        "0/1 (mnist/mlp6: NC1 5, NC4 1 of 6)"]
    assert claims["where"].iloc[3] == "App. B, Fig. 7; §4 (2)"


def test_a_claim_holds_when_it_holds_in_most_models_and_names_them():
    models = [{"dataset": d, "arch": "mlp6", "activation": "relu", "after": GOOD}
              for d in ("mnist", "svhn")]
    models.append({"dataset": "cifar100", "arch": "mlp6", "activation": "relu", "after": BAD})
    claims = claims_of(make_tables(models), "relu")
    assert claims["holds"].tolist() == [True] * 5
    assert claims["measured"].str.startswith("2/3 (mnist/mlp6: ").all()
    assert claims["measured"].str.contains("cifar100/mlp6").all()


def test_many_models_list_the_failing_ones():
    models = [{"dataset": f"d{i}", "arch": "mlp6", "activation": "relu",
               "after": GOOD if i < 5 else BAD} for i in range(9)]
    measured = claims_of(make_tables(models), "relu")["measured"].iloc[0]
    assert measured.startswith("5/9 (failing: d5/mlp6: ") and measured.endswith(" …)")
    assert "d0/" not in measured and "d8/" not in measured


def test_a_run_without_tpt_is_left_out_and_non_selected_runs_do_not_count():
    tables = make_tables([
        {"dataset": "mnist", "arch": "mlp6", "activation": "relu", "after": GOOD, "tpt": None},
        {"dataset": "svhn", "arch": "mlp6", "activation": "relu", "after": BAD,
         "selected": False}])
    claims = claims_of(tables, "relu")
    assert claims["holds"].isna().all()
    assert claims["measured"].str.contains("left out, no TPT: mnist/mlp6").all()
    ((_, _, tpt),) = pk.activation_models(tables, "relu")
    assert tpt is None


def test_the_activations_alike_claim():
    same = make_tables([{"dataset": "mnist", "arch": "mlp6", "activation": a, "after": GOOD}
                        for a in pk.ACTIVATIONS])
    alike = pk.claims(same).iloc[-1]
    assert alike["holds"] == True  # noqa: E712
    assert alike["measured"].startswith("5/5 claims alike; NC1<init T/T/T")
    differ = make_tables([
        {"dataset": "mnist", "arch": "mlp6", "activation": "relu", "after": GOOD},
        {"dataset": "mnist", "arch": "mlp6", "activation": "tanh", "after": BAD}])
    table = pk.claims(differ)
    assert table.iloc[-1]["holds"] == False  # noqa: E712
    assert "0/5 claims alike; NC1<init T/F/-" in table.iloc[-1]["measured"]
    missing = table[table["claim"].str.startswith("LeakyReLU: ")]
    assert missing["holds"].isna().all()
    assert (missing["measured"] == "no selected run with activation leaky_relu").all()
    one = pk.claims(make_tables([{"dataset": "mnist", "arch": "mlp6", "activation": "relu",
                                  "after": GOOD}]))
    assert one.iloc[-1]["holds"] is None


def test_claims_without_an_activation_axis_cannot_be_told():
    tables = make_tables([{"dataset": "mnist", "arch": "mlp6", "activation": "relu",
                           "after": GOOD}], activation_column=False)
    claims = pk.claims(tables)
    assert len(claims) == 3 * len(pk.CLAIMS) + 1 and claims["holds"].isna().all()


# --- figures ------------------------------------------------------------------------------

def lines(ax) -> list:
    return [line for line in ax.get_lines() if len(line.get_xdata())]


@pytest.fixture(scope="module")
def paper_grid() -> Tables:
    """The full preset's shape: 3 architectures × 5 datasets × 3 activations."""
    models = []
    for arch, layers, tail in (("mlp6", 7, ()), ("vgg11", 9, ("avgpool",)),
                               ("resnet18", 18, ("avgpool", "classifier"))):
        for dataset in ("cifar100", "mnist", "fashion_mnist", "svhn", "cifar10"):
            for activation in pk.ACTIVATIONS:
                after = {k: list(np.interp(np.linspace(0, 6, layers), range(7), v))
                         for k, v in GOOD.items()}
                models.append({"dataset": dataset, "arch": arch, "activation": activation,
                               "after": after, "layers": layers, "tail": tail})
    return make_tables(models)


@pytest.mark.parametrize("name", PAPER_FIGURES["parker2023"])
def test_every_figure_draws_the_papers_grid_within_the_page(paper_grid, name):
    fig = pk.FIGURES[name](paper_grid)
    assert isinstance(fig, Figure)
    width, height = fig.get_size_inches()
    assert width <= MAX_WIDTH and height <= MAX_HEIGHT
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert len(panels) == 15
    first = panels[0]
    assert first.get_title() == "mnist / mlp6"  # MLP6 first, the paper's dataset order
    assert [ax.get_title() for ax in panels[:5]] == [
        f"{d} / mlp6" for d in ("mnist", "fashion_mnist", "svhn", "cifar10", "cifar100")]
    assert first.get_yscale() == ("log" if name.startswith("nc1_") else "linear")
    styles = {(line.get_color(), line.get_linestyle()) for line in lines(first)}
    assert ("tab:blue", ":") in styles and ("tab:red", "-") in styles
    assert len(lines(first)) == len(EPOCHS)
    resnet = [ax for ax in panels if ax.get_title().endswith("resnet18")][0]
    assert max(max(line.get_xdata()) for line in lines(resnet)) == 17  # no avgpool, logits


def test_a_figure_of_the_papers_grid_lays_out_and_renders(paper_grid):
    pk.FIGURES["nc4_tanh"](paper_grid).savefig(io.BytesIO(), format="png", dpi=30)


def test_models_of_different_datasets_pack_into_rows_per_architecture():
    tables = make_tables([
        {"dataset": "digits", "arch": "mlp6", "activation": "relu", "after": GOOD},
        {"dataset": "digits16", "arch": "resnet18", "activation": "relu", "after": GOOD,
         "layers": 18, "tail": ("avgpool", "classifier")}])
    fig = pk.FIGURES["nc4_relu"](tables)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["digits / mlp6", "digits16 / resnet18"]
    fig.savefig(io.BytesIO(), format="png", dpi=30)


@pytest.mark.parametrize("name", PAPER_FIGURES["parker2023"])
def test_a_figure_without_its_activation_is_a_placeholder(name):
    other = "tanh" if not name.endswith("_tanh") else "relu"
    tables = make_tables([{"dataset": "mnist", "arch": "mlp6", "activation": other,
                           "after": GOOD}])
    for case in (tables, make_tables([{"dataset": "mnist", "arch": "mlp6", "activation": "relu",
                                       "after": GOOD}], activation_column=False)):
        fig = pk.FIGURES[name](case)
        texts = " ".join(t.get_text() for t in fig.texts)
        assert "needs selected runs with activation: " in texts and not fig.axes


def test_another_compared_axis_tells_models_apart():
    tables = make_tables([{"dataset": "mnist", "arch": "mlp6", "activation": "relu",
                           "after": GOOD, "seed": s} for s in (0, 1)],
                         compared="activation;width")
    width = {0: 64.0, 1: 128.0}  # as a compared axis, not seeds (each "seed" a width here)
    metrics = tables.metrics.assign(width=tables.metrics["seed"].map(width))
    runs = tables.runs.assign(width=tables.runs["seed"].map(width))
    wide = Tables(metrics=metrics, training=tables.training, spectra=tables.spectra,
                  epoch_metrics=tables.epoch_metrics, runs=runs, design=tables.design)
    assert [m.label for m, _, _ in pk.activation_models(wide, "relu")] == [
        "mnist / mlp6 / width=64", "mnist / mlp6 / width=128"]
    fig = pk.FIGURES["nc1_relu"](wide)
    assert len([ax for ax in fig.axes if ax.get_visible() and ax.get_title()]) == 2


def test_the_claims_typeset_as_plain_latex():
    from nclayers.tables import claims_tex

    models = [{"dataset": f"d{i}", "arch": "mlp6", "activation": a,
               "after": GOOD if i < 5 else BAD} for i in range(9) for a in ("relu", "tanh")]
    tex = claims_tex(pk.claims(make_tables(models)))
    assert r"\S{}3" in tex and r"$\geq$ 75\%" in tex and r"\ldots{}" in tex
    assert not re.search(r"[^\x00-\x7f]", tex), "pdflatex cannot typeset raw unicode"
