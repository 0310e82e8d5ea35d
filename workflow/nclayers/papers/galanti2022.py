"""Galanti & Galanti (2022), "On the implicit bias towards depth minimization in deep neural
networks" (§3.2, §4): Figs. 1-6, the effective depths and the paper's claims, from the tidy
tables.

What the paper measures (§3.1, §4.1): while a classifier trains with cross-entropy, the CDNV
(the class-distance normalised variance, averaged over pairs of classes) and the accuracy of the
nearest class-centre classifier (NCC) of every hidden layer, on the train and the test data,
against the epoch. The *effective depth* of a network (Def. 1) is the first hidden layer whose
features are NCC separable, read as NCC train accuracy ≥ 99 % ("we treat > 99 % fitting of the
training data as a (close to) perfect interpolation", §4.1). Three experiments (§4.2):

- depth sweeps, MLP-d-100 (Fig. 1), ConvNet-d-400 (Fig. 2) and ConvNet-d-100 (Fig. 6): a column
  per depth d, rows CDNV train, CDNV test, NCC train, NCC test, a line per hidden layer, and the
  train accuracy of every depth;
- label noise, MLP-10-500 (Fig. 3) and ConvNet-10-500 (Fig. 4) with 0, 25, 50, 75 % of the train
  labels random: the CDNV of layers 4, 6, 8, 10, a line per noise level, and the NCC accuracy of
  every layer, a panel per noise level, with the network's own accuracy (train, then test);
- ResNet-18 on several datasets (Fig. 5), measured after each group of residual blocks: CDNV
  train and test, and the layers' NCC accuracy next to the network's train and test accuracy.

The preset (workflow/presets/galanti2022/) names its groups by experiment and this module finds
them by those names (:data:`DEPTH`, :data:`NOISE`, :data:`RESNET`; a group ``<name>_…`` counts
as part of ``<name>``, e.g. ``resnet18_plain``, the ResNet-18 datasets trained without
augmentation); a group the config lacks gives a placeholder figure and claims that read None.
The curves come from ``tables/epoch_metrics.csv`` (``train.epoch_metrics``, log-spaced epochs),
the network's accuracy per epoch from ``tables/training.csv``, the final per-layer values
(claims and the effective-depth table) from ``tables/metrics.csv`` at each run's last
checkpoint. Only selected, non-diverged runs are read; seeds are averaged. Layer ``k`` is the
paper's k-th hidden layer, the module ``layer{k}``: the MLP's k-th block, the ConvNet's k-th
3×3 block (its downsampling stem is not one of the d hidden layers of ConvNet-d-w, §4.1),
ResNet-18's k-th stage.

The claims (:func:`claims`) and how each is decided; a threshold is ``Tables.thresholds.ncc``
(NCC separable) or ``Tables.thresholds.interpolation`` (the network fits its train data), both
the paper's 99 % in the full preset:

1. per depth group, the *minimal NCC depth* d* (Def. 2, estimated) is the smallest trained depth
   whose last hidden layer is NCC separable. "The fifth and higher layers enjoy neural
   collapse" (§4.2, Figs. 1, 2, 6): in every deeper network every layer above d* is NCC
   separable (our reading of "collapsed": the paper's Def. 1 criterion; the CDNV of those
   layers is reported beside it).
2. "These networks are effectively of depth 4, which is exactly the minimal depth" (§4.2): the
   effective depth of every network deeper than d* lies within :data:`ABOUT` layer of d*.
3. "A relatively shallow network is sufficiently overparameterized [...] to perfectly fit the
   data. In these cases, we do not necessarily achieve [...] neural collapse" (§4.2): some
   network of the group fits its train data while its last hidden layer is not NCC separable.
4. per noise group (§4.2, Figs. 3, 4), at layer :data:`NOISE_LAYER`: the train CDNV grows with
   the noise (strictly, over the levels trained);
5. its values are the paper's, ≈ 0.28 clean and ≈ 0.6 at 25 %, above 1 at 50 and 75 % ("≈":
   within a factor :data:`ABOUT_FACTOR`, our reading);
6. with noise the network fits its train labels while layer 4 is not NCC separable; clean, both
   fit;
7. layer 4's NCC train accuracy falls as the noise grows (strictly);
8. the effective depth grows with the noise ("NCC depth typically increases", §4): it never
   falls from one level to the next and is deeper at the highest level than clean (a network
   with no NCC-separable layer counts as deeper than its last layer).
9. ResNet-18 (§4.2, Fig. 5), per dataset: "the few top-most evaluated layers [...] tend to
   collapse": the last stage is NCC separable and its train CDNV is below the first stage's;
10. "collapsed layers tend to be redundant [...] their performance already matches that of the
    full network": every NCC-separable stage's NCC test accuracy lies within :data:`NCC_TOL` of
    the network's test accuracy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatter

from nclayers.derived import effective_depth as first_separable
from nclayers.derived import last_epoch
from nclayers.papers import Tables, claims_frame
from nclayers.plots import placeholder


@dataclass(frozen=True)
class Experiment:
    """One of the paper's experiments: the preset's group that runs it and the paper's figure."""

    group: str
    figure: int
    network: str  # the paper's name of the network


# figure name → experiment
DEPTH = {
    "fig1_mlp_depth": Experiment("mlp_depth", 1, "MLP-d-100"),
    "fig2_convnet400_depth": Experiment("convnet400_depth", 2, "ConvNet-d-400"),
    "fig6_convnet100_depth": Experiment("convnet100_depth", 6, "ConvNet-d-100"),
}
NOISE = {
    "fig3_mlp_noise": Experiment("mlp_noise", 3, "MLP-10-500"),
    "fig4_convnet_noise": Experiment("convnet_noise", 4, "ConvNet-10-500"),
}
RESNET = {"fig5_resnet18": Experiment("resnet18", 5, "ResNet-18")}

NOISE_LAYERS = (4, 6, 8, 10)  # Figs. 3, 4, first and third rows
NOISE_LAYER = 4  # the layer §4.2's text reads
PAPER_CDNV = {0.0: 0.28, 0.25: 0.6}  # §4.2: layer 4's CDNV, "≈" these
ABOVE_ONE = 1.0  # §4.2: "CDNV above 1 for the others" (50 and 75 %)
ABOUT_FACTOR = 2.0  # "≈ x": within [x / 2, 2 x] (our reading)
ABOUT = 1  # "about" the minimal depth: within one layer (our reading)
NCC_TOL = 0.02  # Fig. 5: an NCC test accuracy "matches" the network's within this

# The rows of the depth figures: (metric, split, the paper's row title).
DEPTH_ROWS = (("cdnv", "train", "CDNV (train)"), ("cdnv", "test", "CDNV (test)"),
              ("ncc_accuracy", "train", "NCC accuracy (train)"),
              ("ncc_accuracy", "test", "NCC accuracy (test)"))
# A line per hidden layer, shallow blue to deep red (turbo without its near-black ends, which
# the network's black accuracy line would be confused with).
LAYER_CMAP = ListedColormap(colormaps["turbo"](np.linspace(0.08, 0.95, 256)))
LEVEL_CMAP = "plasma"  # a line per noise level or depth
NETWORK_STYLE = {"color": "black", "linewidth": 1.4}  # the network's own accuracy
LAYER_NAME = re.compile(r"layer(\d+)")


def hidden_number(layer: str) -> int | None:
    """The paper's number of a tapped layer: k for ``layer{k}`` (the k-th hidden block or
    ResNet stage); None for the input, the ConvNet's stem, pooled features and logits."""
    match = LAYER_NAME.fullmatch(str(layer))
    return int(match.group(1)) if match else None


# --- the models of one experiment --------------------------------------------------------------

@dataclass(frozen=True)
class Model:
    """A trained network of one group (seeds averaged)."""

    key: float | int | str  # what the figure compares: depth, noise level or dataset
    dataset: str
    arch: str
    depth: int  # number of hidden layers (the deepest layer{k})
    runs: tuple[str, ...]
    curves: pd.DataFrame  # epoch, hidden, split, metric, value (epoch_metrics.csv)
    final: pd.DataFrame  # hidden, split, metric, value at the last checkpoint (metrics.csv)
    accuracy: pd.DataFrame  # epoch, train_acc, test_acc (training.csv)
    train_acc: float  # the network's final accuracies (runs.csv)
    test_acc: float
    effective_depth: float  # first layer with NCC train accuracy ≥ the threshold; NaN: none

    def curve(self, metric: str, split: str, hidden: int) -> pd.Series:
        """``metric`` of layer ``hidden`` against the epoch (empty if not measured)."""
        rows = self.curves[(self.curves["metric"] == metric) & (self.curves["split"] == split)
                           & (self.curves["hidden"] == hidden)]
        return rows.set_index("epoch")["value"].sort_index()

    def by_layer(self, metric: str, split: str = "train") -> pd.Series:
        """``metric`` at the last checkpoint, indexed by hidden layer number."""
        rows = self.final[(self.final["metric"] == metric) & (self.final["split"] == split)]
        return rows.set_index("hidden")["value"].sort_index()

    def at(self, metric: str, hidden: int, split: str = "train") -> float:
        return float(self.by_layer(metric, split).get(hidden, math.nan))

    @property
    def last_ncc(self) -> float:
        """The last hidden layer's NCC train accuracy."""
        return self.at("ncc_accuracy", self.depth)


def _runs(t: Tables, group: str) -> pd.DataFrame:
    """The selected, non-diverged runs of the groups named ``group`` or ``group_…`` (e.g. the
    ResNet-18 datasets with and without augmentation)."""
    runs = t.runs
    if runs.empty or "group" not in runs:
        return runs.iloc[0:0]
    names = runs["group"].astype(str)
    runs = runs[(names == group) | names.str.startswith(group + "_")]
    if "selected" in runs:
        runs = runs[runs["selected"].astype(bool)]
    if "diverged" in runs:
        runs = runs[~runs["diverged"].astype(bool)]
    return runs


def _hidden_rows(table: pd.DataFrame, runs: set[str]) -> pd.DataFrame:
    """Rows of ``runs`` at a hidden layer, with its number in ``hidden``."""
    if table.empty or "layer" not in table:
        return pd.DataFrame(columns=["run", "epoch", "hidden", "split", "metric", "value"])
    rows = table[table["run"].isin(runs)]
    rows = rows.assign(hidden=rows["layer"].map(hidden_number))
    return rows[rows["hidden"].notna()].astype({"hidden": int})


def _mean(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return rows.groupby(keys, as_index=False)["value"].mean()


def _key(run: pd.Series, by: str, depth: int) -> float | int | str:
    if by == "depth":
        return depth
    if by == "label_noise":
        value = run.get("label_noise", math.nan)
        return 0.0 if value is None or value != value else float(value)
    return str(run[by])


def models(t: Tables, group: str, by: str) -> list[Model]:
    """The models of ``group``, one per value of ``by`` (``depth``, ``label_noise`` or
    ``dataset``) and dataset × architecture, sorted by them; seeds averaged."""
    runs = _runs(t, group)
    if runs.empty:
        return []
    final_rows = _hidden_rows(t.metrics, set(runs["run"]))
    if final_rows.empty:
        return []
    final_rows = last_epoch(final_rows)
    depths = final_rows.groupby("run")["hidden"].max()
    runs = runs[runs["run"].isin(depths.index)]
    keyed = runs.assign(depth=runs["run"].map(depths).astype(int))
    keyed = keyed.assign(key=[_key(r, by, r["depth"]) for _, r in keyed.iterrows()])
    curve_rows = _hidden_rows(t.epoch_metrics, set(runs["run"]))
    found = []
    for (dataset, arch, key), part in keyed.groupby(["dataset", "arch", "key"], sort=True):
        names = set(part["run"])
        final = _mean(final_rows[final_rows["run"].isin(names)], ["hidden", "split", "metric"])
        curves = _mean(curve_rows[curve_rows["run"].isin(names)],
                       ["epoch", "hidden", "split", "metric"])
        ncc = final[(final["metric"] == "ncc_accuracy") & (final["split"] == "train")]
        effective = (first_separable(ncc.set_index("hidden")["value"], t.thresholds.ncc)
                     if not ncc.empty else math.nan)
        found.append(Model(key, str(dataset), str(arch), int(part["depth"].max()),
                           tuple(sorted(names)), curves, final, _accuracy(t, names),
                           float(part["final_train_acc"].mean()),
                           float(part["final_test_acc"].mean()), effective))
    return found


def _accuracy(t: Tables, runs: set[str]) -> pd.DataFrame:
    training = t.training
    if training.empty or "train_acc" not in training:
        return pd.DataFrame(columns=["epoch", "train_acc", "test_acc"])
    rows = training[training["run"].isin(runs)]
    return rows.groupby("epoch", as_index=False)[["train_acc", "test_acc"]].mean()


def minimal_ncc_depth(found: list[Model], threshold: float) -> Model | None:
    """The shallowest model whose last hidden layer is NCC separable (Def. 2, estimated over
    the depths trained); None if none is."""
    separable = [m for m in found if m.last_ncc >= threshold]
    return min(separable, key=lambda m: m.depth) if separable else None


# --- drawing ---------------------------------------------------------------------------------

def _log_epochs(ax: Axes) -> None:
    """The paper's log epoch axis; symlog keeps the initialisation (epoch 0) on it."""
    ax.set_xscale("symlog", linthresh=1.0, linscale=0.3)
    ax.set_xlim(left=0)
    ax.tick_params(labelsize="x-small")


def _layer_lines(ax: Axes, model: Model, metric: str, split: str, layers, cmap,
                 norm: BoundaryNorm) -> None:
    for k in layers:
        curve = model.curve(metric, split, k)
        if not curve.empty:
            ax.plot(curve.index, curve.to_numpy(), color=cmap(norm(k)), linewidth=1.1)


class DecimalLogFormatter(LogFormatter):
    """Matplotlib's choice of which log ticks to label, written as decimals (0.05, 2)."""

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return f"{x:g}"


def _metric_axis(ax: Axes, metric: str) -> None:
    if metric == "cdnv":
        ax.set_yscale("log")
        # Decimal labels; minor ticks labelled only where a panel spans less than ~1.5 decades.
        ax.yaxis.set_major_formatter(DecimalLogFormatter())
        ax.yaxis.set_minor_formatter(DecimalLogFormatter(labelOnlyBase=False,
                                                         minor_thresholds=(1.5, 0.6)))
    else:
        ax.set_ylim(-0.02, 1.03)


def _network_line(ax: Axes, model: Model, column: str, **style) -> None:
    if not model.accuracy.empty:
        ax.plot(model.accuracy["epoch"], model.accuracy[column], **{**NETWORK_STYLE, **style})


def _layer_colorbar(fig: Figure, axes, deepest: int, cmap, label: str = "hidden layer"
                    ) -> BoundaryNorm:
    """A colour per hidden layer 1 … ``deepest``, and its colour bar (one band per layer)."""
    norm = BoundaryNorm(np.arange(0.5, deepest + 1.5), cmap.N)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, label=label,
                       shrink=0.6, aspect=30)
    bar.set_ticks(range(1, deepest + 1, max(1, deepest // 8)))
    return norm


def _no_data(experiment: Experiment, what: str) -> Figure:
    return placeholder(f"Galanti et al. Fig. {experiment.figure} needs the group "
                       f"'{experiment.group}' ({experiment.network}) with {what}")


def _has_curves(found: list[Model]) -> bool:
    return any(not m.curves.empty for m in found)


def depth_figure(t: Tables, name: str) -> Figure:
    """Figs. 1, 2, 6: a column per depth, rows CDNV train / test and NCC accuracy train / test
    against the epoch, a line per hidden layer, the effective depth in the column's title;
    below, the train accuracy of every depth."""
    experiment = DEPTH[name]
    found = models(t, experiment.group, "depth")
    if not _has_curves(found):
        return _no_data(experiment, "train.epoch_metrics")
    cols = len(found)
    fig = Figure(figsize=(min(11.0, max(5.5, 2.0 + 2.0 * cols)), 10.0), layout="constrained")
    grid = fig.add_gridspec(len(DEPTH_ROWS) + 1, cols)
    cmap = LAYER_CMAP
    panels = []  # a row per measure, its y axis shared so that the depths compare
    for r in range(len(DEPTH_ROWS)):
        first = fig.add_subplot(grid[r, 0])
        panels.append([first, *(fig.add_subplot(grid[r, c], sharey=first)
                                for c in range(1, cols))])
    norm = _layer_colorbar(fig, [a for row in panels for a in row],
                           max(m.depth for m in found), cmap)
    for c, model in enumerate(found):
        for r, (metric, split, title) in enumerate(DEPTH_ROWS):
            ax = panels[r][c]
            _layer_lines(ax, model, metric, split, range(1, model.depth + 1), cmap, norm)
            if metric == "ncc_accuracy":
                ax.axhline(t.thresholds.ncc, color="grey", linestyle=":", linewidth=0.8)
            _metric_axis(ax, metric)
            _log_epochs(ax)
            if c == 0:
                ax.set_ylabel(title, fontsize="small")
        effective = model.effective_depth
        panels[0][c].set_title(f"{_layers(model.depth)}\neffective depth "
                               f"{_depth_text(effective)}", fontsize="small")
    acc = fig.add_subplot(grid[len(DEPTH_ROWS), :])
    levels = colormaps[LEVEL_CMAP]
    for i, model in enumerate(found):
        _network_line(acc, model, "train_acc", color=levels(0.85 * i / max(cols - 1, 1)),
                      label=_layers(model.depth))
    acc.axhline(t.thresholds.interpolation, color="grey", linestyle=":", linewidth=0.8)
    acc.set_ylabel("train accuracy", fontsize="small")
    acc.set_xlabel("epoch", fontsize="small")
    _log_epochs(acc)
    acc.legend(fontsize="x-small", ncol=min(cols, 5), loc="lower right")
    fig.suptitle(f"Within-class variation collapse with {experiment.network}\n"
                 f"({_models_text(found)}; Galanti et al. Fig. {experiment.figure})",
                 fontsize="medium")
    return fig


def _layers(depth: int) -> str:
    return f"{depth} hidden layer" + ("" if depth == 1 else "s")


def _depth_text(depth: float) -> str:
    return "none" if depth != depth else str(int(depth))


def _models_text(found: list[Model]) -> str:
    return ", ".join(dict.fromkeys(f"{m.dataset} / {m.arch}" for m in found))


def noise_figure(t: Tables, name: str) -> Figure:
    """Figs. 3, 4: rows 1 and 3, the CDNV (train, test) of layers 4, 6, 8, 10 against the epoch,
    a line per noise level; rows 2 and 4, a panel per noise level, the NCC accuracy (train,
    test) of every hidden layer and the network's own accuracy (black)."""
    experiment = NOISE[name]
    found = models(t, experiment.group, "label_noise")
    if not _has_curves(found):
        return _no_data(experiment, "train.epoch_metrics")
    deepest = max(m.depth for m in found)
    shown = [k for k in NOISE_LAYERS if k <= deepest] or [deepest]
    cols = max(len(shown), len(found))
    fig = Figure(figsize=(min(11.0, max(5.5, 2.0 + 2.2 * cols)), 9.0), layout="constrained")
    axes = fig.subplots(4, cols, squeeze=False)
    levels = colormaps[LEVEL_CMAP]
    colour = {m.key: levels(0.85 * i / max(len(found) - 1, 1)) for i, m in enumerate(found)}
    cmap = LAYER_CMAP
    norm = _layer_colorbar(fig, axes[[1, 3]].ravel().tolist(), deepest, cmap)
    for row, split in ((0, "train"), (2, "test")):
        for c, k in enumerate(shown):
            ax = axes[row, c]
            for model in found:
                curve = model.curve("cdnv", split, k)
                ax.plot(curve.index, curve.to_numpy(), color=colour[model.key], linewidth=1.2)
            ax.set_title(f"layer {k}, {split}", fontsize="small")
            _metric_axis(ax, "cdnv")
        axes[row, 0].set_ylabel(f"CDNV ({split})", fontsize="small")
    for row, split in ((1, "train"), (3, "test")):
        for c, model in enumerate(found):
            ax = axes[row, c]
            _layer_lines(ax, model, "ncc_accuracy", split, range(1, model.depth + 1), cmap,
                         norm)
            _network_line(ax, model, f"{split}_acc", linestyle="--")
            ax.set_title(f"{_percent(model.key)} noisy labels, {split}", fontsize="small")
            _metric_axis(ax, "ncc_accuracy")
        axes[row, 0].set_ylabel(f"NCC accuracy ({split})", fontsize="small")
    for ax in axes.ravel():
        if not ax.lines:
            ax.set_visible(False)
        _log_epochs(ax)
    for ax in axes[-1]:
        ax.set_xlabel("epoch", fontsize="small")
    handles = [Line2D([], [], color=colour[m.key], label=f"{_percent(m.key)} noisy labels")
               for m in found]
    handles.append(Line2D([], [], linestyle="--", **NETWORK_STYLE, label="network accuracy"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles),
               fontsize="small")
    fig.suptitle(f"Within-class variation collapse with {experiment.network} and noisy labels\n"
                 f"({_models_text(found)}; Galanti et al. Fig. {experiment.figure})",
                 fontsize="medium")
    return fig


def _percent(share: float) -> str:
    return f"{100 * share:g} %"


def resnet_figure(t: Tables, name: str = "fig5_resnet18") -> Figure:
    """Fig. 5: a column per dataset; CDNV train, CDNV test and the NCC test accuracy of each
    stage against the epoch, with the network's train (dashed) and test (solid) accuracy."""
    experiment = RESNET[name]
    found = models(t, experiment.group, "dataset")
    if not _has_curves(found):
        return _no_data(experiment, "train.epoch_metrics")
    cols = len(found)
    fig = Figure(figsize=(min(11.0, max(5.5, 2.2 + 2.6 * cols)), 7.5), layout="constrained")
    axes = fig.subplots(3, cols, squeeze=False)
    cmap = LAYER_CMAP
    norm = _layer_colorbar(fig, axes.ravel().tolist(), max(m.depth for m in found), cmap,
                           "stage (group of residual blocks)")
    rows = (("cdnv", "train", "CDNV (train)"), ("cdnv", "test", "CDNV (test)"),
            ("ncc_accuracy", "test", "accuracy (test NCC per stage)"))
    for c, model in enumerate(found):
        for r, (metric, split, label) in enumerate(rows):
            ax = axes[r, c]
            _layer_lines(ax, model, metric, split, range(1, model.depth + 1), cmap, norm)
            _metric_axis(ax, metric)
            _log_epochs(ax)
            if c == 0:
                ax.set_ylabel(label, fontsize="small")
        _network_line(axes[2, c], model, "train_acc", linestyle="--")
        _network_line(axes[2, c], model, "test_acc")
        axes[0, c].set_title(f"{model.dataset} / {model.arch}", fontsize="small")
        axes[-1, c].set_xlabel("epoch", fontsize="small")
    handles = [Line2D([], [], linestyle="--", **NETWORK_STYLE, label="network, train"),
               Line2D([], [], **NETWORK_STYLE, label="network, test")]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize="small")
    fig.suptitle("Within-class variation collapse with ResNet-18, after each stage\n"
                 "(Galanti et al. Fig. 5)", fontsize="medium")
    return fig


def _figure(draw: Callable[[Tables, str], Figure], name: str) -> Callable[[Tables], Figure]:
    def figure(t: Tables) -> Figure:
        return draw(t, name)

    figure.__name__ = name
    figure.__doc__ = draw.__doc__
    return figure


FIGURES: dict[str, Callable[[Tables], Figure]] = {
    **{name: _figure(depth_figure, name) for name in DEPTH},
    **{name: _figure(noise_figure, name) for name in NOISE},
    "fig5_resnet18": _figure(resnet_figure, "fig5_resnet18"),
}


# --- the effective depths --------------------------------------------------------------------

def effective_depth_table(t: Tables) -> pd.DataFrame:
    """Per model of the depth and noise groups: depth, label noise, final train accuracy, the
    last hidden layer's NCC train accuracy and the effective depth (first layer with NCC train
    accuracy ≥ the threshold; "none" where no layer reaches it)."""
    rows = []
    for experiment, by in [*((e, "depth") for e in DEPTH.values()),
                           *((e, "label_noise") for e in NOISE.values())]:
        for model in models(t, experiment.group, by):
            rows.append({
                "figure": f"Fig. {experiment.figure}", "network": experiment.network,
                "dataset": model.dataset, "depth": model.depth,
                "label noise": _percent(model.key) if by == "label_noise" else "0 %",
                "train acc": model.train_acc, "NCC train acc, last layer": model.last_ncc,
                "effective depth": _depth_text(model.effective_depth)})
    columns = ["figure", "network", "dataset", "depth", "label noise", "train acc",
               "NCC train acc, last layer", "effective depth"]
    return pd.DataFrame(rows, columns=columns)


# --- claims ----------------------------------------------------------------------------------

def _fmt(value: float, digits: int = 3) -> str:
    return "-" if value != value else f"{value:.{digits}g}"


def _row(claim: str, where: str, measured: str, holds: bool | None) -> dict:
    return {"claim": claim, "where": where, "measured": measured, "holds": holds}


def depth_claims(t: Tables, experiment: Experiment) -> list[dict]:
    """Claims 1-3 for one depth group."""
    name = experiment.network
    texts = (f"{name}: in every network deeper than the minimal NCC depth d*, each layer above "
             f"d* is collapsed (NCC train ≥ {t.thresholds.ncc:g}; min NCC, max CDNV there)",
             f"{name}: the effective depth of the deeper networks is about the minimal NCC "
             f"depth d* (within {ABOUT} layer; the paper: 4 for the MLP, 5 for the ConvNet)",
             f"{name}: a shallow network fits its train data (≥ "
             f"{t.thresholds.interpolation:g}) while its last layer is not NCC separable")
    where = f"§4.2, Fig. {experiment.figure}"
    found = models(t, experiment.group, "depth")
    if not found:
        return [_row(text, where, f"no measured run of group {experiment.group}", None)
                for text in texts]
    base = minimal_ncc_depth(found, t.thresholds.ncc)
    deeper = [m for m in found if base is not None and m.depth > base.depth]
    return [_row(texts[0], where, *_collapsed_above(t, base, deeper)),
            _row(texts[1], where, *_about_minimal(base, deeper)),
            _row(texts[2], where, *_fits_without_collapse(t, found))]


Verdict = tuple[str, bool | None]  # what was measured, and whether the claim holds


def _base_text(base: Model | None, t: Tables) -> str:
    if base is None:
        return f"no depth has its last layer NCC ≥ {t.thresholds.ncc:g}"
    return f"d* = {base.depth} (last layer NCC {base.last_ncc:.3f})"


def _collapsed_above(t: Tables, base: Model | None, deeper: list[Model]) -> Verdict:
    if not deeper:
        return _base_text(base, t) + "; no deeper network", None
    told, parts = [], []
    for m in deeper:
        above = list(range(base.depth + 1, m.depth + 1))
        ncc = m.by_layer("ncc_accuracy").reindex(above)
        cdnv = m.by_layer("cdnv").reindex(above)
        told.append(bool((ncc >= t.thresholds.ncc).all()))
        parts.append(f"d={m.depth}: layers {above[0]}-{above[-1]} NCC ≥ {_fmt(ncc.min())}, "
                     f"CDNV ≤ {_fmt(cdnv.max(), 2)}")
    return _base_text(base, t) + "; " + "; ".join(parts), all(told)


def _about_minimal(base: Model | None, deeper: list[Model]) -> Verdict:
    if not deeper:
        text = "no depth is NCC separable" if base is None else f"d* = {base.depth}"
        return text + "; no deeper network", None
    told = [m.effective_depth == m.effective_depth
            and abs(m.effective_depth - base.depth) <= ABOUT for m in deeper]
    return (f"d* = {base.depth}; effective depth "
            + ", ".join(f"d={m.depth}: {_depth_text(m.effective_depth)}" for m in deeper),
            all(told))


def _fits_without_collapse(t: Tables, found: list[Model]) -> Verdict:
    fitting = [m for m in found if m.train_acc >= t.thresholds.interpolation]
    if not fitting:
        return "no network fits its train data", None
    cases = [m for m in fitting if not m.last_ncc >= t.thresholds.ncc]
    text = "; ".join(f"d={m.depth}: train {m.train_acc:.3f}, last layer NCC {m.last_ncc:.3f}"
                     for m in cases or fitting)
    return ("" if cases else "every fitting network is NCC separable: ") + text, bool(cases)


def noise_claims(t: Tables, experiment: Experiment) -> list[dict]:
    """Claims 4-8 for one noise group."""
    found = models(t, experiment.group, "label_noise")
    where = f"§4.2, Fig. {experiment.figure}"
    name = experiment.network
    k = NOISE_LAYER
    texts = (f"{name}: layer {k}'s train CDNV grows with the label noise (strictly)",
             f"{name}: layer {k}'s train CDNV is ≈ 0.28 clean, ≈ 0.6 at 25 %, > 1 at 50 and "
             f"75 % (≈: within a factor {ABOUT_FACTOR:g})",
             f"{name}: with noise the network fits its labels (≥ {t.thresholds.interpolation:g})"
             f" but layer {k} is not NCC separable (< {t.thresholds.ncc:g}); clean, both fit",
             f"{name}: layer {k}'s NCC train accuracy falls as the noise grows (strictly)",
             f"{name}: the effective depth grows with the noise (never falls; deeper at the "
             f"most noise than clean)")
    reach = [m for m in found if m.depth >= k]
    if not reach:
        missing = (f"no measured run of group {experiment.group}" if not found
                   else f"no network with a layer {k}")
        return [_row(text, where, missing, None) for text in texts]
    cdnv = {m.key: m.at("cdnv", k) for m in reach}
    ncc = {m.key: m.at("ncc_accuracy", k) for m in reach}
    return [_row(texts[0], where, _levels(cdnv), _monotone(cdnv, rising=True)),
            _row(texts[1], where, *_paper_values(cdnv)),
            _row(texts[2], where, *_noisy_fit(t, reach)),
            _row(texts[3], where, _levels(ncc), _monotone(ncc, rising=False)),
            _row(texts[4], where, *_deeper_with_noise(found))]


def _levels(values: dict[float, float]) -> str:
    return ", ".join(f"{_percent(level)}: {_fmt(v)}" for level, v in sorted(values.items()))


def _monotone(values: dict[float, float], rising: bool) -> bool | None:
    series = [v for _, v in sorted(values.items())]
    if len(series) < 2 or any(v != v for v in series):
        return None
    steps = np.diff(series)
    return bool((steps > 0).all() if rising else (steps < 0).all())


def _paper_values(cdnv: dict[float, float]) -> Verdict:
    told, parts = [], []
    for level, value in sorted(cdnv.items()):
        if level in PAPER_CDNV:
            paper = PAPER_CDNV[level]
            ok = paper / ABOUT_FACTOR <= value <= paper * ABOUT_FACTOR
            parts.append(f"{_percent(level)}: {_fmt(value)} (paper ≈ {paper:g})")
        elif level >= 0.5:
            ok = value > ABOVE_ONE
            parts.append(f"{_percent(level)}: {_fmt(value)} (paper > 1)")
        else:
            continue
        told.append(bool(ok))
    if not told:
        return "no noise level the paper gives a value for", None
    return "; ".join(parts), all(told)


def _noisy_fit(t: Tables, found: list[Model]) -> Verdict:
    told, parts = [], []
    for m in found:
        fits = m.train_acc >= t.thresholds.interpolation
        separable = m.at("ncc_accuracy", NOISE_LAYER) >= t.thresholds.ncc
        told.append(bool(fits and (separable if m.key == 0 else not separable)))
        parts.append(f"{_percent(m.key)}: network {m.train_acc:.3f}, layer {NOISE_LAYER} NCC "
                     f"{_fmt(m.at('ncc_accuracy', NOISE_LAYER))}")
    return "; ".join(parts), all(told)


def _deeper_with_noise(found: list[Model]) -> Verdict:
    """A network without an NCC-separable layer counts as one layer deeper than its last."""
    if len(found) < 2:
        return f"{len(found)} noise level", None
    depths = [m.effective_depth if m.effective_depth == m.effective_depth else m.depth + 1
              for m in found]
    holds = bool((np.diff(depths) >= 0).all() and depths[-1] > depths[0])
    text = ", ".join(f"{_percent(m.key)}: {_depth_text(m.effective_depth)}" for m in found)
    return text, holds


def resnet_claims(t: Tables) -> list[dict]:
    """Claims 9-10, over the datasets of the ResNet-18 group."""
    experiment = RESNET["fig5_resnet18"]
    found = models(t, experiment.group, "dataset")
    texts = (f"ResNet-18: the top-most stage collapses (NCC train ≥ {t.thresholds.ncc:g}, train "
             f"CDNV below the first stage's; CDNV first → last, last NCC)",
             f"ResNet-18: collapsed stages are redundant: their NCC test accuracy is within "
             f"{NCC_TOL:g} of the network's (largest gap)")
    where = "§4.2, Fig. 5"
    if not found:
        return [_row(text, where, f"no measured run of group {experiment.group}", None)
                for text in texts]
    top, redundant, top_parts, gap_parts = [], [], [], []
    for m in found:
        cdnv, ncc = m.by_layer("cdnv"), m.by_layer("ncc_accuracy")
        top.append(bool(ncc.iloc[-1] >= t.thresholds.ncc and cdnv.iloc[-1] < cdnv.iloc[0]))
        top_parts.append(f"{m.dataset}: CDNV {_fmt(cdnv.iloc[0], 2)} → {_fmt(cdnv.iloc[-1], 2)}"
                         f", NCC {ncc.iloc[-1]:.3f}")
        collapsed = ncc[ncc >= t.thresholds.ncc].index
        if len(collapsed) == 0:
            gap_parts.append(f"{m.dataset}: no collapsed stage")
            continue
        gap = (m.by_layer("ncc_accuracy", "test").reindex(collapsed) - m.test_acc).abs().max()
        redundant.append(bool(gap <= NCC_TOL))
        gap_parts.append(f"{m.dataset}: stages {', '.join(map(str, collapsed))}, network test "
                         f"{m.test_acc:.3f}, gap {_fmt(gap, 2)}")
    return [_row(texts[0], where, "; ".join(top_parts), all(top)),
            _row(texts[1], where, "; ".join(gap_parts),
                 all(redundant) if redundant else None)]


def claims(t: Tables) -> pd.DataFrame:
    """The paper's claims checked against the measured numbers (see the module docstring)."""
    rows = [row for e in DEPTH.values() for row in depth_claims(t, e)]
    rows += [row for e in NOISE.values() for row in noise_claims(t, e)]
    rows += resnet_claims(t)
    return claims_frame(rows)


TABLES: dict[str, Callable[[Tables], pd.DataFrame]] = {
    "claims": claims,
    "effective_depth": effective_depth_table,
}
