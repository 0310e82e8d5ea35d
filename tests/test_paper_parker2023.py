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
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from nclayers.derived import interpolation_epoch
from nclayers.papers import CLAIM_COLUMNS, Tables
from nclayers.papers import parker2023 as pk
from nclayers.vocabulary import DEFAULT_THRESHOLDS, PAPER_FIGURE_READS, PAPER_FIGURES, PAPER_TABLES

MAX_WIDTH, MAX_HEIGHT = 9.5, 11.0
EPOCHS = (0, 5, 10, 20)
TPT_EPOCH = 7  # train accuracy reaches 1.0 here: the checkpoints after TPT are 10 and 20

# After TPT (input first, then six hidden layers). GOOD: every claim holds; BAD: none does.
GOOD = {
    "nc1": [1.0, 0.3, 0.1, 0.05, 0.045, 0.042, 0.04],  # plateau from layer 2, 99 % by layer 3
    "nc2_equinorm": [0.2, 0.18, 0.15, 0.12, 0.1, 0.08, 0.05],  # falls to the last layer
    "nc2_maxangle": [0.3, 0.28, 0.25, 0.2, 0.15, 0.1, 0.02],
    "nc4_mismatch": [0.5, 0.4, 0.3, 0.2, 0.1, 0.02, 0.0],  # plateau from 5, zero from 6
}
EARLY_ZERO = [0.5, 0.3, 0.1, 0.0, 0.0, 0.0, 0.0]  # NC4 at zero from the middle layer (3) on
BAD = {
    "nc1": [1.0, 0.9, 0.8, 0.55, 2.0, 0.2, 0.1],  # above init in layer 4; half by layer 3
    "nc2_equinorm": [0.2, 0.1, 0.05, 0.06, 0.08, 0.1, 0.12],  # rises again
    "nc2_maxangle": [0.3, 0.1, 0.05, 0.06, 0.08, 0.1, 0.12],
    "nc4_mismatch": [0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # plateau from layer 1
}
MEASURED = [  # claims 1-5 on GOOD and on BAD, without the paper's value
    ("6/6 layers, max ratio 0.2", "5/6 layers, max ratio 1.3"), ("93%", "26%"),
    ("47% after the middle, last lowest", "-75% after the middle, last not lowest"),
    ("64% after the middle, last lowest", "-33% after the middle, last not lowest"),
    ("NC1 2, NC4 5 of 6", "NC1 5, NC4 1 of 6")]
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


def test_middle_layer():
    assert pk.middle_layer(curve([1, 0.5, 0.2, 0.1, 0.1, 0.0])) == 3  # of five hidden layers
    assert pk.middle_layer(curve([1, 0.5, 0.2, 0.1, 0.0])) == 2  # of four
    assert pk.middle_layer(curve([1, 0.5])) is None


def test_fall_share_by_middle():
    assert pk.fall_share_by_middle(curve([1, 0.8, 0.6, 0.4, 0.2])) == pytest.approx(0.5)
    # five hidden layers: the middle one is layer 3
    assert pk.fall_share_by_middle(curve([1, 0.5, 0.2, 0.1, 0.1, 0.0])) == pytest.approx(0.9)
    assert math.isnan(pk.fall_share_by_middle(curve([1, 1.2, 1.5])))


def test_the_nc1_plateau_is_judged_in_decades():
    falls = curve([10, 5, 2, 0.1, 0.01])  # 10 -> 2 -> 0.01: 80 % of the fall, 23 % of decades
    assert pk.fall_share_by_middle(falls) == pytest.approx(8 / 9.99)
    assert pk.fall_share_by_middle(falls, log=True) == pytest.approx(math.log10(5) / 3)
    assert pk.fall_share_by_middle(curve([10, 0.1, 0.02, 0.015, 0.01]), log=True) == (
        pytest.approx(math.log10(500) / 3))  # 90 %: a plateau in decades too
    assert math.isnan(pk.fall_share_by_middle(curve([1, 0.5, 0.0, 0.0, 0.0]), log=True))


def test_keeps_falling_holds_to_the_last_layer_and_fails_on_a_plateau_or_a_rise():
    ok, share, lowest = pk.keeps_falling(curve([0.3, 0.25, 0.2, 0.15, 0.1]))  # linear: holds
    assert ok and lowest and share == pytest.approx(0.5)
    # a plateau after the middle: the last layer the lowest, but 0.5 % of the fall after it
    ok, share, lowest = pk.keeps_falling(curve([0.3, 0.1, 0.05, 0.05, 0.05, 0.0499]))
    assert not ok and lowest and share == pytest.approx(0.0001 / 0.2501)
    # lowest before the last layer (the old "within 10 % of the minimum" passed this)
    ok, share, lowest = pk.keeps_falling(curve([9, 0.3, 0.2, 0.1, 0.105]))
    assert not ok and not lowest
    assert not pk.keeps_falling(curve([0.0, 0.3, 0.2, 0.1]))[0]  # no fall from the input


def test_zero_layer():
    assert pk.zero_layer(curve(EARLY_ZERO)) == 3
    assert pk.zero_layer(curve(GOOD["nc4_mismatch"])) == 6
    assert pk.zero_layer(curve([0.0, 0.3, 0.02])) is None  # the input does not count
    assert pk.zero_layer(curve([0.5, 0.3, 0.02]), tol=0.05) == 2


def test_plateau_layer():
    assert pk.plateau_layer(curve(GOOD["nc1"])) == 2
    assert pk.plateau_layer(curve(GOOD["nc4_mismatch"])) == 5
    assert pk.plateau_layer(curve([1, 0.8, 0.6, 0.4, 0.2])) == 4
    assert pk.plateau_layer(curve([1, 1, 1])) == 0


# --- models and claims --------------------------------------------------------------------

def test_the_last_checkpoint_after_tpt_seeds_averaged_and_hidden_layers_only():
    tables = make_tables([
        {"dataset": "mnist", "arch": "resnet18", "activation": "relu", "after": GOOD,
         "tail": ("avgpool", "classifier"), "seed": s} for s in (0, 1)])
    ((model, rows, tpt),) = pk.activation_models(tables, "relu")
    assert tpt == 20 and model.label == "mnist / resnet18"  # the end of training, the paper's
    ((_, _, first),) = pk.activation_models(tables, "relu", after="first")
    assert first == 10
    with pytest.raises(ValueError):
        pk.activation_models(tables, "relu", after="middle")
    nc1 = pk.curve(rows, "nc1", 20)
    assert list(nc1.index) == list(range(7)) and list(nc1) == GOOD["nc1"]
    with pytest.raises(LookupError):
        pk.curve(rows, "nc1", TPT_EPOCH)  # no checkpoint there
    assert pk.activation_models(tables, "tanh") == []


def test_tpt_is_the_interpolation_epoch_aggregate_derived():
    tables = make_tables([{"dataset": "mnist", "arch": "mlp6", "activation": "relu",
                           "after": GOOD}])
    derived = tables.metrics["metric"] == "interpolation_epoch"
    for epoch, tpt, first in ((12.0, 20, 20), (5.0, 20, 5), (math.nan, None, None),
                              (25.0, None, None)):
        metrics = tables.metrics.assign(value=tables.metrics["value"].mask(derived, epoch))
        changed = dataclasses.replace(tables, metrics=metrics)
        ((_, _, after),) = pk.activation_models(changed, "relu")
        assert after == tpt
        ((_, _, after),) = pk.activation_models(changed, "relu", after="first")
        assert after == first


def test_every_claim_holds_on_a_model_that_shows_them_all():
    claims = claims_of(make_tables([{"dataset": "mnist", "arch": "mlp6", "activation": "relu",
                                     "after": GOOD}]), "relu")
    assert list(claims.columns) == CLAIM_COLUMNS
    # NC4 zero fails on MNIST's side (zero only at layer 6, after the middle), which decides it
    # without a CIFAR100 model
    assert len(claims) == len(pk.CLAIMS) and claims["holds"].tolist() == [True] * 5 + [False]
    measured = claims["measured"].str.split(" — paper: ").str[0].tolist()
    assert measured[:5] == [f"1/1 (mnist/mlp6: {good})" for good, _ in MEASURED]
    assert measured[5] == "0/1 (mnist/mlp6: from layer 6, middle 3); no CIFAR100 model after TPT"
    assert claims["where"].iloc[0] == "§3, Fig. 1"


def test_no_claim_holds_on_a_model_that_shows_none():
    claims = claims_of(make_tables([{"dataset": "mnist", "arch": "mlp6", "activation": "tanh",
                                     "after": BAD}]), "tanh")
    assert claims["holds"].tolist() == [False] * 5 + [None]
    measured = claims["measured"].str.split(" — paper: ").str[0].tolist()
    assert measured[:5] == [f"0/1 (mnist/mlp6: {bad})" for _, bad in MEASURED]
    assert claims["where"].iloc[3] == "App. B, Fig. 7; §4 (2)"


def test_every_claim_shows_the_papers_value_beside_the_measured_one():
    table = pk.claims(make_tables([{"dataset": "mnist", "arch": "mlp6", "activation": "relu",
                                    "after": GOOD}]))
    papers = table["measured"].str.split(" — paper: ").str[1]
    assert papers.notna().all() and (papers.str.len() > 20).all()
    assert papers.iloc[3].startswith("'almost all of the reduction in intra-class variance'")
    assert "(§4 (2))" in papers.iloc[9] and "CIFAR100" in papers.iloc[15]


def test_the_nc2_claims_fail_on_a_plateau_after_the_middle_layer():
    flat = dict(GOOD, nc2_equinorm=[0.2, 0.1, 0.05, 0.05, 0.05, 0.05, 0.0499],
                nc2_maxangle=[0.3, 0.28, 0.25, 0.2, 0.15, 0.1, 0.11])  # a rise at the end
    claims = claims_of(make_tables([{"dataset": "mnist", "arch": "mlp6", "activation": "relu",
                                     "after": flat}]), "relu")
    assert claims["holds"].tolist()[2:4] == [False, False]
    assert claims["measured"].iloc[2].startswith("0/1 (mnist/mlp6: 0% after the middle, last "
                                                 "lowest)")


@pytest.mark.parametrize(("simple", "hard", "holds", "count"), [
    (EARLY_ZERO, GOOD["nc4_mismatch"], True, "3/3"),  # MNIST, SVHN by the middle, CIFAR100 after
    (GOOD["nc4_mismatch"], EARLY_ZERO, False, "0/3"),  # the other way round
    (EARLY_ZERO, EARLY_ZERO, False, "2/3"),  # CIFAR100 as early as the simple ones
    (EARLY_ZERO, [0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.03], False, "2/3")])  # CIFAR100: never
def test_nc4_reaches_zero_early_on_simple_datasets_late_on_cifar100(simple, hard, holds, count):
    models = [{"dataset": d, "arch": "mlp6", "activation": "relu",
               "after": dict(GOOD, nc4_mismatch=simple)} for d in ("mnist", "svhn")]
    models.append({"dataset": "cifar100", "arch": "mlp6", "activation": "relu",
                   "after": dict(GOOD, nc4_mismatch=hard)})
    row = claims_of(make_tables(models), "relu").iloc[5]
    assert row["holds"] == holds
    assert row["where"] == "§3, Fig. 4; §4 (3)"
    assert row["measured"].startswith(f"{count} (mnist/mlp6: from layer ")


EARLY = dict(GOOD, nc4_mismatch=EARLY_ZERO)


@pytest.mark.parametrize("datasets, after, holds", [
    (("digits",), GOOD, None),  # neither kind of dataset
    (("cifar100",), GOOD, None),  # CIFAR100's side holds (zero late), MNIST's missing
    (("mnist", "svhn"), EARLY, None),  # the simple side holds, CIFAR100's missing
    (("mnist", "svhn"), GOOD, False),  # the simple side fails (zero late): decided
    (("cifar100",), EARLY, False)])  # CIFAR100's side fails (zero early): decided
def test_nc4_zero_needs_both_kinds_unless_one_fails(datasets, after, holds):
    models = [{"dataset": d, "arch": "mlp6", "activation": "relu", "after": after}
              for d in datasets]
    row = claims_of(make_tables(models), "relu").iloc[5]
    assert row["holds"] is holds and " model after TPT — paper: " in row["measured"]


def test_a_claim_holds_when_it_holds_in_most_models_and_names_them():
    models = [{"dataset": d, "arch": "mlp6", "activation": "relu", "after": GOOD}
              for d in ("mnist", "svhn")]
    models.append({"dataset": "cifar100", "arch": "mlp6", "activation": "relu", "after": BAD})
    claims = claims_of(make_tables(models), "relu")
    # NC4 zero: MNIST and SVHN reach it late (GOOD), CIFAR100 early (BAD)
    assert claims["holds"].tolist() == [True] * 5 + [False]
    assert claims["measured"].iloc[:5].str.startswith("2/3 (mnist/mlp6: ").all()
    assert claims["measured"].iloc[5].startswith("0/3 (mnist/mlp6: from layer 6, middle 3; ")
    assert claims["measured"].str.contains("cifar100/mlp6").all()


def test_many_models_list_the_failing_ones():
    models = [{"dataset": f"d{i}", "arch": "mlp6", "activation": "relu",
               "after": GOOD if i < 5 else BAD} for i in range(9)]
    measured = claims_of(make_tables(models), "relu")["measured"].iloc[0].split(" — paper: ")[0]
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
    assert alike["measured"].startswith("6/6 claims alike; NC1<init T/T/T")
    differ = make_tables([
        {"dataset": "mnist", "arch": "mlp6", "activation": "relu", "after": GOOD},
        {"dataset": "mnist", "arch": "mlp6", "activation": "tanh", "after": BAD}])
    table = pk.claims(differ)
    assert table.iloc[-1]["holds"] == False  # noqa: E712
    assert "0/5 claims alike; NC1<init T/F/-" in table.iloc[-1]["measured"]
    missing = table[table["claim"].str.startswith("LeakyReLU: ")]
    assert missing["holds"].isna().all()
    assert missing["measured"].str.startswith(
        "no selected run with activation leaky_relu — paper: ").all()
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
    fig = pk.FIGURES[name](paper_grid.only(PAPER_FIGURE_READS["parker2023"][name], name))
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


@pytest.mark.parametrize(("after", "epoch"), [("last", 20), ("first", 10)])
def test_the_red_curve_is_the_checkpoint_after_tpt_the_figure_names(after, epoch):
    tables = make_tables([{"dataset": "mnist", "arch": "mlp6", "activation": "relu",
                           "after": GOOD}])
    metrics = tables.metrics  # the last checkpoint's curves, halved, tell the two apart
    last = (metrics["epoch"] == 20) & metrics["layer_index"].notna()
    halved = metrics.assign(value=metrics["value"].mask(last, metrics["value"] / 2))
    fig = pk.paper_figure(dataclasses.replace(tables, metrics=halved), "nc1", "relu", after)
    (panel,) = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    (red,) = [line for line in lines(panel) if line.get_color() == "tab:red"]
    want = np.array(GOOD["nc1"]) / (2 if epoch == 20 else 1)
    assert np.allclose(red.get_ydata(), want)
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert f"after TPT ({after} checkpoint)" in labels


def bands(ax) -> list:
    """The ± sd bands (fill_between) of a panel."""
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def band_edges(band) -> tuple[np.ndarray, np.ndarray]:
    """The lower and the upper edge of a fill_between band, by x."""
    vertices = band.get_paths()[0].vertices
    at = [vertices[vertices[:, 0] == x, 1] for x in np.unique(vertices[:, 0])]
    return np.array([y.min() for y in at]), np.array([y.max() for y in at])


def test_each_checkpoints_curve_is_the_seed_mean_in_a_band_of_one_sd():
    shifted = {metric: [v + 0.1 for v in values] for metric, values in GOOD.items()}
    model = {"dataset": "mnist", "arch": "mlp6", "activation": "relu"}
    two = make_tables([{**model, "after": after, "seed": s}
                       for s, after in ((0, GOOD), (1, shifted))])
    (panel,) = [ax for ax in pk.FIGURES["equinorm_relu"](two).axes if ax.get_title()]
    assert len(bands(panel)) == len(EPOCHS)  # one per checkpoint (at init of zero height)
    (red,) = [b for b in bands(panel) if np.allclose(b.get_facecolor()[0][:3], to_rgb("tab:red"))]
    (line,) = [line for line in lines(panel) if line.get_color() == "tab:red"]
    mean, sd = np.array(GOOD["nc2_equinorm"]) + 0.05, np.std([0, 0.1], ddof=1)
    assert np.allclose(line.get_ydata(), mean)
    low, high = band_edges(red)
    assert np.allclose(low, mean - sd) and np.allclose(high, mean + sd)
    (panel,) = [ax for ax in pk.FIGURES["equinorm_relu"](make_tables([
        {**model, "after": GOOD}])).axes if ax.get_title()]
    assert not bands(panel) and len(lines(panel)) == len(EPOCHS)  # one seed: no sd, no band


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
