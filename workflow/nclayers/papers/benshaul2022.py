"""Ben-Shaul & Dekel (2022), "Nearest class-center simplification through intermediate layers":
Figs. 1-2, Tables 1-2 and the paper's conjectures, from the tidy tables.

What the paper measures (§4, Defs. 5-6): the NCC mismatch Λ^(j) of every layer j, the share of
train (test) samples where the network's prediction differs from the nearest *train* class mean
in layer j, every epoch of training, for ResNets on five vision datasets and a pre-trained BERT
on four GLUE tasks (CoLA, SST-2, MRPC, RTE), trained with cross-entropy (CE, "vanilla") and
with its Stochastic Variability-Simplification Loss (SVSL, eq. 5: CE plus α times the distance of
each sample's features in layers γ…k to its class's batch mean). That is the project's
``nc4_mismatch`` in ``tables/epoch_metrics.csv`` exactly (class means from the train split, also
on the test split). The terminal phase of training (TPT) starts at the interpolation threshold
(IT), the first epoch whose train accuracy reaches ``Tables.thresholds.interpolation`` (§5.3:
0.995 for vision; 0.985 for NLP, the GLUE preset's); the end of training (EOT) is the last
epoch. A run that never reaches it (a GLUE run of 10 epochs may not) has no IT and no TPT: its
Table 1 cells "IT" and "In TPT" are "--".

Here a *model* is one group × dataset × architecture (seeds averaged) whose runs differ by the
compared ``loss`` axis (``ce``, ``svsl``). The figures show the tapped layers but the input, in
depth order: a ResNet's Layer1-4, AvgPool, FC (``taps: stages``); a BERT's ``embeddings``
("Emb"), ``encoder.layer.k`` ("L{k+1}", so that Lk is HF's ``hidden_states[k]``, the paper's
γ = k), ``pooler``, ``classifier`` ("FC").

The test metric (:data:`MCC_DATASETS`): test accuracy, but for CoLA the Matthews correlation
(training.csv's ``test_mcc``), as the paper reports it (Table 1's caption, × 100); without that
column CoLA's values are "--", never the accuracy. Table 1's best epoch is the best epoch of that
metric; the claims on test performance (4-6 below) compare that metric.

The layers of the conjectures (:func:`paper_layers`): all of a ResNet's (as the paper's Fig. 2);
of a BERT's, the paper's 12 (App. B: "the embedding-layer (1) and (11) hidden-state layers", all
hidden states but the final output), i.e. Emb, L1…L11 of bert-base. Our choice: the last encoder
layer (L12), the pooler and the classifier are drawn but not judged, since the paper never
measured them.

The claims (:func:`claims`), read on both splits where the paper states them for both; a
difference counts only beyond :data:`TOL` (half a percentage point):

1. Conjecture 7, the mismatch decreases with depth in the TPT: in every run, the mismatch
   averaged over the run's TPT epochs is, layer after layer, at most the shallower layer's
   plus TOL.
2. Conjecture 8, the mismatch improves from IT to EOT: Λ_EOT ≤ Λ_IT + TOL in every run and layer.
3. Conjecture 11, SVSL lowers the mismatch "in almost all layers" (§6.2): averaged over the
   epochs where both runs of a model are in the TPT, SVSL's mismatch ≤ CE's + TOL in at least
   :data:`ALMOST_ALL` of the layers of all models.
4. Conjecture 12, SVSL improves the EOT test metric for all datasets: SVSL's ≥ CE's in every
   model.
5. Table 1, SVSL outperforms CE "at almost all stages": SVSL's test metric ≥ CE's in at
   least :data:`ALMOST_ALL` of the (model, stage) pairs, stages IT, EOT and best epoch.
6. Table 1, "most datasets reach their best test scores during TPT": the best test epoch lies
   in the TPT in more than half of the runs.
7. §7, the first layer's mismatch as the paper's full-scale reference (:data:`FIRST_LAYER`:
   ≈ 0.16 on MNIST, ≈ 0.6 on CIFAR10): the CE run's Layer1 train mismatch at EOT within
   :data:`REFERENCE_TOL` of it; None without an MNIST or CIFAR10 model.
8. §7, the first layer's mismatch tells the dataset's difficulty: MNIST's below CIFAR10's.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

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

METRIC = "nc4_mismatch"
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
               "avgpool": "AvgPool", "classifier": "FC", "embeddings": "Emb",
               "pooler": "Pooler"}
BERT_LAYER = re.compile(r"encoder\.layer\.(\d+)")  # transformer layer k: HF's hidden_states[k+1]
DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion MNIST", "stl10": "STL10",
                 "cifar10": "CIFAR10", "cifar100": "CIFAR100", "cola": "CoLA",
                 "sst2": "SST-2", "mrpc": "MRPC", "rte": "RTE"}
# The test metric of each dataset: accuracy, but the Matthews correlation for CoLA (§5.3 and
# Table 1's caption, × 100 there as here); its name in Table 1 and in Fig. 1.
MCC_DATASETS = frozenset({"cola"})
METRIC_NAMES = {"test_acc": "acc. %", "test_mcc": "MCC × 100"}
FIG1_METRICS = {"test_acc": "accuracy", "test_mcc": "MCC"}
# Table 1 (test metric, %): dataset → (IT CE, IT SVSL, EOT CE, EOT SVSL, best CE, in TPT,
# best SVSL, in TPT); the vision rows, then GLUE's (CoLA: MCC × 100).
PAPER_TABLE1 = {
    "mnist": (99.37, 99.36, 99.61, 99.69, 99.65, "Yes", 99.69, "Yes"),
    "fashion_mnist": (91.78, 93.13, 93.82, 93.88, 93.93, "Yes", 94.03, "Yes"),
    "stl10": (53.41, 55.95, 54.11, 56.65, 54.19, "Yes", 56.94, "Yes"),
    "cifar10": (80.64, 80.56, 80.96, 81.19, 80.96, "Yes", 81.19, "Yes"),
    "cifar100": (52.77, 53.28, 53.31, 54.29, 53.79, "Yes", 54.29, "Yes"),
    "cola": (51.59, 52.91, 53.46, 55.54, 53.95, "No", 55.54, "Yes"),
    "rte": (58.84, 58.12, 55.23, 59.57, 61.01, "No", 60.28, "Yes"),
    "mrpc": (70.83, 74.26, 74.26, 75.25, 75.00, "No", 76.71, "No"),
    "sst2": (87.96, 88.42, 88.42, 88.76, 89.22, "No", 89.22, "Yes"),
}
TABLE1_COLUMNS = ["Model", "Source", "Metric", "IT CE", "IT SVSL", "EOT CE", "EOT SVSL",
                  "Best CE", "In TPT (CE)", "Best SVSL", "In TPT (SVSL)"]
YES_NO = {None: "--", True: "Yes", False: "No"}
# Table 2: dataset → (α, γ); γ a ResNet layer, or for BERT the paper's layer number k (1..11),
# which we read as hidden_states[k], our encoder.layer.{k-1}, named "Lk".
PAPER_TABLE2: dict[str, tuple[float, str | int]] = {
    "mnist": (1e-5, "layer1"), "fashion_mnist": (1e-5, "layer1"), "stl10": (1e-5, "layer1"),
    "cifar10": (4e-6, "avgpool"), "cifar100": (1e-5, "layer3"),
    "cola": (5e-6, 1), "rte": (1e-7, 11), "mrpc": (1e-7, 11), "sst2": (4.132e-5, 10)}
FIRST_LAYER = {"mnist": 0.16, "cifar10": 0.6}  # §7 (i): Layer1's mismatch in Fig. 2

TOL = 0.005  # a mismatch or accuracy difference that counts (half a percentage point)
ALMOST_ALL = 0.8  # "almost all" layers, stages: at least this share
REFERENCE_TOL = 0.1  # claim 7: |ours − the paper's first-layer mismatch| at most this
LISTED = 3  # failing cases named in a claim's measured text
LEGEND_LAYERS = 8  # Fig. 2: more layers than this are keyed by a colour bar, not a legend
GRID = {"size": (11.0, 9.0), "margin": (1.0, 1.2), "sharex": "col"}  # Figs. 1-2: query.grid's
STAGE_NAMES = {"it": "IT", "eot": "EOT", "best": "best epoch"}


# --- the models: a CE and an SVSL run (seeds averaged) per group × dataset × architecture ----

@dataclass(frozen=True, eq=False)  # identity hash: models key the claims' dicts
class Curves:
    """A model (query.Model: its runs of every loss) and each loss's seed-mean curves, computed
    once: every figure, table and claim reads them, several times."""

    model: query.Model
    runs: dict[str, list[str]]  # loss → run ids (its seeds)
    accuracy: dict[str, pd.DataFrame]  # loss → epoch × (train_acc, test_acc[, test_mcc])
    mismatch: dict[str, dict[str, pd.DataFrame]]  # loss → split → epoch × layer (depth order)
    interpolation: dict[str, float]  # loss → IT epoch (NaN: never reached)

    @property
    def losses(self) -> list[str]:
        return [loss for loss in LOSSES if loss in self.runs]

    @property
    def metric(self) -> str:
        """The test metric of Table 1 and the claims: test_acc, or test_mcc (CoLA)."""
        return "test_mcc" if self.model.dataset in MCC_DATASETS else "test_acc"

    @property
    def name(self) -> str:  # in a claim's measured text
        return self.model.label.replace(" / ", "/")


def _mismatch(t: Tables, runs: list[str], split: str) -> pd.DataFrame:
    """Epoch × layer (depth order, the input left out) of the runs' mean NCC mismatch."""
    rows = query.layer_rows(t.epoch_metrics, runs, split)
    if not rows.empty:
        rows = rows[(rows["metric"] == METRIC) & (rows["layer"] != "input")]
    if rows.empty:
        return pd.DataFrame()
    order = rows.groupby("layer")["layer_index"].min().sort_values().index
    table = rows.pivot_table(index="epoch", columns="layer", values="value", aggfunc="mean")
    return table[list(order)].sort_index()


def loss_curves(t: Tables) -> list[Curves]:
    """The models of the selected runs with a loss (runs.csv's axis) and a training log, in the
    tables' order: one per group × dataset × architecture × the other compared axes' values
    (the design's); empty without a loss axis."""
    rows = query.runs(t)
    if "loss" not in rows or "run" not in t.training:
        return []
    several = rows["group"].nunique() > 1  # the group is named where there are several
    rows = rows[rows["loss"].notna() & rows["run"].isin(set(t.training["run"]))]
    axes = [a for a in query.compared_axes(t, rows["run"]) if a != "loss" and a in rows]
    logged = [c for c in ("train_acc", "test_acc", "test_mcc") if c in t.training]

    def label(key: dict) -> str:
        extra = [str(key["group"])] if several and key["group"] != key["dataset"] else []
        extra += [f"{a}={vocabulary.shown_value(key[a])}" for a in axes if key[a] == key[a]]
        return vocabulary.model_label(DATASET_NAMES.get(key["dataset"], key["dataset"]),
                                      key["arch"], *extra)

    found = []
    for model in query.models(rows, ["group", "dataset", "arch", *axes], label):
        mine = rows[rows["run"].isin(model.runs)]
        runs = {loss: list(part["run"]) for loss, part in mine.groupby("loss", sort=False)}
        accuracy = {loss: t.training[t.training["run"].isin(ids)].groupby("epoch")[logged].mean()
                    .sort_index() for loss, ids in runs.items()}
        # The IT of the seed-mean train accuracy, not each run's: computed here with
        # derived.interpolation_epoch, not read per run (query.derived).
        it = {loss: interpolation_epoch(a["train_acc"], t.thresholds.interpolation)
              for loss, a in accuracy.items()}
        found.append(Curves(model, runs, accuracy, {
            loss: {s: _mismatch(t, ids, s) for s in SPLITS} for loss, ids in runs.items()}, it))
    return found


def in_tpt(curve: pd.DataFrame | pd.Series, start: float) -> pd.DataFrame | pd.Series:
    """The rows of an epoch-indexed curve from the interpolation epoch ``start`` on (none if
    NaN: the run never interpolated)."""
    return curve.iloc[0:0] if math.isnan(start) else curve[curve.index >= start]


def layer_name(layer: str) -> str:
    """A layer as the paper names it: Layer1 … FC for a ResNet; Emb, L1 … L12, Pooler, FC for
    a BERT (``encoder.layer.k`` is L{k+1}: HF's ``hidden_states[k+1]``, the paper's γ = k+1)."""
    match = BERT_LAYER.fullmatch(layer)
    return f"L{int(match[1]) + 1}" if match else LAYER_NAMES.get(layer, layer)


def paper_layers(layers: Sequence[str]) -> list[str]:
    """The layers of ``layers`` (depth order) that the paper's conjectures speak of: all of a
    ResNet's; of a BERT's, the embeddings and every encoder layer but the last (see the module
    docstring)."""
    encoder = [int(m[1]) for m in map(BERT_LAYER.fullmatch, layers) if m]
    if not encoder and "embeddings" not in layers:
        return list(layers)
    last = max(encoder, default=-1)
    return [layer for layer in layers if layer == "embeddings"
            or ((m := BERT_LAYER.fullmatch(layer)) is not None and int(m[1]) < last)]


def judged(table: pd.DataFrame) -> pd.DataFrame:
    """An epoch × layer table restricted to :func:`paper_layers`."""
    return table[paper_layers(list(table.columns))] if not table.empty else table


# --- figures -------------------------------------------------------------------------------

def _shade_tpt(ax: Axes, m: Curves, end: float) -> None:
    """Each run's TPT shaded in its loss's colour (both: purple, as the paper's Fig. 2)."""
    for loss in m.losses:
        if not math.isnan(start := m.interpolation[loss]):
            ax.axvspan(start, end, color=LOSS_COLORS[loss], alpha=SHADE_ALPHA, linewidth=0)


def _legend(fig: Figure, shown: list[Curves], style: Callable[[str], dict], ncol: int,
            first: Sequence[Line2D] = ()) -> None:
    """The legend below the panels: ``first``, the losses (``style``: a loss's line) and the
    TPT shades, only those drawn (a GLUE run of 10 epochs may have no TPT)."""
    losses = {loss for m in shown for loss in m.losses}
    reached = {loss for m in shown for loss in m.losses if not math.isnan(m.interpolation[loss])}
    handles = [*first, *(Line2D([], [], label=LOSSES[loss], **style(loss)) for loss in LOSSES
                         if loss in losses)]
    handles += [Patch(color=LOSS_COLORS[loss], alpha=0.3, label=f"TPT, {LOSSES[loss]}")
                for loss in LOSSES if loss in reached]
    if any(all(not math.isnan(m.interpolation.get(loss, math.nan)) for loss in LOSSES)
           for m in shown):
        handles.append(Patch(color="#8c4fa8", alpha=0.3, label="TPT, both"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(ncol, len(handles)),
               fontsize="small")


def _zoom_on_tpt(ax: Axes, m: Curves, end: float, draw: Callable[[Axes], None],
                 where: Sequence[float]) -> None:
    """An inset of the panel from the first interpolation epoch on, where the curves of the
    TPT lie too close together at the panel's scale (the paper's question is about them)."""
    starts = [e for e in m.interpolation.values() if not math.isnan(e)]
    if not starts or min(starts) >= end:
        return
    start = min(starts)
    inset = ax.inset_axes(where)
    _shade_tpt(inset, m, end)
    draw(inset)
    values = np.concatenate([np.empty(0), *(
        np.asarray(line.get_ydata(), dtype=float)[np.asarray(line.get_xdata()) >= start]
        for line in inset.get_lines())])
    if np.isfinite(values).any():
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        pad = max(0.08 * (hi - lo), 0.002)
        inset.set_ylim(lo - pad, hi + pad)
    inset.set_xlim(start, end)
    inset.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
    inset.tick_params(labelsize=5, pad=1)
    inset.set_title("TPT", fontsize=6, pad=1)


def _draw_curves(ax: Axes, frames: dict[str, pd.DataFrame],
                 color: Callable[[str, str], object], width: float, dashed: bool = False) -> None:
    """Each loss's curves (loss → epoch × curve), coloured by loss and curve; SVSL's dashed
    where ``dashed``."""
    for loss, frame in frames.items():
        for column in frame.columns:
            ax.plot(frame.index, frame[column].to_numpy(), color=color(loss, column),
                    linestyle=LOSS_LINES[loss] if dashed else "-", linewidth=width)


def _panel(ax: Axes, m: Curves, end: float, draw: Callable[[Axes], None], row: int, col: int,
           ylabel: str, inset: Sequence[float] | None) -> None:
    """A panel of a two-row grid: the TPT shaded, the curves drawn (:func:`_draw_curves`), a
    zoom on the TPT at ``inset``; the model above the top row, the epoch below the bottom one,
    the quantity left of the first column."""
    _shade_tpt(ax, m, end)
    draw(ax)
    ax.set_xlim(0, end)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if inset:
        _zoom_on_tpt(ax, m, end, draw, inset)
    ax.tick_params(labelsize="x-small")
    if row == 0:
        ax.set_title(m.model.label, fontsize="small")
    else:
        ax.set_xlabel("epoch", fontsize="small")
    if col == 0:
        ax.set_ylabel(ylabel, fontsize="small")


def _test_column(m: Curves) -> str:
    """Fig. 1's test row: the model's test metric where every run logged it, else accuracy."""
    logged = all(m.metric in a and a[m.metric].notna().any() for a in m.accuracy.values())
    return m.metric if logged else "test_acc"


def fig1_accuracy(tables: Tables) -> Figure:
    """The paper's Fig. 1 (STL10; the other datasets in its appendix) for every model: train
    and test accuracy against the epoch, CE pink and SVSL blue, each run's TPT shaded. A
    CoLA model's test row is its test MCC, the metric of Table 1 (its accuracy where the log
    has no MCC), said in the panel's label."""
    shown = loss_curves(tables)
    if not shown:
        return placeholder("Ben-Shaul & Dekel Fig. 1 needs selected runs with a loss axis "
                           "(ce, svsl) and their training logs")
    mcc = sorted({DATASET_NAMES.get(m.model.dataset, m.model.dataset) for m in shown
                  if _test_column(m) == "test_mcc"})
    fig, axes = query.grid(
        2 * len(shown), len(shown), "Train and test accuracy"
        + (f" ({', '.join(mcc)}: test MCC)" if mcc else "") + ", CE against SVSL\n(Ben-Shaul"
        f" & Dekel Fig. 1; TPT: train accuracy ≥ {tables.thresholds.interpolation:g})",
        panel=(3.2, 2.4), **GRID)
    for c, m in enumerate(shown):
        end = max(float(a.index.max()) for a in m.accuracy.values())
        test = _test_column(m)
        for r, (column, what) in enumerate((("train_acc", "train accuracy"),
                                            (test, f"test {FIG1_METRICS[test]}"))):
            draw = partial(_draw_curves, color=lambda loss, _: LOSS_COLORS[loss], width=1.3,
                           frames={loss: m.accuracy[loss][[column]] for loss in m.losses})
            # no zoom on train accuracy: it is 1 all through the TPT
            _panel(axes[r, c], m, end, draw, r, c, what, (0.42, 0.08, 0.55, 0.5) if r else None)
            axes[r, c].set_ylim(top=1.005)
            if c and r and column != _test_column(shown[0]):  # not column 0's quantity
                axes[r, c].set_ylabel(what, fontsize="small")
    _legend(fig, shown, lambda loss: {"color": LOSS_COLORS[loss]}, 4)
    return fig


def _layer_colors(layers: Sequence[str]) -> dict[str, object]:
    n = max(len(layers) - 1, 1)
    return {layer: colormaps["viridis"](0.92 * i / n) for i, layer in enumerate(layers)}


def _depth_colorbar(fig: Figure, axes: np.ndarray, layers: Sequence[str],
                    colors: dict[str, object]) -> None:
    """The layers' colours as a discrete colour bar right of the panels, a tick per layer named
    as the paper names it, the shallowest on top."""
    n = len(layers)
    mappable = ScalarMappable(norm=BoundaryNorm(np.arange(n + 1), n),
                              cmap=ListedColormap([colors[layer] for layer in layers]))
    bar = fig.colorbar(mappable, ax=axes.ravel().tolist(), location="right", aspect=40,
                       fraction=0.04, pad=0.01)
    bar.set_ticks(np.arange(n) + 0.5, labels=[layer_name(layer) for layer in layers])
    bar.ax.tick_params(labelsize="x-small", length=0)
    bar.ax.invert_yaxis()
    bar.set_label("layer (depth)", fontsize="small")


def fig2_ncc_mismatch(tables: Tables) -> Figure:
    """The paper's Fig. 2: train (top) and test (bottom) NCC mismatch of every layer against
    the epoch, a colour per layer (viridis over depth; beyond :data:`LEGEND_LAYERS` layers, a
    BERT's 15, keyed by a colour bar rather than the legend), CE solid and SVSL dashed, each
    run's TPT shaded."""
    shown = [m for m in loss_curves(tables)
             if any(not m.mismatch[loss]["train"].empty for loss in m.losses)]
    if not shown:
        return placeholder("Ben-Shaul & Dekel Fig. 2 needs selected runs with a loss axis and "
                           "train.epoch_metrics (nc4_mismatch every epoch)")
    fig, axes = query.grid(2 * len(shown), len(shown), "NCC mismatch per layer, CE (solid) "
                           "against SVSL (dashed) (Ben-Shaul & Dekel Fig. 2)",
                           panel=(3.2, 2.6), **GRID)
    layers: list[str] = []
    for c, m in enumerate(shown):
        frames = [m.mismatch[loss][s] for loss in m.losses for s in SPLITS]
        model_layers = list(dict.fromkeys(col for f in frames for col in f.columns))
        layers += [layer for layer in model_layers if layer not in layers]
        colors = _layer_colors(model_layers)
        end = max(float(f.index.max()) for f in frames if not f.empty)
        for r, split in enumerate(SPLITS):
            draw = partial(_draw_curves, color=lambda _, layer, colors=colors: colors[layer],
                           width=1.1, dashed=True,
                           frames={loss: m.mismatch[loss][split] for loss in m.losses})
            _panel(axes[r, c], m, end, draw, r, c, f"{split} NCC mismatch",
                   (0.42, 0.38, 0.55, 0.5))
    colors = _layer_colors(layers)
    keys = [Line2D([], [], color=colors[layer], label=layer_name(layer)) for layer in layers]
    if len(layers) > LEGEND_LAYERS:  # a BERT's 15: a colour bar over depth beside the panels
        _depth_colorbar(fig, axes, layers, colors)
        keys = []
    _legend(fig, shown, lambda loss: {"color": "0.3", "linestyle": LOSS_LINES[loss]}, 6, keys)
    return fig


FIGURES: dict[str, Callable[[Tables], Figure]] = {
    "fig1_accuracy": fig1_accuracy,
    "fig2_ncc_mismatch": fig2_ncc_mismatch,
}


# --- Tables 1-2 ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stages:
    """A run's test metric (accuracy; MCC for CoLA) at the IT, at the EOT and at its best
    epoch (NaN, epoch -1: the training log lacks the metric)."""

    it: float
    eot: float
    best: float
    best_epoch: int
    best_in_tpt: bool | None  # None: never in the TPT


NO_STAGES = Stages(math.nan, math.nan, math.nan, -1, None)


def stages(m: Curves, loss: str) -> Stages:
    accuracy = m.accuracy[loss]  # the test metric: all NaN where the training log lacks it
    logged = accuracy.get(m.metric, pd.Series(math.nan, index=accuracy.index))
    test = logged.dropna()
    start = m.interpolation[loss]
    if test.empty:  # e.g. CoLA from a training log without test_mcc: "--", not the accuracy
        return NO_STAGES
    best_epoch = int(test.idxmax())  # the best epoch of the metric: of the MCC for CoLA
    at_it = test[test.index == start]  # empty if never interpolated (NaN) or not logged then
    return Stages(it=float(at_it.iloc[0]) if not at_it.empty else math.nan,
                  eot=float(logged.iloc[-1]), best=float(test.max()), best_epoch=best_epoch,
                  best_in_tpt=None if math.isnan(start) else best_epoch >= start)


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
        ce, svsl = (stages(m, loss) if loss in m.runs else NO_STAGES for loss in ("ce", "svsl"))
        pct = [_cell(100 * v, ".2f")
               for v in (ce.it, svsl.it, ce.eot, svsl.eot, ce.best, svsl.best)]
        rows.append([m.model.label, "ours", METRIC_NAMES[m.metric], *pct[:5],
                     YES_NO[ce.best_in_tpt], pct[5], YES_NO[svsl.best_in_tpt]])
        if m.model.dataset in PAPER_TABLE1:
            rows.append([DATASET_NAMES[m.model.dataset], "paper", METRIC_NAMES[m.metric],
                         *(_cell(v, ".2f") if isinstance(v, float) else v
                           for v in PAPER_TABLE1[m.model.dataset])])
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)


def table2_svsl(tables: Tables) -> pd.DataFrame:
    """Table 2: each model's SVSL weight α and first layer γ (its SVSL runs' recipe), the
    paper's beside them; a BERT's γ ours by name (``encoder.layer.0`` → "L1") and the paper's
    by number (1), the same layer, HF's ``hidden_states[1]``."""
    rows = []
    for m in loss_curves(tables):
        if "svsl" not in m.runs:
            continue
        alpha, gamma = (query.recipe(tables, f"train.svsl_{f}").get(m.runs["svsl"][0])
                        for f in ("alpha", "gamma"))
        paper_alpha, paper_gamma = PAPER_TABLE2.get(m.model.dataset, (math.nan, None))
        rows.append([m.model.label, _cell(math.nan if alpha is None else float(alpha), ".6g"),
                     "--" if gamma is None else layer_name(str(vocabulary.shown_value(gamma))),
                     _cell(paper_alpha, ".6g"),
                     "--" if paper_gamma is None else str(paper_gamma)
                     if isinstance(paper_gamma, int) else layer_name(paper_gamma)])
    return pd.DataFrame(rows, columns=["Model", "alpha", "gamma", "paper alpha",
                                       "paper gamma"])


# --- criteria ------------------------------------------------------------------------------

def depth_violations(curve: pd.Series, tol: float = TOL) -> list[tuple[str, str, float]]:
    """(layer, next layer, increase) wherever the next (deeper) layer's value exceeds the
    layer's by more than ``tol``; empty: the curve decreases with depth."""
    values = curve.to_numpy(dtype=float)
    return [(curve.index[i], curve.index[i + 1], float(values[i + 1] - values[i]))
            for i in range(len(values) - 1) if values[i + 1] > values[i] + tol]


def tpt_mean(table: pd.DataFrame, start: float) -> pd.Series:
    """Each layer's value averaged over the TPT epochs (empty if there are none)."""
    part = in_tpt(table, start)
    return part.mean() if not part.empty else pd.Series(dtype=float)


def it_vs_eot(table: pd.DataFrame, start: float) -> pd.Series:
    """Each layer's Λ_EOT − Λ_IT, Λ_IT at the first measured epoch from the IT on (epoch
    metrics may skip epochs); empty if the run never interpolated."""
    measured = in_tpt(table, start)
    return pd.Series(dtype=float) if measured.empty else table.iloc[-1] - measured.iloc[0]


def svsl_minus_ce(m: Curves, split: str) -> pd.Series:
    """Each of the paper's layers' SVSL − CE mismatch averaged over the epochs where both runs
    are in the TPT (empty: a run is missing, or the two TPTs never meet)."""
    if not {"ce", "svsl"} <= set(m.runs):
        return pd.Series(dtype=float)
    start = max(m.interpolation["ce"], m.interpolation["svsl"])
    ce, svsl = (tpt_mean(judged(m.mismatch[loss][split]), start) for loss in ("ce", "svsl"))
    return pd.Series(dtype=float) if ce.empty or svsl.empty else (svsl - ce).dropna()


# --- claims --------------------------------------------------------------------------------

def _listed(items: list[str]) -> str:
    return "; ".join(items[:LISTED]) + (" …" if len(items) > LISTED else "")


def _runs_of(found: list[Curves]) -> list[tuple[Curves, str]]:
    return [(m, loss) for m in found for loss in m.losses]


def _run_name(m: Curves, loss: str) -> str:
    return f"{m.name} {LOSSES[loss]}"


def _no_tpt(found: list[Curves]) -> str:
    missing = [_run_name(m, loss) for m, loss in _runs_of(found)
               if math.isnan(m.interpolation[loss])]
    return f"; left out, no TPT: {_listed(missing)}" if missing else ""


def _layers_note(found: list[Curves]) -> str:
    """Which layers a mismatch claim reads where they are not all drawn (a BERT's)."""
    cut = {}
    for m, loss in _runs_of(found):
        layers = list(m.mismatch[loss]["train"].columns)
        if (kept := paper_layers(layers)) != layers and kept:
            cut.setdefault(m.model.arch, (kept[0], kept[-1]))
    return "".join(f"; {arch}: {layer_name(a)}…{layer_name(b)} (App. B)"
                   for arch, (a, b) in cut.items())


def _per_run(found: list[Curves], split: str, criterion: Callable) -> dict:
    """(model, loss) → ``criterion`` of its judged mismatch on ``split`` and its IT, for the
    runs where it tells (not empty)."""
    return {(m, loss): v for m, loss in _runs_of(found) if not (
        v := criterion(judged(m.mismatch[loss][split]), m.interpolation[loss])).empty}


def depth_order_claim(found: list[Curves], split: str) -> dict:
    """Conjecture 7 on ``split``: every run's TPT-mean mismatch decreases with depth."""
    told = _per_run(found, split, tpt_mean)
    failing = [f"{_run_name(m, loss)} {layer_name(a)}→{layer_name(b)} +{up:.3f}"
               for (m, loss), curve in told.items() for a, b, up in depth_violations(curve)]
    measured = f"{sum(not depth_violations(c) for c in told.values())}/{len(told)} runs ordered"
    if told:
        first = np.mean([c.iloc[0] for c in told.values()])
        last = np.mean([c.iloc[-1] for c in told.values()])
        measured += f" (mean first layer {first:.3f}, last {last:.3f})"
    if failing:
        measured += f"; rises: {_listed(failing)}"
    return query.claim(f"{split.capitalize()} NCC mismatch decreases with depth in the TPT, "
                       f"Λ(j) ≥ Λ(j+1) (TPT-mean; rise > 0.005 fails{_layers_note(found)})",
                       "Conj. 7; Fig. 2", measured + _no_tpt(found),
                       None if not told else not failing)


def it_to_eot_claim(found: list[Curves], split: str) -> dict:
    """Conjecture 8 on ``split``: Λ_EOT ≤ Λ_IT + TOL in every run and layer."""
    told = _per_run(found, split, it_vs_eot)
    better = sum(int((d <= TOL).sum()) for d in told.values())
    failing = [f"{_run_name(m, loss)} {layer_name(layer)} +{up:.3f}"
               for (m, loss), d in told.items() for layer, up in d.items() if up > TOL]
    measured = f"{better}/{sum(len(d) for d in told.values())} layers"
    if told:
        measured += f" (mean change {np.mean([d.mean() for d in told.values()]):+.3f})"
    if failing:
        measured += f"; worse at EOT: {_listed(failing)}"
    note = _layers_note(found)
    return query.claim(f"{split.capitalize()} NCC mismatch at the IT ≥ at the EOT in every "
                       "layer" + (f" ({note[2:]})" if note else ""), "Conj. 8; Fig. 2",
                       measured + _no_tpt(found), None if not told else not failing)


def svsl_claim(found: list[Curves], split: str) -> dict:
    """Conjecture 11 on ``split``: SVSL's mismatch ≤ CE's + TOL in almost all layers."""
    told = {m: d for m in found if not (d := svsl_minus_ce(m, split)).empty}
    layers = sum(len(d) for d in told.values())
    lower = sum(int((d <= TOL).sum()) for d in told.values())
    share = lower / layers if layers else math.nan
    measured = (f"{lower}/{layers} layers" + (f" ({share:.0%})" if layers else "")
                + "".join(f"; {m.name}: mean SVSL−CE {d.mean():+.3f}"
                          for m, d in list(told.items())[:LISTED]))
    if missing := [m.model.label for m in found if m not in told]:
        measured += f"; left out (no CE and SVSL TPT): {_listed(missing)}"
    return query.claim(f"SVSL's {split} NCC mismatch ≤ CE's in almost all layers "
                       f"(TPT-mean; ≥ {ALMOST_ALL:.0%} of layers{_layers_note(found)})",
                       "Conj. 11; §6.2; Fig. 2", measured,
                       None if not layers else share >= ALMOST_ALL)


def _both(found: list[Curves]) -> list[Curves]:
    return [m for m in found if {"ce", "svsl"} <= set(m.runs)]


def _metric_note(found: list[Curves]) -> str:
    """What a test-performance claim compares where a model's metric is not the accuracy."""
    named = sorted({DATASET_NAMES.get(m.model.dataset, m.model.dataset) for m in found
                    if m.metric == "test_mcc"})
    return f"; {', '.join(named)}: MCC" if named else ""


def _difference(m: Curves, value: float) -> str:
    """A difference of test metrics as Table 1 prints them: percentage points, MCC × 100."""
    return f"{100 * value:+.2f}" + (" pp" if m.metric == "test_acc" else " MCC×100")


def _no_metric(found: list[Curves]) -> str:
    missing = [m.name for m in _both(found)
               if math.isnan(stages(m, "ce").eot) or math.isnan(stages(m, "svsl").eot)]
    return f"; left out, no test MCC logged: {_listed(missing)}" if missing else ""


def _gaps(found: list[Curves]) -> dict[tuple[Curves, str], float]:
    """(model, stage) → SVSL's test metric − CE's, where both runs logged it."""
    return {(m, stage): gap for m in _both(found) for stage in STAGE_NAMES if not math.isnan(
        gap := getattr(stages(m, "svsl"), stage) - getattr(stages(m, "ce"), stage))}


def eot_accuracy_claim(found: list[Curves]) -> dict:
    """Conjecture 12: SVSL's EOT test metric (accuracy; CoLA's MCC) ≥ CE's in every model."""
    gains = {m: gap for (m, stage), gap in _gaps(found).items() if stage == "eot"}
    better = sum(g >= 0 for g in gains.values())
    measured = f"{better}/{len(gains)} models" + (": " if gains else "") + _listed(
        [f"{m.name} {_difference(m, g)}" for m, g in gains.items()])
    return query.claim(f"SVSL's EOT test accuracy ≥ CE's for every dataset (SVSL − CE"
                       f"{_metric_note(found)})", "Conj. 12; Table 1",
                       measured + _no_metric(found), None if not gains else better == len(gains))


def stages_claim(found: list[Curves]) -> dict:
    """Table 1: SVSL's test metric ≥ CE's at almost all of IT, EOT and best epoch."""
    gaps = _gaps(found)
    better = sum(g >= 0 for g in gaps.values())
    worse = [f"{m.name} {STAGE_NAMES[stage]} {_difference(m, g)}" for (m, stage), g in gaps.items()
             if g < 0]
    measured = f"{better}/{len(gaps)} (model, stage) pairs" + (
        f"; SVSL below: {_listed(worse)}" if worse else "")
    return query.claim(f"SVSL's test accuracy ≥ CE's at almost all stages: IT, EOT, best epoch "
                       f"(≥ {ALMOST_ALL:.0%} of pairs{_metric_note(found)})", "§6.2; Table 1",
                       measured + _no_metric(found),
                       None if not gaps else better / len(gaps) >= ALMOST_ALL)


def best_in_tpt_claim(found: list[Curves]) -> dict:
    """Table 1: the best test epoch (of the test metric) lies in the TPT in most runs."""
    told = {(m, loss): s for m, loss in _runs_of(found)
            if (s := stages(m, loss)).best_in_tpt is not None}
    outside = [f"{_run_name(m, loss)} best epoch {s.best_epoch} < IT {int(m.interpolation[loss])}"
               for (m, loss), s in told.items() if not s.best_in_tpt]
    measured = f"{len(told) - len(outside)}/{len(told)} runs" + (
        f"; before TPT: {_listed(outside)}" if outside else "")
    note = _metric_note(found)
    return query.claim("Most runs reach their best test accuracy in the TPT"
                       + (f" ({note[2:]})" if note else ""), "§6.2; Table 1",
                       measured + _no_tpt(found) + _no_metric(found),
                       query.majority([bool(s.best_in_tpt) for s in told.values()]))


def _first_layer_eot(m: Curves, split: str) -> float:
    """The CE run's first layer's mismatch at EOT (NaN without it)."""
    table = m.mismatch.get("ce", {}).get(split, pd.DataFrame())
    return float(table.iloc[-1, 0]) if not table.empty else math.nan


def reference_claim(found: list[Curves]) -> dict:
    """§7 (i): the CE runs' Layer1 train mismatch at EOT near the paper's on MNIST, CIFAR10."""
    parts, verdicts = [], []
    for m in found:
        if m.model.dataset not in FIRST_LAYER or math.isnan(train := _first_layer_eot(m, "train")):
            continue
        paper = FIRST_LAYER[m.model.dataset]
        verdicts.append(abs(train - paper) <= REFERENCE_TOL)
        parts.append(f"{m.name}: {train:.2f} train, {_first_layer_eot(m, 'test'):.2f} test "
                     f"(paper ≈ {paper:g})")
    return query.claim(f"First-layer mismatch as the paper's: ≈ 0.16 on MNIST, ≈ 0.6 on CIFAR10 "
                       f"(CE, train, EOT; within {REFERENCE_TOL:g})", "§7 (i); Fig. 2",
                       "; ".join(parts) if parts else "no MNIST or CIFAR10 model with CE",
                       query.all_told(verdicts))


def difficulty_claim(found: list[Curves]) -> dict:
    """§7 (i): MNIST's first-layer mismatch below CIFAR10's (CE, train, EOT)."""
    first: dict[str, float] = {}
    for m in found:
        if m.model.dataset in FIRST_LAYER and m.model.dataset not in first and not math.isnan(
                value := _first_layer_eot(m, "train")):
            first[m.model.dataset] = value
    text = "First-layer mismatch lower on the easier dataset: MNIST < CIFAR10"
    if len(first) < 2:
        return query.claim(text, "§7 (i)", "needs an MNIST and a CIFAR10 model with CE", None)
    return query.claim(text, "§7 (i)", f"MNIST {first['mnist']:.2f}, CIFAR10 "
                       f"{first['cifar10']:.2f}", first["mnist"] < first["cifar10"])


def claims(tables: Tables) -> pd.DataFrame:
    """The paper's conjectures checked against the measured numbers (see the module
    docstring)."""
    found = loss_curves(tables)
    if not found:
        return claims_frame([query.claim("CE against SVSL", "§4-§6", "no selected run with a "
                                         "loss axis in the training logs", None)])
    return claims_frame([
        *(depth_order_claim(found, split) for split in SPLITS),
        *(it_to_eot_claim(found, split) for split in SPLITS),
        *(svsl_claim(found, split) for split in SPLITS),
        eot_accuracy_claim(found),
        stages_claim(found),
        best_in_tpt_claim(found),
        reference_claim(found),
        difficulty_claim(found),
    ])


TABLES: dict[str, Callable[[Tables], pd.DataFrame]] = {
    "table1_accuracy": table1_accuracy,
    "table2_svsl": table2_svsl,
    "claims": claims,
}
