"""Ben-Shaul & Dekel (2022), "Nearest class-center simplification through intermediate layers":
Figs. 1-2, Tables 1-2 and the paper's conjectures, from the tidy tables.

The paper (§4, Defs. 5-6) follows every epoch the NCC mismatch Λ^(j) of each layer j, the share
of train (test) samples whose prediction differs from the nearest *train* class mean in layer j
(exactly our ``nc4_mismatch``, tables/epoch_metrics.csv), for ResNets on five vision datasets and
a pre-trained BERT on four GLUE tasks, trained with cross-entropy (CE, "vanilla") and with SVSL
(eq. 5: CE plus α times the distance of each sample's features in layers γ…k to its class's
batch mean). The terminal phase (TPT) starts at the interpolation threshold (IT), the first epoch
whose train accuracy reaches ``Tables.thresholds.interpolation`` (§5.3: 0.995 vision, 0.985
NLP), and ends at the end of training (EOT); a run that never reaches it has neither ("--").

A *model* is a group × dataset × architecture (seeds averaged) whose runs differ by the compared
``loss`` axis (``ce``, ``svsl``). Layers are named as the paper does: a ResNet's Layer1-4,
AvgPool, FC; a BERT's Emb, ``encoder.layer.k`` as L{k+1} (HF's ``hidden_states[k+1]``), Pooler,
FC. The conjectures judge a ResNet's layers, of a BERT's the paper's 12 (App. B: Emb, L1…L11;
:func:`paper_layers`); L12, Pooler and FC, which it never measured, are only drawn. The test
metric: accuracy, but CoLA's Matthews correlation (``test_mcc``, × 100; "--" without it).

The claims (:func:`claims`), on both splits where the paper states them for both; a difference
counts only beyond :data:`TOL` (half a percentage point):

1. Conj. 7, decreasing with depth in the TPT: a layer's TPT-mean ≤ the shallower's + TOL, each run.
2. Conj. 8, improving from IT to EOT: Λ_EOT ≤ Λ_IT + TOL in every run and layer.
3. Conj. 11, SVSL lowers it "in almost all layers" (§6.2): averaged where both runs are in the
   TPT, SVSL's < CE's − TOL in ≥ :data:`ALMOST_ALL` of the decided layers of all models. A
   layer where the two lie within TOL (deep layers near 0 for both) is a tie, not decided: it
   neither holds nor fails (counted apart; None if every layer ties).
4. Conj. 12, SVSL improves the EOT test metric: SVSL's ≥ CE's in every model.
5. Table 1, SVSL better "at almost all stages": its test metric ≥ CE's in ≥ ALMOST_ALL of the
   (model, stage) pairs, stages IT, EOT and best epoch (of the test metric).
6. Table 1, "most datasets reach their best test scores during TPT": in over half the runs.
7. §7, the CE runs' Layer1 train mismatch at EOT within :data:`REFERENCE_TOL` of the paper's
   (:data:`FIRST_LAYER`: ≈ 0.16 on MNIST, ≈ 0.6 on CIFAR10); None without those datasets.
8. §7, the first layer's mismatch tells the dataset's difficulty: MNIST's below CIFAR10's.

Each measured text gives the paper's own value and its source: Fig. 2 and §6.2's words for
the conjectures on the mismatch, the counts of the paper's Table 1 (:data:`PAPER_TABLE1`, all
nine datasets) for claims 4-6, §7's numbers for claims 7-8.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from nclayers import vocabulary
from nclayers.derived import interpolation_epoch
from nclayers.papers import Tables, claims_frame, query
from nclayers.plots import placeholder

SPLITS = ("train", "test")
LOSSES = {"ce": "CE", "svsl": "SVSL"}  # the paper's "vanilla" and SVSL
# The paper's colours: CE pink, SVSL blue (Fig. 1), and the TPT shaded in the same colours, so
# that both runs' TPT overlap purple (Fig. 2); CE solid, SVSL dashed (Fig. 2).
LOSS_COLORS = {"ce": "#e7298a", "svsl": "#1f78b4"}
LOSS_LINES = {"ce": "-", "svsl": "--"}
SHADE_ALPHA = 0.12
# The paper's names of ResNet layers (§5.2, "as implemented in TorchVision"), and of BERT's
# (nclayers.sequence's taps; encoder.layer.k is named by layer_name).
LAYER_NAMES = {"layer1": "Layer1", "layer2": "Layer2", "layer3": "Layer3", "layer4": "Layer4",
               "avgpool": "AvgPool", "classifier": "FC", "embeddings": "Emb", "pooler": "Pooler"}
BERT_LAYER = re.compile(r"encoder\.layer\.(\d+)")  # transformer layer k: HF's hidden_states[k+1]
# The test metric: accuracy, but CoLA's Matthews correlation (§5.3 and Table 1's caption, × 100
# there as here); its name in Table 1 and in Fig. 1.
MCC_DATASETS = frozenset({"cola"})
METRIC_NAMES = {"test_acc": ("acc. %", "accuracy"), "test_mcc": ("MCC × 100", "MCC")}
# Table 1 as printed (test metric, %): dataset → IT CE, IT SVSL, EOT CE, EOT SVSL, best CE, in
# TPT, best SVSL, in TPT; the vision rows, then GLUE's (CoLA: MCC × 100).
PAPER_TABLE1 = {
    "mnist": "99.37 99.36 99.61 99.69 99.65 Yes 99.69 Yes",
    "fashion_mnist": "91.78 93.13 93.82 93.88 93.93 Yes 94.03 Yes",
    "stl10": "53.41 55.95 54.11 56.65 54.19 Yes 56.94 Yes",
    "cifar10": "80.64 80.56 80.96 81.19 80.96 Yes 81.19 Yes",
    "cifar100": "52.77 53.28 53.31 54.29 53.79 Yes 54.29 Yes",
    "cola": "51.59 52.91 53.46 55.54 53.95 No 55.54 Yes",
    "rte": "58.84 58.12 55.23 59.57 61.01 No 60.28 Yes",
    "mrpc": "70.83 74.26 74.26 75.25 75.00 No 76.71 No",
    "sst2": "87.96 88.42 88.42 88.76 89.22 No 89.22 Yes",
}
TABLE1_COLUMNS = ["Model", "Source", "Metric", "IT CE", "IT SVSL", "EOT CE", "EOT SVSL",
                  "Best CE", "In TPT (CE)", "Best SVSL", "In TPT (SVSL)"]
YES_NO = {None: "--", True: "Yes", False: "No"}
# Table 2: dataset → (α, γ) as the paper prints them; γ a ResNet layer, or for BERT the layer
# number k (1..11), which we read as hidden_states[k], our encoder.layer.{k-1}, named "Lk".
PAPER_TABLE2 = {
    "mnist": (1e-5, "Layer1"), "fashion_mnist": (1e-5, "Layer1"), "stl10": (1e-5, "Layer1"),
    "cifar10": (4e-6, "AvgPool"), "cifar100": (1e-5, "Layer3"),
    "cola": (5e-6, "1"), "rte": (1e-7, "11"), "mrpc": (1e-7, "11"), "sst2": (4.132e-5, "10")}
FIRST_LAYER = {"mnist": 0.16, "cifar10": 0.6}  # §7 (i): Layer1's mismatch in Fig. 2

TOL = 0.005  # a mismatch or accuracy difference that counts (half a percentage point)
ALMOST_ALL = 0.8  # "almost all" layers, stages: at least this share
REFERENCE_TOL = 0.1  # claim 7: |ours − the paper's first-layer mismatch| at most this
LISTED = 3  # failing cases named in a claim's measured text
LEGEND_LAYERS = 8  # Fig. 2: more layers than this are keyed by a colour bar, not a legend
GRID = {"size": (11.0, 9.0), "margin": (1.0, 1.2), "sharex": "col"}  # Figs. 1-2: query.grid's
STAGE_NAMES = {"it": "IT", "eot": "EOT", "best": "best epoch"}
NO_STAGES = dict(it=math.nan, eot=math.nan, best=math.nan, best_epoch=-1, best_in_tpt=None)


# --- the models: a CE and an SVSL run (seeds averaged) per group × dataset × architecture ----

@dataclass(frozen=True, eq=False)  # identity hash: models key the claims' dicts
class Curves:
    """A model and each loss's seed-mean curves and their sd over the seeds (ddof 1: NaN with
    one seed; the figures' bands), computed once (read many times)."""

    model: query.Model
    metric: str  # the test metric of Table 1 and the claims: test_acc, or test_mcc (CoLA)
    runs: dict[str, list[str]]  # loss → run ids (its seeds)
    accuracy: dict[str, pd.DataFrame]  # loss → epoch × (train_acc, test_acc[, test_mcc])
    mismatch: dict[str, dict[str, pd.DataFrame]]  # loss → split → epoch × layer (depth order)
    interpolation: dict[str, float]  # loss → IT epoch (NaN: never reached)
    stages: dict[str, dict]  # loss → Table 1's stages of its test metric (:func:`_stages`)
    accuracy_sd: dict[str, pd.DataFrame]  # as ``accuracy``: the sd over the seeds
    mismatch_sd: dict[str, dict[str, pd.DataFrame]]  # as ``mismatch``: the sd over the seeds

    @property
    def losses(self) -> list[str]:
        return [loss for loss in LOSSES if loss in self.runs]

    @property
    def name(self) -> str:  # in a claim's measured text
        return self.model.label.replace(" / ", "/")


def _mismatch(t: Tables, runs: list[str], split: str, how: str = "mean") -> pd.DataFrame:
    """Epoch × layer (depth order, the input left out) of the runs' NCC mismatch, their
    ``how`` (mean, or std: the sd over the seeds)."""
    rows = query.layer_rows(t.epoch_metrics, runs, split)
    rows = rows[(rows["metric"] == "nc4_mismatch") & (rows["layer"] != "input")]
    if rows.empty:
        return pd.DataFrame()
    order = rows.groupby("layer")["layer_index"].min().sort_values().index
    # dropna=False: one seed's sd is NaN in every cell, and its layers are kept all the same
    return rows.pivot_table(index="epoch", columns="layer", values="value", aggfunc=how,
                            dropna=False)[list(order)]


def _stages(accuracy: pd.DataFrame, metric: str, start: float) -> dict:
    """Table 1's stages of a loss's test metric (:data:`NO_STAGES` where the log lacks it)."""
    logged = accuracy.get(metric, pd.Series(math.nan, index=accuracy.index))
    test = logged.dropna()
    if test.empty:  # e.g. CoLA from a training log without test_mcc: "--", not the accuracy
        return NO_STAGES
    best_epoch = int(test.idxmax())  # the best epoch of the metric: of the MCC for CoLA
    return {"it": float(test.get(start, math.nan)),  # NaN: no IT, or not logged then
            "eot": float(logged.iloc[-1]), "best": float(test.max()), "best_epoch": best_epoch,
            "best_in_tpt": None if math.isnan(start) else best_epoch >= start}


def loss_curves(t: Tables) -> list[Curves]:
    """The models of the selected runs with a loss (runs.csv's axis), in the tables' order: a
    group × dataset × architecture × the other compared axes' values (the design's)."""
    rows = query.runs(t)
    if "loss" not in rows:
        return []
    several = rows["group"].nunique() > 1  # the group is named where there are several
    rows = rows[rows["loss"].notna() & rows["run"].isin(set(t.training["run"]))]
    axes = [a for a in query.compared_axes(t, rows["run"]) if a != "loss" and a in rows]
    logged = [c for c in ("train_acc", "test_acc", "test_mcc") if c in t.training]

    def label(key: dict) -> str:
        extra = [str(key["group"])] if several and key["group"] != key["dataset"] else []
        extra += [f"{a}={vocabulary.shown_value(key[a])}" for a in axes if key[a] == key[a]]
        return vocabulary.model_label(query.DATASET_NAMES.get(key["dataset"], key["dataset"]),
                                      key["arch"], *extra)

    found = []
    for model in query.models(rows, ["group", "dataset", "arch", *axes], label):
        runs = {loss: list(part["run"]) for loss, part
                in rows[rows["run"].isin(model.runs)].groupby("loss", sort=False)}
        logs = {loss: t.training[t.training["run"].isin(ids)].groupby("epoch")[logged]
                for loss, ids in runs.items()}
        accuracy = {loss: log.mean() for loss, log in logs.items()}
        # The seed-mean train accuracy's IT, not each run's (query.derived): computed here.
        it = {loss: interpolation_epoch(a["train_acc"], t.thresholds.interpolation)
              for loss, a in accuracy.items()}
        metric = "test_mcc" if model.dataset in MCC_DATASETS else "test_acc"
        found.append(Curves(
            model, metric, runs, accuracy,
            {loss: {s: _mismatch(t, ids, s) for s in SPLITS} for loss, ids in runs.items()}, it,
            {loss: _stages(a, metric, it[loss]) for loss, a in accuracy.items()},
            {loss: log.std() for loss, log in logs.items()},
            {loss: {s: _mismatch(t, ids, s, "std") for s in SPLITS} for loss, ids in runs.items()}))
    return found


def layer_name(layer: str) -> str:
    """A layer as the paper names it (see the module docstring)."""
    match = BERT_LAYER.fullmatch(layer)
    return f"L{int(match[1]) + 1}" if match else LAYER_NAMES.get(layer, layer)


def paper_layers(layers: Sequence[str]) -> list[str]:
    """The layers of ``layers`` (depth order) that the paper's conjectures speak of: all of a
    ResNet's; of a BERT's, the embeddings and every encoder layer but the last."""
    encoder = {layer: int(m[1]) for layer in layers if (m := BERT_LAYER.fullmatch(layer))}
    if not encoder and "embeddings" not in layers:
        return list(layers)
    last = max(encoder.values(), default=-1)
    return [layer for layer in layers if layer == "embeddings" or encoder.get(layer, last) < last]


def judged(table: pd.DataFrame) -> pd.DataFrame:
    """An epoch × layer table restricted to :func:`paper_layers`."""
    return table[paper_layers(list(table.columns))]


# --- figures -------------------------------------------------------------------------------

def _tpt_curves(ax: Axes, m: Curves, end: float, frames: dict[str, pd.DataFrame],
                spread: dict[str, pd.DataFrame], style: Callable[[str, str], dict],
                zoom: Sequence[float] | None = None) -> None:
    """Each run's TPT shaded in its loss's colour (both: purple, as the paper's Fig. 2), the
    seed-mean curves (loss → epoch × curve) in ``style`` of (loss, curve), each in a band of
    ± its sd over the seeds (``spread``, as ``frames``), and at ``zoom`` an inset of the TPT,
    whose curves lie too close together at the panel's scale (the paper asks about them)."""
    for loss in m.losses:
        if not math.isnan(start := m.interpolation[loss]):
            ax.axvspan(start, end, color=LOSS_COLORS[loss], alpha=SHADE_ALPHA, linewidth=0)
    for loss, frame in frames.items():
        sd = spread.get(loss, pd.DataFrame())
        for column in frame.columns:
            query.mean_line(ax, frame[column], sd.get(column), **style(loss, column))
    start = min((e for e in m.interpolation.values() if not math.isnan(e)), default=math.nan)
    if zoom is None or not start < end:  # NaN: no run interpolated
        return
    inset = ax.inset_axes(zoom)
    _tpt_curves(inset, m, end, frames, spread, style)
    values = np.concatenate([np.empty(0), *(f[f.index >= start].to_numpy(dtype=float).ravel()
                                            for f in frames.values())])
    if np.isfinite(values).any():
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        pad = max(0.08 * (hi - lo), 0.002)
        inset.set_ylim(lo - pad, hi + pad)
    inset.set_xlim(start, end)
    inset.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
    inset.tick_params(labelsize=5, pad=1)
    inset.set_title("TPT", fontsize=6, pad=1)


def _loss_figure(shown: list[Curves], title: str, height: float, rows: Callable[[Curves], list],
            insets: Sequence[Sequence[float] | None], legend: Callable[[str], dict], ncol: int,
            keys: Sequence[Line2D] = (), top: float | None = None) -> tuple[Figure, np.ndarray]:
    """Figs. 1-2: a column per model, a row per quantity (``rows(m)``: name, loss → epoch × curve
    (seed means), the same of their sd, style of a (loss, curve)), zoomed on the TPT at
    ``insets[row]``; below, a legend of ``keys``, the losses (``legend``: a loss's line) and the
    TPT shades drawn (a GLUE run may have none)."""
    fig, axes = query.grid(2 * len(shown), len(shown), title, panel=(3.2, height), **GRID)
    for c, m in enumerate(shown):
        panels = rows(m)
        end = max(float(f.index.max()) for _, frames, *_ in panels for f in frames.values()
                  if not f.empty)
        for r, (what, frames, spread, style) in enumerate(panels):
            ax = axes[r, c]
            _tpt_curves(ax, m, end, frames, spread, style, insets[r])
            ax.set_xlim(0, end)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.tick_params(labelsize="x-small")
            if c == 0 or what != axes[r, 0].get_ylabel():
                ax.set_ylabel(what, fontsize="small")
            if top is not None:
                ax.set_ylim(top=top)
        axes[0, c].set_title(m.model.label, fontsize="small")
        axes[1, c].set_xlabel("epoch", fontsize="small")
    drawn = [loss for loss in LOSSES if any(loss in m.losses for m in shown)]
    reached = [loss for loss in drawn
               if any(not math.isnan(m.interpolation.get(loss, math.nan)) for m in shown)]
    handles = [*keys, *(Line2D([], [], label=LOSSES[loss], **legend(loss)) for loss in drawn)]
    handles += [Patch(color=LOSS_COLORS[loss], alpha=0.3, label=f"TPT, {LOSSES[loss]}")
                for loss in reached]
    if any(all(not math.isnan(m.interpolation.get(loss, math.nan)) for loss in LOSSES)
           for m in shown):
        handles.append(Patch(color="#8c4fa8", alpha=0.3, label="TPT, both"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(ncol, len(handles)),
               fontsize="small")
    return fig, axes


def fig1_accuracy(tables: Tables) -> Figure:
    """The paper's Fig. 1 (STL10; the others in its appendix) for every model: train and test
    accuracy against the epoch, CE pink and SVSL blue, each run's TPT shaded; CoLA's test row is
    its test MCC, Table 1's metric (its accuracy where the log has no MCC), as its label says."""
    shown = loss_curves(tables)
    if not shown:
        return placeholder("Ben-Shaul & Dekel Fig. 1 needs selected runs with a loss axis "
                           "(ce, svsl) and their training logs")
    test = {m: m.metric if all(m.metric in a and a[m.metric].notna().any()
                               for a in m.accuracy.values()) else "test_acc" for m in shown}
    mcc = sorted({query.DATASET_NAMES.get(m.model.dataset, m.model.dataset) for m in shown
                  if test[m] == "test_mcc"})
    title = ("Train and test accuracy" + (f" ({', '.join(mcc)}: test MCC)" if mcc else "")
             + ", CE against SVSL\n(Ben-Shaul & Dekel Fig. 1; TPT: train accuracy ≥ "
             f"{tables.thresholds.interpolation:g})")

    def rows(m: Curves) -> list:
        return [(what, {loss: m.accuracy[loss][[column]] for loss in m.losses},
                 {loss: m.accuracy_sd[loss][[column]] for loss in m.losses},
                 lambda loss, _: {"color": LOSS_COLORS[loss], "linestyle": "-", "linewidth": 1.3})
                for column, what in (("train_acc", "train accuracy"),
                                     (test[m], f"test {METRIC_NAMES[test[m]][1]}"))]

    # no zoom on train accuracy: it is 1 all through the TPT
    return _loss_figure(shown, title, 2.4, rows, (None, (0.42, 0.08, 0.55, 0.5)),
                   lambda loss: {"color": LOSS_COLORS[loss]}, 4, top=1.005)[0]


def _layer_colors(layers: Sequence[str]) -> dict[str, object]:
    n = max(len(layers) - 1, 1)
    return {layer: colormaps["viridis"](0.92 * i / n) for i, layer in enumerate(layers)}


def fig2_ncc_mismatch(tables: Tables) -> Figure:
    """The paper's Fig. 2: train (top) and test (bottom) NCC mismatch of every layer against the
    epoch, a colour per layer (viridis over depth; beyond :data:`LEGEND_LAYERS` layers, a BERT's
    15, keyed by a colour bar, not the legend), CE solid and SVSL dashed, each TPT shaded."""
    shown = [m for m in loss_curves(tables)
             if any(not m.mismatch[loss]["train"].empty for loss in m.losses)]
    if not shown:
        return placeholder("Ben-Shaul & Dekel Fig. 2 needs selected runs with a loss axis and "
                           "train.epoch_metrics (nc4_mismatch every epoch)")
    layers = {m: list(dict.fromkeys(column for loss in m.losses for s in SPLITS
                                    for column in m.mismatch[loss][s].columns)) for m in shown}

    def rows(m: Curves) -> list:
        colors = _layer_colors(layers[m])
        return [(f"{split} NCC mismatch", {loss: m.mismatch[loss][split] for loss in m.losses},
                 {loss: m.mismatch_sd[loss][split] for loss in m.losses},
                 lambda loss, layer: {"color": colors[layer], "linestyle": LOSS_LINES[loss],
                                      "linewidth": 1.1}) for split in SPLITS]

    every = list(dict.fromkeys(layer for m in shown for layer in layers[m]))
    colors = _layer_colors(every)
    many = len(every) > LEGEND_LAYERS  # a BERT's 15: keyed by a colour bar, not the legend
    fig, axes = _loss_figure(shown, "NCC mismatch per layer, CE (solid) against SVSL (dashed) "
                        "(Ben-Shaul & Dekel Fig. 2)", 2.6, rows, [(0.42, 0.38, 0.55, 0.5)] * 2,
                        lambda loss: {"color": "0.3", "linestyle": LOSS_LINES[loss]}, 6,
                        [] if many else [Line2D([], [], color=colors[layer],
                                               label=layer_name(layer)) for layer in every])
    if many:  # discrete, right of the panels, a tick per layer, the shallowest on top
        n = len(every)
        mappable = ScalarMappable(norm=BoundaryNorm(np.arange(n + 1), n),
                                  cmap=ListedColormap([colors[layer] for layer in every]))
        bar = fig.colorbar(mappable, ax=axes.ravel().tolist(), location="right", aspect=40,
                           fraction=0.04, pad=0.01)
        bar.set_ticks(np.arange(n) + 0.5, labels=[layer_name(layer) for layer in every])
        bar.ax.tick_params(labelsize="x-small", length=0)
        bar.ax.invert_yaxis()
        bar.set_label("layer (depth)", fontsize="small")
    return fig


FIGURES: dict[str, Callable[[Tables], Figure]] = {"fig1_accuracy": fig1_accuracy,
                                                   "fig2_ncc_mismatch": fig2_ncc_mismatch}


# --- Tables 1-2 ------------------------------------------------------------------------------

def _cell(value: float, spec: str) -> str:
    """A number of Tables 1-2 as the paper prints it ("--": none): a string, since the
    report's generic table would round a number to three significant digits."""
    return "--" if value != value else format(value, spec)


def table1_accuracy(tables: Tables) -> pd.DataFrame:
    """Table 1: each model's test metric (accuracy in %, CoLA's MCC × 100, as the "Metric"
    column says) with CE and with SVSL at the IT, the EOT and the best epoch, and whether that
    epoch lies in the TPT; the paper's row below ours where the dataset is one of its nine."""
    rows = []
    for m in loss_curves(tables):
        ce, svsl = (m.stages.get(loss, NO_STAGES) for loss in ("ce", "svsl"))
        pct = [_cell(100 * s[stage], ".2f") for stage in ("it", "eot", "best") for s in (ce, svsl)]
        rows.append([m.model.label, "ours", METRIC_NAMES[m.metric][0], *pct[:5],
                     YES_NO[ce["best_in_tpt"]], pct[5], YES_NO[svsl["best_in_tpt"]]])
        if m.model.dataset in PAPER_TABLE1:
            rows.append([query.DATASET_NAMES[m.model.dataset], "paper", METRIC_NAMES[m.metric][0],
                         *PAPER_TABLE1[m.model.dataset].split()])
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)


def table2_svsl(tables: Tables) -> pd.DataFrame:
    """Table 2: each model's SVSL weight α and first layer γ (its SVSL runs' recipe), the
    paper's beside them; a BERT's γ ours by name (``encoder.layer.0`` → "L1") and the paper's
    by number (1), the same layer, HF's ``hidden_states[1]``."""
    rows = []
    for m in [m for m in loss_curves(tables) if "svsl" in m.runs]:
        alpha, gamma = (query.recipe(tables, f"train.svsl_{f}").get(m.runs["svsl"][0])
                        for f in ("alpha", "gamma"))
        paper_alpha, paper_gamma = PAPER_TABLE2.get(m.model.dataset, (math.nan, "--"))
        rows.append([m.model.label, _cell(math.nan if alpha is None else float(alpha), ".6g"),
                     "--" if gamma is None else layer_name(str(vocabulary.shown_value(gamma))),
                     _cell(paper_alpha, ".6g"), paper_gamma])
    return pd.DataFrame(rows, columns=["Model", "alpha", "gamma", "paper alpha", "paper gamma"])


# --- claims: their criteria, then the claims -------------------------------------------------

def depth_violations(curve: pd.Series, tol: float = TOL) -> list[tuple[str, str, float]]:
    """(layer, next layer, increase) wherever the deeper layer's value exceeds by > ``tol``."""
    values = curve.to_numpy(dtype=float)
    return [(curve.index[i], curve.index[i + 1], float(values[i + 1] - values[i]))
            for i in range(len(values) - 1) if values[i + 1] > values[i] + tol]


def tpt_mean(table: pd.DataFrame, start: float) -> pd.Series:
    """Each layer's mean over the epochs from the IT ``start`` on (empty: none, e.g. NaN)."""
    part = table[table.index >= start]
    return part.mean() if not part.empty else pd.Series(dtype=float)


def it_vs_eot(table: pd.DataFrame, start: float) -> pd.Series:
    """Each layer's Λ_EOT − Λ_IT, Λ_IT at the first epoch measured from the IT on (empty: no IT)."""
    measured = table[table.index >= start]
    return pd.Series(dtype=float) if measured.empty else table.iloc[-1] - measured.iloc[0]


def svsl_minus_ce(m: Curves, split: str) -> pd.Series:
    """Each paper layer's SVSL − CE mismatch, averaged over the epochs where both runs are in
    the TPT (empty: a run is missing, or the TPTs never meet)."""
    if not {"ce", "svsl"} <= set(m.runs):
        return pd.Series(dtype=float)
    start = max(m.interpolation["ce"], m.interpolation["svsl"])
    ce, svsl = (tpt_mean(judged(m.mismatch[loss][split]), start) for loss in ("ce", "svsl"))
    return pd.Series(dtype=float) if ce.empty or svsl.empty else (svsl - ce).dropna()


def svsl_decided(gaps: pd.Series, tol: float = TOL) -> tuple[int, int]:
    """(layers where SVSL's mismatch is below CE's by more than ``tol``, decided layers: those
    where the two differ by more than ``tol``); the others are ties, neither lower nor higher."""
    decided = gaps[gaps.abs() > tol]
    return int((decided < 0).sum()), len(decided)


def paper_table1_counts() -> dict[str, tuple[int, int]]:
    """Claims 4-6 counted on the paper's Table 1 (its nine datasets), as (holding, cases): SVSL ≥
    CE at the EOT ("eot"), at the IT, EOT and best epoch ("stages"); best epochs in the TPT."""
    cells = [row.split() for row in PAPER_TABLE1.values()]
    stages = {stage: [float(c[svsl]) >= float(c[ce]) for c in cells]
              for stage, (ce, svsl) in {"it": (0, 1), "eot": (2, 3), "best": (4, 6)}.items()}
    every = [flag for flags in stages.values() for flag in flags]
    in_tpt = [c[i] == "Yes" for c in cells for i in (5, 7)]
    return {"eot": (sum(stages["eot"]), len(cells)), "stages": (sum(every), len(every)),
            "tpt": (sum(in_tpt), len(in_tpt))}


def _listed(items: list[str], lead: str) -> str:
    """``lead`` and the first :data:`LISTED` of ``items``; "" without any."""
    return (lead + "; ".join(items[:LISTED]) + (" …" if len(items) > LISTED else "")
            if items else "")


def _runs_of(found: list[Curves]) -> list[tuple[Curves, str, str]]:
    """(model, loss, the run's name in a claim's measured text) of every run."""
    return [(m, loss, f"{m.name} {LOSSES[loss]}") for m in found for loss in m.losses]


def _no_tpt(found: list[Curves]) -> str:
    return _listed([name for m, loss, name in _runs_of(found)
                    if math.isnan(m.interpolation[loss])], "; left out, no TPT: ")


def _layers_note(found: list[Curves]) -> str:
    """Which layers a mismatch claim reads where they are not all drawn (a BERT's)."""
    cut = {}
    for m, loss, _ in _runs_of(found):
        layers = list(m.mismatch[loss]["train"].columns)
        if (kept := paper_layers(layers)) != layers and kept:
            cut.setdefault(m.model.arch, (kept[0], kept[-1]))
    return "".join(f"; {arch}: {layer_name(a)}…{layer_name(b)} (App. B)"
                   for arch, (a, b) in cut.items())


def _per_run(found: list[Curves], split: str, criterion: Callable) -> list[tuple[str, pd.Series]]:
    """(run, ``criterion`` of its judged mismatch on ``split`` and its IT) where it tells."""
    return [(name, v) for m, loss, name in _runs_of(found) if not (
        v := criterion(judged(m.mismatch[loss][split]), m.interpolation[loss])).empty]


def mismatch_claims(found: list[Curves], split: str) -> list[dict]:
    """Conjectures 7, 8 and 11 on ``split``, read on the paper's layers."""
    note, no_tpt = _layers_note(found), _no_tpt(found)
    ordered = _per_run(found, split, tpt_mean)  # Conjecture 7: each run's TPT-mean by depth
    rises = [f"{name} {layer_name(a)}→{layer_name(b)} +{up:.3f}"
             for name, curve in ordered for a, b, up in depth_violations(curve)]
    ends = (f" (mean first layer {np.mean([c.iloc[0] for _, c in ordered]):.3f}, last "
            f"{np.mean([c.iloc[-1] for _, c in ordered]):.3f})" if ordered else "")
    changes = _per_run(found, split, it_vs_eot)  # Conjecture 8: each layer's Λ_EOT − Λ_IT
    worse = [f"{name} {layer_name(layer)} +{up:.3f}"
             for name, change in changes for layer, up in change.items() if up > TOL]
    mean = f" (mean change {np.mean([d.mean() for _, d in changes]):+.3f})" if changes else ""
    gaps = {m: d for m in found if not (d := svsl_minus_ce(m, split)).empty}  # Conjecture 11
    counts = [svsl_decided(d) for d in gaps.values()]
    lower, decided = sum(c[0] for c in counts), sum(c[1] for c in counts)
    ties = sum(len(d) for d in gaps.values()) - decided
    paper = "; paper: shown in Fig. 2 (MNIST, Fashion-MNIST, CIFAR10), no number given"
    return [
        query.claim(f"{split.capitalize()} NCC mismatch decreases with depth in the TPT, "
                    f"Λ(j) ≥ Λ(j+1) (TPT-mean; rise > 0.005 fails{note})", "Conj. 7; Fig. 2",
                    f"{sum(not depth_violations(c) for _, c in ordered)}/{len(ordered)} runs "
                    f"ordered{ends}" + _listed(rises, "; rises: ") + no_tpt + paper,
                    None if not ordered else not rises),
        query.claim(f"{split.capitalize()} NCC mismatch at the IT ≥ at the EOT in every layer"
                    + (f" ({note[2:]})" if note else ""), "Conj. 8; Fig. 2",
                    f"{sum(int((d <= TOL).sum()) for _, d in changes)}/"
                    f"{sum(len(d) for _, d in changes)} layers{mean}"
                    + _listed(worse, "; worse at EOT: ") + no_tpt + paper,
                    None if not changes else not worse),
        query.claim(f"SVSL's {split} NCC mismatch < CE's in almost all layers (TPT-mean; lower "
                    f"by > {TOL:g} in ≥ {ALMOST_ALL:.0%} of the layers where they differ by more"
                    f"{note})", "Conj. 11; §6.2; Fig. 2",
                    f"{lower}/{decided} decided layers lower"
                    + (f" ({lower / decided:.0%})" if decided else "")
                    + f"; {ties} ties (|SVSL−CE| ≤ {TOL:g}) not counted"
                    + "".join(f"; {m.name}: mean SVSL−CE {d.mean():+.3f}"
                              for m, d in list(gaps.items())[:LISTED])
                    + _listed([m.model.label for m in found if m not in gaps],
                              "; left out (no CE and SVSL TPT): ")
                    + "; paper: lower \"for all datasets, and almost all layers\" (§6.2, Fig. 2)",
                    None if not decided else lower / decided >= ALMOST_ALL)]


def performance_claims(found: list[Curves]) -> list[dict]:
    """Claims 4-6 on the test metric (accuracy; CoLA's MCC): SVSL − CE at the EOT and at every
    stage, where both runs logged it; each run's best epoch against its IT."""
    named = sorted({query.DATASET_NAMES.get(m.model.dataset, m.model.dataset) for m in found
                    if m.metric == "test_mcc"})
    note = f"; {', '.join(named)}: MCC" if named else ""  # what is compared, if not accuracy
    both = [m for m in found if {"ce", "svsl"} <= set(m.runs)]
    no_metric = _listed([m.name for m in both if any(math.isnan(m.stages[loss]["eot"])
                                                     for loss in ("ce", "svsl"))],
                        "; left out, no test MCC logged: ")
    gaps = {(m, stage): gap for m in both for stage in STAGE_NAMES if not math.isnan(
        gap := m.stages["svsl"][stage] - m.stages["ce"][stage])}

    def difference(m: Curves, gap: float) -> str:  # as Table 1 prints it: pp, MCC × 100
        return f"{100 * gap:+.2f}" + (" pp" if m.metric == "test_acc" else " MCC×100")

    eot = {m: gap for (m, stage), gap in gaps.items() if stage == "eot"}
    better = sum(g >= 0 for g in eot.values())
    below = [f"{m.name} {STAGE_NAMES[stage]} {difference(m, g)}" for (m, stage), g in gaps.items()
             if g < 0]
    told = [(m, loss, name, s) for m, loss, name in _runs_of(found)
            if (s := m.stages[loss])["best_in_tpt"] is not None]
    outside = [f"{name} best epoch {s['best_epoch']} < IT {int(m.interpolation[loss])}"
               for m, loss, name, s in told if not s["best_in_tpt"]]
    paper = {key: f"; paper (Table 1, its 9 datasets): {a}/{n}"
             for key, (a, n) in paper_table1_counts().items()}
    return [
        query.claim(f"SVSL's EOT test accuracy ≥ CE's for every dataset (SVSL − CE{note})",
                    "Conj. 12; Table 1", f"{better}/{len(eot)} models" + _listed(
                        [f"{m.name} {difference(m, g)}" for m, g in eot.items()], ": ")
                    + no_metric + paper["eot"] + " datasets",
                    None if not eot else better == len(eot)),
        query.claim("SVSL's test accuracy ≥ CE's at almost all stages: IT, EOT, best epoch "
                    f"(≥ {ALMOST_ALL:.0%} of pairs{note})", "§6.2; Table 1",
                    f"{len(gaps) - len(below)}/{len(gaps)} (model, stage) pairs"
                    + _listed(below, "; SVSL below: ") + no_metric + paper["stages"] + " pairs",
                    None if not gaps else (len(gaps) - len(below)) / len(gaps) >= ALMOST_ALL),
        query.claim("Most runs reach their best test accuracy in the TPT"
                    + (f" ({note[2:]})" if note else ""), "§6.2; Table 1",
                    f"{len(told) - len(outside)}/{len(told)} runs"
                    + _listed(outside, "; before TPT: ") + _no_tpt(found) + no_metric
                    + paper["tpt"] + " runs",
                    query.majority([bool(s["best_in_tpt"]) for *_, s in told]))]


def first_layer_claims(found: list[Curves]) -> list[dict]:
    """Claims 7-8 on the CE runs' Layer1 mismatch at EOT (train)."""
    def eot(m: Curves, split: str) -> float:  # NaN without a CE run
        table = m.mismatch.get("ce", {}).get(split, pd.DataFrame())
        return float(table.iloc[-1, 0]) if not table.empty else math.nan

    told = [(m, train) for m in found
            if m.model.dataset in FIRST_LAYER and not math.isnan(train := eot(m, "train"))]
    parts = [f"{m.name}: {train:.2f} train, {eot(m, 'test'):.2f} test "
             f"(paper ≈ {FIRST_LAYER[m.model.dataset]:g})" for m, train in told]
    first = {m.model.dataset: train for m, train in reversed(told)}  # each dataset's first model
    text = "First-layer mismatch lower on the easier dataset: MNIST < CIFAR10"
    return [query.claim(f"First-layer mismatch as the paper's: ≈ 0.16 on MNIST, ≈ 0.6 on "
                        f"CIFAR10 (CE, train, EOT; within {REFERENCE_TOL:g})", "§7 (i); Fig. 2",
                        "; ".join(parts) if parts else "no MNIST or CIFAR10 model with CE",
                        query.all_told([abs(train - FIRST_LAYER[m.model.dataset])
                                        <= REFERENCE_TOL for m, train in told])),
            query.claim(text, "§7 (i)", "needs an MNIST and a CIFAR10 model with CE", None)
            if len(first) < 2 else
            query.claim(text, "§7 (i)", f"MNIST {first['mnist']:.2f}, CIFAR10 "
                        f"{first['cifar10']:.2f}; paper: ≈ {FIRST_LAYER['mnist']:g} < "
                        f"≈ {FIRST_LAYER['cifar10']:g} (Fig. 2)",
                        first["mnist"] < first["cifar10"])]


def claims(tables: Tables) -> pd.DataFrame:
    """The paper's conjectures checked against the measured numbers (the module docstring)."""
    found = loss_curves(tables)
    if not found:
        return claims_frame([query.claim("CE against SVSL", "§4-§6", "no selected run with a "
                                         "loss axis in the training logs", None)])
    by_split = [mismatch_claims(found, split) for split in SPLITS]
    return claims_frame([*(claim for both in zip(*by_split, strict=True) for claim in both),
                         *performance_claims(found), *first_layer_claims(found)])


TABLES: dict[str, Callable[[Tables], pd.DataFrame]] = {
    "table1_accuracy": table1_accuracy, "table2_svsl": table2_svsl, "claims": claims}
