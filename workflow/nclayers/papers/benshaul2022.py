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
(IT), the first epoch whose train accuracy reaches ``Tables.thresholds.interpolation`` (0.995,
§5.3's vision paragraph; 0.985, its NLP paragraph's, in the GLUE preset); the end of training
(EOT) is the last epoch. A GLUE run of 10 epochs may never reach it: then it has no IT and no
TPT, and its Table 1 cells "IT" and "In TPT" are "--", as for a vision run.

Here a *model* is one group × dataset × architecture (seeds averaged); its runs differ by the
``loss`` axis (``ce``, ``svsl``). The figures show the tapped layers but the input, in depth
order: a ResNet's Layer1-4, AvgPool, FC (``taps: stages``); a BERT's ``embeddings`` ("Emb"),
``encoder.layer.k`` ("L{k+1}", so that Lk is HF's ``hidden_states[k]``, the paper's γ = k),
``pooler``, ``classifier`` ("FC").

The test metric (:data:`MCC_DATASETS`): test accuracy, but for CoLA the Matthews correlation
(training.csv's ``test_mcc``), as the paper reports it (Table 1's caption, × 100); without that
column CoLA's values are "--", never the accuracy. Table 1's best epoch is the best epoch of that
metric; the claims on test performance (4-6 below) compare that metric.

The layers of the conjectures (:func:`paper_layers`): a ResNet's, all of the figures' (as the
paper's Fig. 2). A BERT's, the paper's 12 (App. B: "the embedding-layer (1) and (11)
hidden-state layers", all hidden states but the final output): ``embeddings`` and every encoder
layer but the last, i.e. Emb, L1…L11 of bert-base. Our choice: the last encoder layer (L12),
the pooler and the classifier are drawn but not judged, since the paper's BERT layers stop at
``hidden_states[11]`` and it never measured the others.

The claims (:func:`claims`), read on both splits where the paper states them for both; a
difference counts only beyond :data:`TOL` (half a percentage point):

1. Conjecture 7, the mismatch decreases with depth in the TPT: in every run, the mismatch
   averaged over the run's TPT epochs is, layer after layer, at most the shallower layer's
   plus TOL.
2. Conjecture 8, the mismatch improves from IT to EOT: in every run and layer,
   Λ_EOT ≤ Λ_IT + TOL.
3. Conjecture 11, SVSL lowers the mismatch "in almost all layers" (§6.2): averaged over the
   epochs where both runs of a model are in the TPT, SVSL's mismatch ≤ CE's + TOL in at least
   :data:`ALMOST_ALL` of the layers of all models.
4. Conjecture 12, SVSL improves the EOT test metric for all datasets: SVSL's ≥ CE's in every
   model.
5. Table 1, SVSL outperforms CE "at almost all stages": SVSL's test metric ≥ CE's in at
   least :data:`ALMOST_ALL` of the (model, stage) pairs, stages IT, EOT and best epoch.
6. Table 1, "most datasets reach their best test scores during TPT": the best test epoch lies
   in the TPT in more than half of the runs.
7. §7, the first layer's mismatch as the paper's full-scale reference (≈ 0.16 on MNIST, ≈ 0.6
   on CIFAR10, :data:`FIRST_LAYER`): the CE run's Layer1 train mismatch at EOT within
   :data:`REFERENCE_TOL` of it; None without an MNIST or CIFAR10 model.
8. §7, the first layer's mismatch tells the dataset's difficulty: MNIST's below CIFAR10's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from nclayers import vocabulary
from nclayers.derived import interpolation_epoch
from nclayers.papers import Tables, claims_frame
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
# Table 1's caption, × 100 there as here).
MCC_DATASETS = frozenset({"cola"})
METRIC_NAMES = {"test_acc": "acc. %", "test_mcc": "MCC × 100"}
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


# --- the models: a CE and an SVSL run (seeds averaged) per group × dataset × architecture ----

@dataclass(frozen=True, eq=False)  # identity hash: models key the claims' dicts
class Model:
    """One model's runs by loss, with their seed-averaged curves."""

    label: str
    dataset: str
    arch: str
    runs: dict[str, list[str]]  # loss → run ids (its seeds)
    accuracy: dict[str, pd.DataFrame]  # loss → epoch × (train_acc, test_acc[, test_mcc])
    mismatch: dict[str, dict[str, pd.DataFrame]]  # loss → split → epoch × layer (depth order)
    interpolation: dict[str, float]  # loss → IT epoch (NaN: never reached)
    metric: str = "test_acc"  # the test metric of Table 1 and the claims: test_acc, test_mcc

    @property
    def losses(self) -> list[str]:
        return [loss for loss in LOSSES if loss in self.runs]

    def test_metric(self, loss: str) -> pd.Series:
        """The run's test metric per epoch (all NaN where the training log lacks it)."""
        curves = self.accuracy[loss]
        if self.metric in curves:
            return curves[self.metric]
        return pd.Series(math.nan, index=curves.index, name=self.metric)


def _selected_training(tables: Tables) -> pd.DataFrame:
    training = tables.training
    if training.empty or "loss" not in training.columns or tables.runs.empty:
        return training.iloc[0:0]
    return tables.selected(training)


def _label(dataset: str, arch: str, extra: Sequence[str]) -> str:
    return vocabulary.model_label(DATASET_NAMES.get(dataset, dataset), arch, *extra)


def _model_parts(training: pd.DataFrame) -> list[tuple[str, str, str, pd.DataFrame]]:
    """(label, dataset, arch, rows) per model: the selected runs' training rows grouped by the
    columns that tell models apart (vocabulary.model_keys) but the loss."""
    # A test metric is never an axis (a log that put test_mcc after the group would read so).
    keys = [k for k in vocabulary.model_keys(training) if k not in ("loss", "test_mcc")]
    parts = []
    for key, rows in training.groupby(keys, sort=False, dropna=False):
        values = dict(zip(keys, key, strict=True))
        extra = [str(v) if k == "group" else f"{k}={vocabulary.shown_value(v)}"
                 for k, v in values.items() if k not in ("dataset", "arch")
                 and not (k == "group" and v == values["dataset"]) and v == v]
        parts.append((_label(values["dataset"], values["arch"], extra), values["dataset"],
                      values["arch"], rows))
    return parts


def _accuracy(rows: pd.DataFrame) -> pd.DataFrame:
    columns = [c for c in ("train_acc", "test_acc", "test_mcc") if c in rows.columns]
    return rows.groupby("epoch")[columns].mean().sort_index()


def _mismatch(epoch_metrics: pd.DataFrame, runs: list[str], split: str) -> pd.DataFrame:
    """Epoch × layer (depth order, the input left out) of the runs' mean NCC mismatch."""
    if epoch_metrics.empty:
        return pd.DataFrame()
    rows = epoch_metrics[epoch_metrics["run"].isin(set(runs)) & (epoch_metrics["split"] == split)
                         & (epoch_metrics["metric"] == METRIC)
                         & (epoch_metrics["layer"] != "input")]
    if rows.empty:
        return pd.DataFrame()
    order = rows.groupby("layer")["layer_index"].min().sort_values().index
    table = rows.pivot_table(index="epoch", columns="layer", values="value", aggfunc="mean")
    return table[list(order)].sort_index()


def models(tables: Tables) -> list[Model]:
    """The models of the selected runs, in the tables' order; empty without a loss axis."""
    training = _selected_training(tables)
    found = []
    for label, dataset, arch, rows in _model_parts(training):
        runs, accuracy, mismatch, it = {}, {}, {}, {}
        for loss, part in rows.groupby("loss", sort=False):
            runs[loss] = list(part["run"].unique())
            accuracy[loss] = _accuracy(part)
            mismatch[loss] = {s: _mismatch(tables.epoch_metrics, runs[loss], s) for s in SPLITS}
            it[loss] = interpolation_epoch(accuracy[loss]["train_acc"],
                                           tables.thresholds.interpolation)
        if runs:  # a group without the loss axis has no loss value, and no model here
            metric = "test_mcc" if dataset in MCC_DATASETS else "test_acc"
            found.append(Model(label, dataset, arch, runs, accuracy, mismatch, it, metric))
    return found


def in_tpt(curve: pd.DataFrame | pd.Series, start: float) -> pd.DataFrame | pd.Series:
    """The rows of an epoch-indexed curve from the interpolation epoch ``start`` on (none if
    NaN: the run never interpolated)."""
    if math.isnan(start):
        return curve.iloc[0:0]
    return curve[curve.index >= start]


def layer_name(layer: str) -> str:
    """A layer as the paper names it: Layer1 … FC for a ResNet; Emb, L1 … L12, Pooler, FC for
    a BERT (``encoder.layer.k`` is L{k+1}: HF's ``hidden_states[k+1]``, the paper's γ = k+1)."""
    match = BERT_LAYER.fullmatch(layer)
    return f"L{int(match[1]) + 1}" if match else LAYER_NAMES.get(layer, layer)


def paper_layers(layers: Sequence[str]) -> list[str]:
    """The layers of ``layers`` (depth order) that the paper's conjectures speak of: all of a
    ResNet's; of a BERT's, the embeddings and every encoder layer but the last (App. B: the
    hidden states but the final output), i.e. not the last encoder layer, the pooler and the
    classifier (see the module docstring)."""
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

def _shade_tpt(ax: Axes, model: Model, end: float) -> None:
    """Each run's TPT shaded in its loss's colour (both: purple, as the paper's Fig. 2)."""
    for loss in model.losses:
        start = model.interpolation[loss]
        if not math.isnan(start):
            ax.axvspan(start, end, color=LOSS_COLORS[loss], alpha=SHADE_ALPHA, linewidth=0)


def _tpt_handles(shown: list[Model]) -> list:
    """The legend's TPT shades, only those drawn (a GLUE run of 10 epochs may have no TPT)."""
    reached = {loss for m in shown for loss in m.losses if not math.isnan(m.interpolation[loss])}
    handles = [Patch(color=LOSS_COLORS[loss], alpha=0.3, label=f"TPT, {LOSSES[loss]}")
               for loss in LOSSES if loss in reached]
    if any(all(not math.isnan(m.interpolation.get(loss, math.nan)) for loss in LOSSES)
           for m in shown):
        handles.append(Patch(color="#8c4fa8", alpha=0.3, label="TPT, both"))
    return handles


def _grid(rows: int, cols: int, panel: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(min(11.0, 1.0 + panel[0] * cols), min(9.0, 1.2 + panel[1] * rows)),
                 layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False, sharex="col")


def _zoom_on_tpt(ax: Axes, model: Model, end: float, draw: Callable[[Axes], None],
                 where: Sequence[float]) -> None:
    """An inset of the panel from the first interpolation epoch on, where the curves of the
    TPT lie too close together at the panel's scale (the paper's question is about them)."""
    starts = [e for e in model.interpolation.values() if not math.isnan(e)]
    if not starts or min(starts) >= end:
        return
    start = min(starts)
    inset = ax.inset_axes(where)
    _shade_tpt(inset, model, end)
    draw(inset)
    shown = [np.asarray(line.get_ydata(), dtype=float)[np.asarray(line.get_xdata()) >= start]
             for line in inset.get_lines()]
    values = np.concatenate([v for v in shown if v.size]) if shown else np.array([])
    if values.size and np.isfinite(values).any():
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        pad = max(0.08 * (hi - lo), 0.002)
        inset.set_ylim(lo - pad, hi + pad)
    inset.set_xlim(start, end)
    inset.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
    inset.tick_params(labelsize=5, pad=1)
    inset.set_title("TPT", fontsize=6, pad=1)


def fig1_accuracy(tables: Tables) -> Figure:
    """The paper's Fig. 1 (STL10; the other datasets in its appendix) for every model: train
    and test accuracy against the epoch, CE pink and SVSL blue, each run's TPT shaded. A
    CoLA model's test row is its test MCC, the metric of Table 1 (its accuracy where the log
    has no MCC), said in the panel's label."""
    shown = [m for m in models(tables) if m.accuracy]
    if not shown:
        return placeholder("Ben-Shaul & Dekel Fig. 1 needs selected runs with a loss axis "
                           "(ce, svsl) and their training logs")
    fig, axes = _grid(2, len(shown), (3.2, 2.4))
    for c, model in enumerate(shown):
        end = max(float(a.index.max()) for a in model.accuracy.values())
        test = _test_column(model)
        for r, (column, what) in enumerate((("train_acc", "train accuracy"),
                                            (test, f"test {FIG1_METRICS[test]}"))):
            ax = axes[r, c]
            _shade_tpt(ax, model, end)

            def draw(target: Axes, model: Model = model, column: str = column) -> None:
                for loss in model.losses:
                    curve = model.accuracy[loss][column]
                    target.plot(curve.index, curve.to_numpy(), color=LOSS_COLORS[loss],
                                linewidth=1.3)

            draw(ax)
            ax.set_ylim(top=1.005)
            ax.set_xlim(0, end)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if column != "train_acc":  # train accuracy is 1 all through the TPT
                _zoom_on_tpt(ax, model, end, draw, (0.42, 0.08, 0.55, 0.5))
            _label_panel(ax, model, r, c, what)
            if c and r and column != _test_column(shown[0]):  # not column 0's quantity
                ax.set_ylabel(what, fontsize="small")
    losses = {loss for m in shown for loss in m.losses}
    handles = [Line2D([], [], color=LOSS_COLORS[loss], label=LOSSES[loss])
               for loss in LOSSES if loss in losses] + _tpt_handles(shown)
    fig.legend(handles=handles, loc="outside lower center", ncol=min(4, len(handles)),
               fontsize="small")
    mcc = sorted({DATASET_NAMES.get(m.dataset, m.dataset) for m in shown
                  if _test_column(m) == "test_mcc"})
    fig.suptitle("Train and test accuracy" + (f" ({', '.join(mcc)}: test MCC)" if mcc else "")
                 + ", CE against SVSL\n(Ben-Shaul & Dekel Fig. 1; "
                 f"TPT: train accuracy ≥ {tables.thresholds.interpolation:g})",
                 fontsize="medium")
    return fig


FIG1_METRICS = {"test_acc": "accuracy", "test_mcc": "MCC"}


def _test_column(model: Model) -> str:
    """Fig. 1's test row: the model's test metric where every run logged it, else accuracy."""
    logged = all(model.metric in a and a[model.metric].notna().any()
                 for a in model.accuracy.values())
    return model.metric if logged else "test_acc"


def _label_panel(ax: Axes, model: Model, row: int, col: int, ylabel: str) -> None:
    """A two-row grid's labels: the model above the top row, the epoch below the bottom one,
    the quantity left of the first column."""
    ax.tick_params(labelsize="x-small")
    if row == 0:
        ax.set_title(model.label, fontsize="small")
    else:
        ax.set_xlabel("epoch", fontsize="small")
    if col == 0:
        ax.set_ylabel(ylabel, fontsize="small")


def _layer_colors(layers: Sequence[str]) -> dict[str, object]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    n = max(len(layers) - 1, 1)
    return {layer: cmap(0.92 * i / n) for i, layer in enumerate(layers)}


def _depth_colorbar(fig: Figure, axes: np.ndarray, layers: Sequence[str],
                    colors: dict[str, object]) -> None:
    """The layers' colours as a discrete colour bar right of the panels, a tick per layer named
    as the paper names it, the shallowest on top."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import BoundaryNorm, ListedColormap

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
    shown = [m for m in models(tables)
             if any(not m.mismatch[loss]["train"].empty for loss in m.losses)]
    if not shown:
        return placeholder("Ben-Shaul & Dekel Fig. 2 needs selected runs with a loss axis and "
                           "train.epoch_metrics (nc4_mismatch every epoch)")
    fig, axes = _grid(2, len(shown), (3.2, 2.6))
    layers: list[str] = []
    for c, model in enumerate(shown):
        frames = [model.mismatch[loss][s] for loss in model.losses for s in SPLITS]
        model_layers = list(dict.fromkeys(col for f in frames for col in f.columns))
        layers += [layer for layer in model_layers if layer not in layers]
        colors = _layer_colors(model_layers)
        end = max(float(f.index.max()) for f in frames if not f.empty)
        for r, split in enumerate(SPLITS):
            ax = axes[r, c]
            _shade_tpt(ax, model, end)

            def draw(target: Axes, model: Model = model, split: str = split,
                     colors: dict = colors) -> None:
                for loss in model.losses:
                    table = model.mismatch[loss][split]
                    for layer in table.columns:
                        target.plot(table.index, table[layer].to_numpy(), color=colors[layer],
                                    linestyle=LOSS_LINES[loss], linewidth=1.1)

            draw(ax)
            ax.set_xlim(0, end)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            _zoom_on_tpt(ax, model, end, draw, (0.42, 0.38, 0.55, 0.5))
            _label_panel(ax, model, r, c, f"{split} NCC mismatch")
    colors = _layer_colors(layers)
    losses = {loss for m in shown for loss in m.losses}
    handles = [Line2D([], [], color="0.3", linestyle=LOSS_LINES[loss], label=LOSSES[loss])
               for loss in LOSSES if loss in losses] + _tpt_handles(shown)
    if len(layers) > LEGEND_LAYERS:  # a BERT's 15: a colour bar over depth beside the panels
        _depth_colorbar(fig, axes, layers, colors)
    else:
        handles = [Line2D([], [], color=colors[layer], label=layer_name(layer))
                   for layer in layers] + handles
    fig.legend(handles=handles, loc="outside lower center", ncol=min(6, len(handles)),
               fontsize="small")
    fig.suptitle("NCC mismatch per layer, CE (solid) against SVSL (dashed) "
                 "(Ben-Shaul & Dekel Fig. 2)", fontsize="medium")
    return fig


FIGURES: dict[str, Callable[[Tables], Figure]] = {
    "fig1_accuracy": fig1_accuracy,
    "fig2_ncc_mismatch": fig2_ncc_mismatch,
}


# --- Table 1: test accuracy (CoLA: MCC) at IT, EOT and the best epoch ----------------------

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


def stages(model: Model, loss: str) -> Stages:
    logged = model.test_metric(loss)
    test = logged.dropna()
    start = model.interpolation[loss]
    if test.empty:  # e.g. CoLA from a training log without test_mcc: "--", not the accuracy
        return NO_STAGES
    best_epoch = int(test.idxmax())  # the best epoch of the metric: of the MCC for CoLA
    at_it = test[test.index == start]  # empty if never interpolated (NaN) or not logged then
    return Stages(it=float(at_it.iloc[0]) if not at_it.empty else math.nan,
                  eot=float(logged.iloc[-1]), best=float(test.max()), best_epoch=best_epoch,
                  best_in_tpt=None if math.isnan(start) else best_epoch >= start)


def _pct(value: float) -> str:
    """An accuracy in percent (an MCC × 100) as the paper's Table 1 prints it (two decimals): a
    string, since the report's generic table would round a number to three significant
    digits."""
    return f"{100 * value:.2f}" if value == value else "--"


def _yes_no(value: bool | None) -> str:
    return "--" if value is None else ("Yes" if value else "No")


TABLE1_COLUMNS = ["Model", "Source", "Metric", "IT CE", "IT SVSL", "EOT CE", "EOT SVSL",
                  "Best CE", "In TPT (CE)", "Best SVSL", "In TPT (SVSL)"]


def table1_accuracy(tables: Tables) -> pd.DataFrame:
    """Table 1: each model's test metric (accuracy in %, CoLA's MCC × 100, as the "Metric"
    column says) with CE and with SVSL at the IT, the EOT and the best epoch, and whether that
    epoch lies in the TPT; the paper's row below ours where the dataset is one of its nine."""
    rows = []
    for model in models(tables):
        ce, svsl = (stages(model, loss) if loss in model.runs else NO_STAGES
                    for loss in ("ce", "svsl"))
        rows.append([model.label, "ours", METRIC_NAMES[model.metric], _pct(ce.it),
                     _pct(svsl.it), _pct(ce.eot), _pct(svsl.eot), _pct(ce.best),
                     _yes_no(ce.best_in_tpt), _pct(svsl.best), _yes_no(svsl.best_in_tpt)])
        if model.dataset in PAPER_TABLE1:
            rows.append([DATASET_NAMES[model.dataset], "paper", METRIC_NAMES[model.metric],
                         *(f"{v:.2f}" if isinstance(v, float) else v
                           for v in PAPER_TABLE1[model.dataset])])
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)


# --- Table 2: the SVSL settings -------------------------------------------------------------

def _svsl_setting(tables: Tables, runs: list[str]) -> tuple[float, str]:
    """(α, γ) of the SVSL runs from runs.csv (NaN, "--" where it has no such column)."""
    rows = tables.runs[tables.runs["run"].isin(set(runs))]
    alpha = (float(rows["svsl_alpha"].iloc[0]) if "svsl_alpha" in rows and not rows.empty
             else math.nan)
    gamma = (str(vocabulary.shown_value(rows["svsl_gamma"].iloc[0]))
             if "svsl_gamma" in rows and not rows.empty else "--")
    return alpha, gamma


def _alpha(value: float) -> str:
    """α with every digit the paper gives (SST-2's 4.132e-5): a string, since the report's
    generic table would round a number to three significant digits."""
    return "--" if value != value else f"{value:.6g}"


def _paper_gamma(gamma: str | int | None) -> str:
    """The paper's γ as its Table 2 gives it: a ResNet layer's name, a BERT layer's number."""
    if gamma is None:
        return "--"
    return str(gamma) if isinstance(gamma, int) else layer_name(gamma)


def table2_svsl(tables: Tables) -> pd.DataFrame:
    """Table 2: each model's SVSL weight α and first layer γ, the paper's beside them; a BERT's
    γ ours by name (``encoder.layer.0`` → "L1") and the paper's by number (1), the same layer,
    HF's ``hidden_states[1]``."""
    rows = []
    for model in models(tables):
        if "svsl" not in model.runs:
            continue
        alpha, gamma = _svsl_setting(tables, model.runs["svsl"])
        paper_alpha, paper_gamma = PAPER_TABLE2.get(model.dataset, (math.nan, None))
        rows.append([model.label, _alpha(alpha), layer_name(gamma), _alpha(paper_alpha),
                     _paper_gamma(paper_gamma)])
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
    if measured.empty:
        return pd.Series(dtype=float)
    return table.iloc[-1] - measured.iloc[0]


def svsl_minus_ce(model: Model, split: str) -> pd.Series:
    """Each of the paper's layers' SVSL − CE mismatch averaged over the epochs where both runs
    are in the TPT (empty: a run is missing, or the two TPTs never meet)."""
    if not {"ce", "svsl"} <= set(model.runs):
        return pd.Series(dtype=float)
    start = max(model.interpolation["ce"], model.interpolation["svsl"])
    ce = tpt_mean(judged(model.mismatch["ce"][split]), start)
    svsl = tpt_mean(judged(model.mismatch["svsl"][split]), start)
    if ce.empty or svsl.empty:
        return pd.Series(dtype=float)
    return (svsl - ce).dropna()


# --- claims --------------------------------------------------------------------------------

def _row(claim: str, where: str, measured: str, holds: bool | None) -> dict:
    return {"claim": claim, "where": where, "measured": measured, "holds": holds}


def _listed(items: list[str]) -> str:
    return "; ".join(items[:LISTED]) + (" …" if len(items) > LISTED else "")


def _runs_of(found: list[Model]) -> list[tuple[Model, str]]:
    return [(m, loss) for m in found for loss in m.losses]


def _short(model: Model, loss: str) -> str:
    return f"{model.label.replace(' / ', '/')} {LOSSES[loss]}"


def _no_tpt(pairs: list[tuple[Model, str]]) -> str:
    missing = [_short(m, loss) for m, loss in pairs if math.isnan(m.interpolation[loss])]
    return f"; left out, no TPT: {_listed(missing)}" if missing else ""


def _layers_note(found: list[Model]) -> str:
    """Which layers a mismatch claim reads where they are not all drawn (a BERT's)."""
    cut = {}
    for m in found:
        for loss in m.losses:
            layers = list(m.mismatch[loss]["train"].columns)
            kept = paper_layers(layers)
            if kept != layers and kept:
                cut.setdefault(m.arch, (kept[0], kept[-1]))
    return "".join(f"; {arch}: {layer_name(a)}…{layer_name(b)} (App. B)"
                   for arch, (a, b) in cut.items())


def depth_order_claim(found: list[Model], split: str) -> dict:
    """Conjecture 7 on ``split``: every run's TPT-mean mismatch decreases with depth."""
    pairs = _runs_of(found)
    curves = {(m, loss): tpt_mean(judged(m.mismatch[loss][split]), m.interpolation[loss])
              for m, loss in pairs}
    told = {k: v for k, v in curves.items() if not v.empty}
    failing = []
    for (m, loss), curve in told.items():
        for a, b, up in depth_violations(curve):
            failing.append(f"{_short(m, loss)} {layer_name(a)}→{layer_name(b)} +{up:.3f}")
    ordered = sum(not depth_violations(c) for c in told.values())
    holds = None if not told else not failing
    measured = f"{ordered}/{len(told)} runs ordered"
    if told:
        first, last = np.mean([c.iloc[0] for c in told.values()]), np.mean(
            [c.iloc[-1] for c in told.values()])
        measured += f" (mean first layer {first:.3f}, last {last:.3f})"
    if failing:
        measured += f"; rises: {_listed(failing)}"
    return _row(f"{split.capitalize()} NCC mismatch decreases with depth in the TPT, "
                f"Λ(j) ≥ Λ(j+1) (TPT-mean; rise > 0.005 fails{_layers_note(found)})",
                "Conj. 7; Fig. 2", measured + _no_tpt(pairs), holds)


def it_to_eot_claim(found: list[Model], split: str) -> dict:
    """Conjecture 8 on ``split``: Λ_EOT ≤ Λ_IT + TOL in every run and layer."""
    pairs = _runs_of(found)
    diffs = {(m, loss): it_vs_eot(judged(m.mismatch[loss][split]), m.interpolation[loss])
             for m, loss in pairs}
    told = {k: v for k, v in diffs.items() if not v.empty}
    layers = sum(len(d) for d in told.values())
    better = sum(int((d <= TOL).sum()) for d in told.values())
    failing = [f"{_short(m, loss)} {layer_name(layer)} +{up:.3f}" for (m, loss), d in told.items()
               for layer, up in d.items() if up > TOL]
    measured = f"{better}/{layers} layers"
    if told:
        measured += f" (mean change {np.mean([d.mean() for d in told.values()]):+.3f})"
    if failing:
        measured += f"; worse at EOT: {_listed(failing)}"
    return _row(f"{split.capitalize()} NCC mismatch at the IT ≥ at the EOT in every layer"
                + (f" ({_layers_note(found)[2:]})" if _layers_note(found) else ""),
                "Conj. 8; Fig. 2", measured + _no_tpt(pairs),
                None if not told else not failing)


def svsl_claim(found: list[Model], split: str) -> dict:
    """Conjecture 11 on ``split``: SVSL's mismatch ≤ CE's + TOL in almost all layers."""
    diffs = {m: svsl_minus_ce(m, split) for m in found}
    told = {m: d for m, d in diffs.items() if not d.empty}
    layers = sum(len(d) for d in told.values())
    lower = sum(int((d <= TOL).sum()) for d in told.values())
    share = lower / layers if layers else math.nan
    measured = (f"{lower}/{layers} layers" + (f" ({share:.0%})" if layers else "")
                + "".join(f"; {m.label.replace(' / ', '/')}: mean SVSL−CE {d.mean():+.3f}"
                          for m, d in list(told.items())[:LISTED]))
    missing = [m.label for m in found if m not in told]
    if missing:
        measured += f"; left out (no CE and SVSL TPT): {_listed(missing)}"
    return _row(f"SVSL's {split} NCC mismatch ≤ CE's in almost all layers "
                f"(TPT-mean; ≥ {ALMOST_ALL:.0%} of layers{_layers_note(found)})",
                "Conj. 11; §6.2; Fig. 2",
                measured, None if not layers else share >= ALMOST_ALL)


def _both(found: list[Model]) -> list[Model]:
    return [m for m in found if {"ce", "svsl"} <= set(m.runs)]


def _metric_note(found: list[Model]) -> str:
    """What a test-performance claim compares where a model's metric is not the accuracy."""
    named = sorted({DATASET_NAMES.get(m.dataset, m.dataset) for m in found
                    if m.metric == "test_mcc"})
    return f"; {', '.join(named)}: MCC" if named else ""


def _points(model: Model, value: float) -> str:
    """A difference of test metrics as Table 1 prints them: percentage points, MCC × 100."""
    return f"{100 * value:+.2f}" + (" pp" if model.metric == "test_acc" else " MCC×100")


def _no_metric(found: list[Model]) -> str:
    missing = [f"{m.label.replace(' / ', '/')}" for m in _both(found)
               if math.isnan(stages(m, "ce").eot) or math.isnan(stages(m, "svsl").eot)]
    return f"; left out, no test MCC logged: {_listed(missing)}" if missing else ""


def eot_accuracy_claim(found: list[Model]) -> dict:
    """Conjecture 12: SVSL's EOT test metric (accuracy; CoLA's MCC) ≥ CE's in every model."""
    gains = {m: stages(m, "svsl").eot - stages(m, "ce").eot for m in _both(found)}
    gains = {m: g for m, g in gains.items() if not math.isnan(g)}
    better = sum(g >= 0 for g in gains.values())
    measured = f"{better}/{len(gains)} models" + (": " if gains else "") + _listed(
        [f"{m.label.replace(' / ', '/')} {_points(m, g)}" for m, g in gains.items()])
    return _row(f"SVSL's EOT test accuracy ≥ CE's for every dataset (SVSL − CE"
                f"{_metric_note(found)})", "Conj. 12; Table 1", measured + _no_metric(found),
                None if not gains else better == len(gains))


STAGE_NAMES = {"it": "IT", "eot": "EOT", "best": "best epoch"}


def stages_claim(found: list[Model]) -> dict:
    """Table 1: SVSL's test metric ≥ CE's at almost all of IT, EOT and best epoch."""
    compared, better, worse = 0, 0, []
    for m in _both(found):
        ce, svsl = stages(m, "ce"), stages(m, "svsl")
        for stage in ("it", "eot", "best"):
            a, b = getattr(ce, stage), getattr(svsl, stage)
            if math.isnan(a) or math.isnan(b):
                continue
            compared += 1
            better += b >= a
            if b < a:
                worse.append(f"{m.label.replace(' / ', '/')} {STAGE_NAMES[stage]} "
                             f"{_points(m, b - a)}")
    measured = f"{better}/{compared} (model, stage) pairs"
    if worse:
        measured += f"; SVSL below: {_listed(worse)}"
    return _row(f"SVSL's test accuracy ≥ CE's at almost all stages: IT, EOT, best epoch "
                f"(≥ {ALMOST_ALL:.0%} of pairs{_metric_note(found)})", "§6.2; Table 1",
                measured + _no_metric(found),
                None if not compared else better / compared >= ALMOST_ALL)


def best_in_tpt_claim(found: list[Model]) -> dict:
    """Table 1: the best test epoch (of the test metric) lies in the TPT in most runs."""
    pairs = _runs_of(found)
    told = {(m, loss): s for m, loss in pairs
            if (s := stages(m, loss)).best_in_tpt is not None}
    inside = sum(bool(s.best_in_tpt) for s in told.values())
    outside = [f"{_short(m, loss)} best epoch {s.best_epoch} < IT "
               f"{int(m.interpolation[loss])}" for (m, loss), s in told.items()
               if not s.best_in_tpt]
    measured = f"{inside}/{len(told)} runs" + (f"; before TPT: {_listed(outside)}"
                                               if outside else "")
    note = _metric_note(found)
    return _row("Most runs reach their best test accuracy in the TPT"
                + (f" ({note[2:]})" if note else ""), "§6.2; Table 1",
                measured + _no_tpt(pairs) + _no_metric(found),
                None if not told else inside > len(told) / 2)


def _first_layer_eot(model: Model, split: str) -> float:
    """The CE run's first layer's mismatch at EOT (NaN without it)."""
    table = model.mismatch.get("ce", {}).get(split, pd.DataFrame())
    return float(table.iloc[-1, 0]) if not table.empty else math.nan


def reference_claim(found: list[Model]) -> dict:
    """§7 (i): the CE runs' Layer1 train mismatch at EOT near the paper's on MNIST, CIFAR10."""
    parts, verdicts = [], []
    for m in found:
        if m.dataset not in FIRST_LAYER:
            continue
        train, test = _first_layer_eot(m, "train"), _first_layer_eot(m, "test")
        if math.isnan(train):
            continue
        ok = abs(train - FIRST_LAYER[m.dataset]) <= REFERENCE_TOL
        verdicts.append(ok)
        parts.append(f"{m.label.replace(' / ', '/')}: {train:.2f} train, {test:.2f} test "
                     f"(paper ≈ {FIRST_LAYER[m.dataset]:g})")
    measured = "; ".join(parts) if parts else "no MNIST or CIFAR10 model with CE"
    return _row(f"First-layer mismatch as the paper's: ≈ 0.16 on MNIST, ≈ 0.6 on CIFAR10 "
                f"(CE, train, EOT; within {REFERENCE_TOL:g})", "§7 (i); Fig. 2", measured,
                all(verdicts) if verdicts else None)


def difficulty_claim(found: list[Model]) -> dict:
    """§7 (i): MNIST's first-layer mismatch below CIFAR10's (CE, train, EOT)."""
    first = {}
    for m in found:
        if m.dataset in FIRST_LAYER and m.dataset not in first:
            value = _first_layer_eot(m, "train")
            if not math.isnan(value):
                first[m.dataset] = value
    if len(first) < 2:
        return _row("First-layer mismatch lower on the easier dataset: MNIST < CIFAR10",
                    "§7 (i)", "needs an MNIST and a CIFAR10 model with CE", None)
    return _row("First-layer mismatch lower on the easier dataset: MNIST < CIFAR10",
                "§7 (i)", f"MNIST {first['mnist']:.2f}, CIFAR10 {first['cifar10']:.2f}",
                first["mnist"] < first["cifar10"])


def claims(tables: Tables) -> pd.DataFrame:
    """The paper's conjectures checked against the measured numbers (see the module
    docstring)."""
    found = models(tables)
    if not found:
        return claims_frame([_row("CE against SVSL", "§4-§6", "no selected run with a loss "
                                  "axis in the training logs", None)])
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
