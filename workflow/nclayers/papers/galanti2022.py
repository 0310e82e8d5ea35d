"""Galanti & Galanti (2022), "On the implicit bias towards depth minimization in deep neural
networks" (§3.2, §4): Figs. 1-6, the effective depths and the paper's claims.

What the paper measures (§3.1, §4.1): while a classifier trains with cross-entropy, the CDNV
(the class-distance normalised variance, averaged over pairs of classes) and the accuracy of the
nearest class-centre classifier (NCC) of every hidden layer, train and test, against the epoch.
The *effective depth* of a network (Def. 1) is its first NCC-separable hidden layer: NCC train
accuracy ≥ 99 % ("we treat > 99 % fitting of the training data as a (close to) perfect
interpolation", §4.1). Three experiments (§4.2):

- depth sweeps, MLP-d-100 (Fig. 1), ConvNet-d-400 (Fig. 2) and ConvNet-d-100 (Fig. 6): a column
  per depth d, rows CDNV and NCC accuracy, train and test, a line per hidden layer, and the
  train accuracy of every depth;
- label noise, MLP-10-500 (Fig. 3) and ConvNet-10-500 (Fig. 4), 0, 25, 50, 75 % of the train
  labels random: the CDNV of layers 4, 6, 8, 10, a line per noise level, and a panel per level
  of every layer's NCC accuracy with the network's own (train, then test);
- ResNet-18 on several datasets (Fig. 5), measured after each stage (group of residual blocks):
  CDNV train and test, and the stages' NCC accuracy beside the network's train and test one.

Each figure reads the group ``vocabulary.PAPER_GROUPS["galanti2022"]`` declares for it (and its
family ``<group>_…``, e.g. ``resnet18_plain``); without it, a placeholder figure and claims that
read None. A model is a dataset, architecture, label noise and depth (its selected, non-diverged
runs, seeds averaged): its curves from ``tables/epoch_metrics.csv`` (``train.epoch_metrics``),
its accuracy per epoch from ``tables/training.csv``, its final per-layer values from
``tables/metrics.csv`` at each run's last checkpoint. Layer ``k`` is the paper's k-th hidden
layer, the module ``layer{k}``: the MLP's k-th block, the ConvNet's k-th 3×3 block (its
downsampling stem is not one of ConvNet-d-w's d hidden layers, §4.1), ResNet-18's k-th stage.

The claims (:func:`claims`); "NCC separable" is NCC train accuracy ≥ ``Tables.thresholds.ncc``,
"fits" is train accuracy ≥ ``Tables.thresholds.interpolation`` (both 99 % in the full preset):

1. per depth group, the *minimal NCC depth* d* (Def. 2, estimated) is the smallest trained depth
   whose last hidden layer is NCC separable. "The fifth and higher layers enjoy neural
   collapse" (§4.2, Figs. 1, 2, 6): in every deeper network every layer above d* is NCC
   separable (our reading of "collapsed": Def. 1's criterion; their CDNV reported beside);
2. "These networks are effectively of depth 4, which is exactly the minimal depth": the
   effective depth of every network deeper than d* lies within :data:`ABOUT` layer of d*;
3. "A relatively shallow network is sufficiently overparameterized [...] to perfectly fit the
   data. In these cases, we do not necessarily achieve [...] neural collapse": some network of
   the group fits while its last hidden layer is not NCC separable;
4. per noise group (Figs. 3, 4), at layer :data:`NOISE_LAYER`: the train CDNV grows strictly
   with the noise (over the levels trained);
5. its values are the paper's, ≈ 0.28 clean and ≈ 0.6 at 25 %, above 1 at 50 and 75 % ("≈":
   within a factor :data:`ABOUT_FACTOR`, our reading);
6. with noise the network fits while layer 4 is not NCC separable; clean, both hold;
7. layer 4's NCC train accuracy falls strictly as the noise grows;
8. the effective depth grows with the noise ("NCC depth typically increases", §4): it never
   falls from one level to the next and is deeper at the most noise than clean (a network
   with no NCC-separable layer counts as deeper than its last);
9. ResNet-18 (Fig. 5), per dataset: "the few top-most evaluated layers [...] tend to collapse":
   the last stage is NCC separable and its train CDNV below the first stage's;
10. "collapsed layers tend to be redundant [...] their performance already matches that of the
    full network": every NCC-separable stage's NCC test accuracy is within :data:`NCC_TOL` of
    the network's.
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
from nclayers.papers import Tables, claims_frame, query
from nclayers.papers.query import Model, Verdict, claim, fmt, layer_text, percent
from nclayers.plots import placeholder
from nclayers.vocabulary import PAPER_GROUPS


@dataclass(frozen=True)
class Experiment:
    """One of the paper's experiments: the preset's group that runs it and the paper's figure."""

    group: str
    figure: int
    network: str  # the paper's name of the network


def _experiment(name: str, network: str) -> Experiment:
    group = next(g for g, outputs in PAPER_GROUPS["galanti2022"].items() if name in outputs)
    return Experiment(group, int(name.split("_")[0].removeprefix("fig")), network)


# figure name → experiment
DEPTH = {name: _experiment(name, network) for name, network in (
    ("fig1_mlp_depth", "MLP-d-100"), ("fig2_convnet400_depth", "ConvNet-d-400"),
    ("fig6_convnet100_depth", "ConvNet-d-100"))}
NOISE = {name: _experiment(name, network) for name, network in (
    ("fig3_mlp_noise", "MLP-10-500"), ("fig4_convnet_noise", "ConvNet-10-500"))}
RESNET = {"fig5_resnet18": _experiment("fig5_resnet18", "ResNet-18")}

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


def _hidden(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows at a hidden layer, with its number in ``hidden``."""
    if "layer" not in rows:
        return pd.DataFrame(columns=["run", "epoch", "split", "metric", "value", "hidden"])
    rows = rows.assign(hidden=rows["layer"].map(hidden_number))
    return rows[rows["hidden"].notna()].astype({"hidden": int})


# --- the models of one experiment ------------------------------------------------------------

def group_models(t: Tables, group: str) -> list[Model]:
    """The models of ``group`` (seeds together) by dataset, architecture, label noise (the
    design's ``dataset.label_noise``; none: 0) and depth (the deepest layer{k} measured)."""
    rows = query.runs(t, group)
    if rows.empty:
        return []
    depths = _hidden(query.layer_rows(t.metrics, rows["run"], None)).groupby("run")["hidden"].max()
    rows = rows[rows["run"].isin(depths.index)]
    noise = rows["run"].map(t.design.set_index("run")["dataset.label_noise"]).fillna(0.0)
    rows = rows.assign(depth=rows["run"].map(depths), label_noise=noise)
    return query.models(rows, ("dataset", "arch", "label_noise", "depth"), sort=True)


def final(t: Tables, m: Model, metric: str = "ncc_accuracy", split: str = "train") -> pd.Series:
    """Seed mean of ``metric`` at the runs' last checkpoint (metrics.csv), by hidden layer."""
    rows = last_epoch(_hidden(query.layer_rows(t.metrics, m.runs, None)))
    return rows[(rows["metric"] == metric) & (rows["split"] == split)].groupby("hidden")[
        "value"].mean()


def at(t: Tables, m: Model, layer: int | None = None, metric: str = "ncc_accuracy") -> float:
    """Train ``metric`` of hidden layer ``layer`` (None: the last) at the last checkpoint."""
    return float(final(t, m, metric).get(m.key["depth"] if layer is None else layer, math.nan))


def effective_depth(t: Tables, m: Model) -> float:
    """The first hidden layer with NCC train accuracy ≥ the threshold (Def. 1); NaN: none."""
    # Of the seed-mean NCC curve over the layer{k} only (no input, stem or pooled features), so
    # not query.derived's per-run value over every tapped layer index: computed here.
    return first_separable(final(t, m), t.thresholds.ncc)


def _curves(t: Tables, m: Model, metric: str, split: str) -> dict[int, pd.Series]:
    """Seed mean of ``metric`` against the epoch (epoch_metrics.csv), per hidden layer."""
    rows = _hidden(query.layer_rows(t.epoch_metrics, m.runs, split))
    rows = rows[rows["metric"] == metric]
    return {k: part.groupby("epoch")["value"].mean() for k, part in rows.groupby("hidden")}


# --- drawing ---------------------------------------------------------------------------------

def _layer_lines(ax: Axes, curves: dict[int, pd.Series], norm: BoundaryNorm) -> None:
    for k, curve in curves.items():
        ax.plot(curve.index, curve.to_numpy(), color=LAYER_CMAP(norm(k)), linewidth=1.1)


class DecimalLogFormatter(LogFormatter):
    """Matplotlib's choice of which log ticks to label, written as decimals (0.05, 2)."""

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return f"{x:g}"


def _axes(ax: Axes, metric: str | None = None) -> None:
    """The metric's y axis and the paper's log epoch axis (symlog: the initialisation, epoch 0,
    stays on it), once the lines are drawn (the epoch axis' limits are fixed then)."""
    if metric == "cdnv":
        ax.set_yscale("log")
        # Decimal labels; minor ticks labelled only where a panel spans less than ~1.5 decades.
        ax.yaxis.set_major_formatter(DecimalLogFormatter())
        ax.yaxis.set_minor_formatter(DecimalLogFormatter(labelOnlyBase=False,
                                                         minor_thresholds=(1.5, 0.6)))
    elif metric is not None:
        ax.set_ylim(-0.02, 1.03)
    ax.set_xscale("symlog", linthresh=1.0, linscale=0.3)
    ax.set_xlim(left=0)
    ax.tick_params(labelsize="x-small")


def _columns(t: Tables, found: list[Model], panels, rows, norm: BoundaryNorm,
             threshold: float | None = None) -> None:
    """Column c: model c's ``rows`` (metric, split, title) against the epoch, a line per layer
    (and the NCC ``threshold``)."""
    for c, m in enumerate(found):
        for r, (metric, split, title) in enumerate(rows):
            ax = panels[r][c]
            _layer_lines(ax, _curves(t, m, metric, split), norm)
            if metric == "ncc_accuracy" and threshold is not None:
                ax.axhline(threshold, color="grey", linestyle=":", linewidth=0.8)
            _axes(ax, metric)
            if c == 0:
                ax.set_ylabel(title, fontsize="small")


def _network_line(ax: Axes, t: Tables, m: Model, column: str, **style) -> None:
    """The network's own accuracy (training.csv, seeds averaged) against the epoch."""
    if column in t.training:
        acc = t.training[t.training["run"].isin(m.runs)].groupby("epoch")[column].mean()
        if not acc.empty:
            ax.plot(acc.index, acc.to_numpy(), **{**NETWORK_STYLE, **style})


def _layer_colorbar(fig: Figure, axes, deepest: int, label: str = "hidden layer"
                    ) -> BoundaryNorm:
    """A colour per hidden layer 1 … ``deepest``, and its colour bar (one band per layer)."""
    norm = BoundaryNorm(np.arange(0.5, deepest + 1.5), LAYER_CMAP.N)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=LAYER_CMAP), ax=axes, label=label,
                       shrink=0.6, aspect=30)
    bar.set_ticks(range(1, deepest + 1, max(1, deepest // 8)))
    return norm


def _suptitle(fig: Figure, e: Experiment, found: list[Model], what: str = "") -> None:
    drawn = ", ".join(dict.fromkeys(f"{m.dataset} / {m.arch}" for m in found))
    fig.suptitle(f"Within-class variation collapse with {e.network}{what}\n"
                 f"({drawn}; Galanti et al. Fig. {e.figure})", fontsize="medium")


def depth_figure(t: Tables, e: Experiment, found: list[Model]) -> Figure:
    """Figs. 1, 2, 6: a column per depth, rows CDNV train / test and NCC accuracy train / test
    against the epoch, a line per hidden layer, the effective depth in the column's title;
    below, the train accuracy of every depth."""
    cols = len(found)
    fig = Figure(figsize=(min(11.0, max(5.5, 2.0 + 2.0 * cols)), 10.0), layout="constrained")
    grid = fig.add_gridspec(len(DEPTH_ROWS) + 1, cols)
    panels = []  # a row per measure, its y axis shared so that the depths compare
    for r in range(len(DEPTH_ROWS)):
        first = fig.add_subplot(grid[r, 0])
        panels.append([first, *(fig.add_subplot(grid[r, c], sharey=first)
                                for c in range(1, cols))])
    norm = _layer_colorbar(fig, [a for row in panels for a in row],
                           max(m.key["depth"] for m in found))
    _columns(t, found, panels, DEPTH_ROWS, norm, t.thresholds.ncc)
    acc = fig.add_subplot(grid[len(DEPTH_ROWS), :])
    levels = colormaps[LEVEL_CMAP]
    for c, m in enumerate(found):
        layers = f"{m.key['depth']} hidden layer" + ("" if m.key["depth"] == 1 else "s")
        panels[0][c].set_title(f"{layers}\neffective depth {layer_text(effective_depth(t, m))}",
                               fontsize="small")
        _network_line(acc, t, m, "train_acc", color=levels(0.85 * c / max(cols - 1, 1)),
                      label=layers)
    acc.axhline(t.thresholds.interpolation, color="grey", linestyle=":", linewidth=0.8)
    acc.set_ylabel("train accuracy", fontsize="small")
    acc.set_xlabel("epoch", fontsize="small")
    _axes(acc)
    acc.legend(fontsize="x-small", ncol=min(cols, 5), loc="lower right")
    _suptitle(fig, e, found)
    return fig


def noise_figure(t: Tables, e: Experiment, found: list[Model]) -> Figure:
    """Figs. 3, 4: rows 1 and 3, the CDNV (train, test) of layers 4, 6, 8, 10 against the epoch,
    a line per noise level; rows 2 and 4, a panel per noise level, the NCC accuracy (train,
    test) of every hidden layer and the network's own accuracy (black)."""
    deepest = max(m.key["depth"] for m in found)
    shown = [k for k in NOISE_LAYERS if k <= deepest] or [deepest]
    cols = max(len(shown), len(found))
    fig = Figure(figsize=(min(11.0, max(5.5, 2.0 + 2.2 * cols)), 9.0), layout="constrained")
    axes = fig.subplots(4, cols, squeeze=False)
    levels = colormaps[LEVEL_CMAP]
    colour = {m.key["label_noise"]: levels(0.85 * i / max(len(found) - 1, 1))
              for i, m in enumerate(found)}
    norm = _layer_colorbar(fig, axes[[1, 3]].ravel().tolist(), deepest)
    for row, split in ((0, "train"), (2, "test")):
        cdnv = [_curves(t, m, "cdnv", split) for m in found]
        for c, k in enumerate(shown):
            for m, curves in zip(found, cdnv, strict=True):
                curve = curves.get(k, pd.Series(dtype=float))
                axes[row, c].plot(curve.index, curve.to_numpy(),
                                  color=colour[m.key["label_noise"]], linewidth=1.2)
            axes[row, c].set_title(f"layer {k}, {split}", fontsize="small")
        axes[row, 0].set_ylabel(f"CDNV ({split})", fontsize="small")
        for c, m in enumerate(found):
            ax = axes[row + 1, c]
            _layer_lines(ax, _curves(t, m, "ncc_accuracy", split), norm)
            _network_line(ax, t, m, f"{split}_acc", linestyle="--")
            ax.set_title(f"{percent(m.key['label_noise'])} noisy labels, {split}",
                         fontsize="small")
        axes[row + 1, 0].set_ylabel(f"NCC accuracy ({split})", fontsize="small")
    for row, metric in zip(axes, ("cdnv", "ncc_accuracy") * 2, strict=True):
        for ax in row:
            ax.set_visible(bool(ax.lines))
            _axes(ax, metric)
    for ax in axes[-1]:
        ax.set_xlabel("epoch", fontsize="small")
    handles = [Line2D([], [], color=colour[m.key["label_noise"]],
                      label=f"{percent(m.key['label_noise'])} noisy labels") for m in found]
    handles.append(Line2D([], [], linestyle="--", **NETWORK_STYLE, label="network accuracy"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles),
               fontsize="small")
    _suptitle(fig, e, found, " and noisy labels")
    return fig


def resnet_figure(t: Tables, e: Experiment, found: list[Model]) -> Figure:
    """Fig. 5: a column per dataset; CDNV train, CDNV test and the NCC test accuracy of each
    stage against the epoch, with the network's train (dashed) and test (solid) accuracy."""
    cols = len(found)
    fig = Figure(figsize=(min(11.0, max(5.5, 2.2 + 2.6 * cols)), 7.5), layout="constrained")
    axes = fig.subplots(3, cols, squeeze=False)
    norm = _layer_colorbar(fig, axes.ravel().tolist(), max(m.key["depth"] for m in found),
                           "stage (group of residual blocks)")
    _columns(t, found, axes, (("cdnv", "train", "CDNV (train)"), ("cdnv", "test", "CDNV (test)"),
                              ("ncc_accuracy", "test", "accuracy (test NCC per stage)")), norm)
    for c, m in enumerate(found):
        _network_line(axes[2, c], t, m, "train_acc", linestyle="--")
        _network_line(axes[2, c], t, m, "test_acc")
        axes[0, c].set_title(f"{m.dataset} / {m.arch}", fontsize="small")
        axes[-1, c].set_xlabel("epoch", fontsize="small")
    handles = [Line2D([], [], linestyle="--", **NETWORK_STYLE, label="network, train"),
               Line2D([], [], **NETWORK_STYLE, label="network, test")]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize="small")
    fig.suptitle("Within-class variation collapse with ResNet-18, after each stage\n"
                 "(Galanti et al. Fig. 5)", fontsize="medium")
    return fig


def _figure(draw: Callable[[Tables, Experiment, list[Model]], Figure], e: Experiment
            ) -> Callable[[Tables], Figure]:
    """``draw`` of the experiment's models; a placeholder where they have no curves."""
    def figure(t: Tables) -> Figure:
        found = group_models(t, e.group)
        if _hidden(query.layer_rows(t.epoch_metrics, [r for m in found for r in m.runs],
                                    None)).empty:
            return placeholder(f"Galanti et al. Fig. {e.figure} needs the group '{e.group}' "
                               f"({e.network}) with train.epoch_metrics")
        return draw(t, e, found)

    return figure


FIGURES: dict[str, Callable[[Tables], Figure]] = {
    name: _figure(draw, e) for experiments, draw in
    ((DEPTH, depth_figure), (NOISE, noise_figure), (RESNET, resnet_figure))
    for name, e in experiments.items()}


# --- the effective depths --------------------------------------------------------------------

def effective_depth_table(t: Tables) -> pd.DataFrame:
    """Per model of the depth and noise groups: depth, label noise, final train accuracy, the
    last hidden layer's NCC train accuracy and the effective depth ("none": no layer)."""
    rows = [{"figure": f"Fig. {e.figure}", "network": e.network, "dataset": m.dataset,
             "depth": m.key["depth"], "label noise": percent(m.key["label_noise"]),
             "train acc": m.final(t, "final_train_acc"), "NCC train acc, last layer": at(t, m),
             "effective depth": layer_text(effective_depth(t, m))}
            for e in (*DEPTH.values(), *NOISE.values()) for m in group_models(t, e.group)]
    return pd.DataFrame(rows, columns=["figure", "network", "dataset", "depth", "label noise",
                                       "train acc", "NCC train acc, last layer",
                                       "effective depth"])


# --- claims ----------------------------------------------------------------------------------

def _cannot_tell(texts: tuple[str, ...], where: str, why: str) -> list[dict]:
    return [claim(text, where, why, None) for text in texts]


def depth_claims(t: Tables, experiment: Experiment) -> list[dict]:
    """Claims 1-3 for one depth group."""
    name, where = experiment.network, f"§4.2, Fig. {experiment.figure}"
    texts = (f"{name}: in every network deeper than the minimal NCC depth d*, each layer above "
             f"d* is collapsed (NCC train ≥ {t.thresholds.ncc:g}; min NCC, max CDNV there)",
             f"{name}: the effective depth of the deeper networks is about the minimal NCC "
             f"depth d* (within {ABOUT} layer; the paper: 4 for the MLP, 5 for the ConvNet)",
             f"{name}: a shallow network fits its train data (≥ "
             f"{t.thresholds.interpolation:g}) while its last layer is not NCC separable")
    found = group_models(t, experiment.group)
    if not found:
        return _cannot_tell(texts, where, f"no measured run of group {experiment.group}")
    # d*: the shallowest model whose last layer is NCC separable (Def. 2, over the depths run)
    base = min((m for m in found if at(t, m) >= t.thresholds.ncc),
               key=lambda m: m.key["depth"], default=None)
    deeper = [m for m in found if base is not None and m.key["depth"] > base.key["depth"]]
    return [claim(texts[0], where, *_collapsed_above(t, base, deeper)),
            claim(texts[1], where, *_about_minimal(t, base, deeper)),
            claim(texts[2], where, *_fits_without_collapse(t, found))]


def _collapsed_above(t: Tables, base: Model | None, deeper: list[Model]) -> Verdict:
    text = (f"no depth has its last layer NCC ≥ {t.thresholds.ncc:g}" if base is None else
            f"d* = {base.key['depth']} (last layer NCC {at(t, base):.3f})")
    if not deeper:
        return text + "; no deeper network", None
    told, parts = [], []
    for m in deeper:
        above = list(range(base.key["depth"] + 1, m.key["depth"] + 1))
        ncc, cdnv = final(t, m).reindex(above), final(t, m, "cdnv").reindex(above)
        told.append(bool((ncc >= t.thresholds.ncc).all()))
        parts.append(f"d={m.key['depth']}: layers {above[0]}-{above[-1]} NCC ≥ "
                     f"{fmt(ncc.min())}, CDNV ≤ {fmt(cdnv.max(), 2)}")
    return text + "; " + "; ".join(parts), all(told)


def _about_minimal(t: Tables, base: Model | None, deeper: list[Model]) -> Verdict:
    if not deeper:
        text = "no depth is NCC separable" if base is None else f"d* = {base.key['depth']}"
        return text + "; no deeper network", None
    effective = [effective_depth(t, m) for m in deeper]  # NaN (none) is not about d*
    return (f"d* = {base.key['depth']}; effective depth " + ", ".join(
                f"d={m.key['depth']}: {layer_text(e)}"
                for m, e in zip(deeper, effective, strict=True)),
            all(abs(e - base.key["depth"]) <= ABOUT for e in effective))


def _fits_without_collapse(t: Tables, found: list[Model]) -> Verdict:
    fitting = [m for m in found if m.final(t, "final_train_acc") >= t.thresholds.interpolation]
    if not fitting:
        return "no network fits its train data", None
    cases = [m for m in fitting if not at(t, m) >= t.thresholds.ncc]
    text = "; ".join(f"d={m.key['depth']}: train {m.final(t, 'final_train_acc'):.3f}, last "
                     f"layer NCC {at(t, m):.3f}" for m in cases or fitting)
    return ("" if cases else "every fitting network is NCC separable: ") + text, bool(cases)


def noise_claims(t: Tables, experiment: Experiment) -> list[dict]:
    """Claims 4-8 for one noise group."""
    name, where, k = experiment.network, f"§4.2, Fig. {experiment.figure}", NOISE_LAYER
    texts = (f"{name}: layer {k}'s train CDNV grows with the label noise (strictly)",
             f"{name}: layer {k}'s train CDNV is ≈ 0.28 clean, ≈ 0.6 at 25 %, > 1 at 50 and "
             f"75 % (≈: within a factor {ABOUT_FACTOR:g})",
             f"{name}: with noise the network fits its labels (≥ {t.thresholds.interpolation:g})"
             f" but layer {k} is not NCC separable (< {t.thresholds.ncc:g}); clean, both fit",
             f"{name}: layer {k}'s NCC train accuracy falls as the noise grows (strictly)",
             f"{name}: the effective depth grows with the noise (never falls; deeper at the "
             f"most noise than clean)")
    found = group_models(t, experiment.group)
    reach = [m for m in found if m.key["depth"] >= k]
    if not reach:
        return _cannot_tell(texts, where, f"no measured run of group {experiment.group}"
                            if not found else f"no network with a layer {k}")
    cdnv = {m.key["label_noise"]: at(t, m, k, "cdnv") for m in reach}
    ncc = {m.key["label_noise"]: at(t, m, k) for m in reach}
    return [claim(texts[0], where, *_trend(cdnv, rising=True)),
            claim(texts[1], where, *_paper_values(cdnv)),
            claim(texts[2], where, *_noisy_fit(t, reach)),
            claim(texts[3], where, *_trend(ncc, rising=False)),
            claim(texts[4], where, *_deeper_with_noise(t, found))]


def _trend(values: dict[float, float], rising: bool) -> Verdict:
    """The values by noise level; whether they rise (fall) strictly (None: < 2 or a NaN)."""
    levels = sorted(values.items())
    steps = np.diff([v for _, v in levels])  # NaN next to a missing value
    return (", ".join(f"{percent(level)}: {fmt(v)}" for level, v in levels),
            None if not len(steps) or np.isnan(steps).any()
            else bool((steps > 0).all() if rising else (steps < 0).all()))


def _paper_values(cdnv: dict[float, float]) -> Verdict:
    told, parts = [], []
    for level, value in sorted(cdnv.items()):
        if level in PAPER_CDNV:
            paper = PAPER_CDNV[level]
            told.append(paper / ABOUT_FACTOR <= value <= paper * ABOUT_FACTOR)
            parts.append(f"{percent(level)}: {fmt(value)} (paper ≈ {paper:g})")
        elif level >= 0.5:
            told.append(value > ABOVE_ONE)
            parts.append(f"{percent(level)}: {fmt(value)} (paper > 1)")
    if not told:
        return "no noise level the paper gives a value for", None
    return "; ".join(parts), all(told)


def _noisy_fit(t: Tables, found: list[Model]) -> Verdict:
    told, parts = [], []
    for m in found:
        train, ncc = m.final(t, "final_train_acc"), at(t, m, NOISE_LAYER)
        separable = ncc >= t.thresholds.ncc
        told.append(train >= t.thresholds.interpolation
                    and (separable if m.key["label_noise"] == 0 else not separable))
        parts.append(f"{percent(m.key['label_noise'])}: network {train:.3f}, layer "
                     f"{NOISE_LAYER} NCC {fmt(ncc)}")
    return "; ".join(parts), all(told)


def _deeper_with_noise(t: Tables, found: list[Model]) -> Verdict:
    """A network without an NCC-separable layer counts as one layer deeper than its last."""
    if len(found) < 2:
        return f"{len(found)} noise level", None
    effective = [effective_depth(t, m) for m in found]
    depths = [e if e == e else m.key["depth"] + 1 for m, e in zip(found, effective, strict=True)]
    return (", ".join(f"{percent(m.key['label_noise'])}: {layer_text(e)}"
                      for m, e in zip(found, effective, strict=True)),
            bool((np.diff(depths) >= 0).all() and depths[-1] > depths[0]))


def resnet_claims(t: Tables) -> list[dict]:
    """Claims 9-10, over the datasets of the ResNet-18 group."""
    experiment, where = RESNET["fig5_resnet18"], "§4.2, Fig. 5"
    texts = (f"ResNet-18: the top-most stage collapses (NCC train ≥ {t.thresholds.ncc:g}, train "
             f"CDNV below the first stage's; CDNV first → last, last NCC)",
             f"ResNet-18: collapsed stages are redundant: their NCC test accuracy is within "
             f"{NCC_TOL:g} of the network's (largest gap)")
    found = group_models(t, experiment.group)
    if not found:
        return _cannot_tell(texts, where, f"no measured run of group {experiment.group}")
    top, redundant, top_parts, gap_parts = [], [], [], []
    for m in found:
        cdnv, ncc, test = final(t, m, "cdnv"), final(t, m), m.final(t, "final_test_acc")
        top.append(ncc.iloc[-1] >= t.thresholds.ncc and cdnv.iloc[-1] < cdnv.iloc[0])
        top_parts.append(f"{m.dataset}: CDNV {fmt(cdnv.iloc[0], 2)} → {fmt(cdnv.iloc[-1], 2)}"
                         f", NCC {ncc.iloc[-1]:.3f}")
        collapsed = ncc[ncc >= t.thresholds.ncc].index
        if len(collapsed) == 0:
            gap_parts.append(f"{m.dataset}: no collapsed stage")
            continue
        gap = (final(t, m, "ncc_accuracy", "test").reindex(collapsed) - test).abs().max()
        redundant.append(gap <= NCC_TOL)
        gap_parts.append(f"{m.dataset}: stages {', '.join(map(str, collapsed))}, network test "
                         f"{test:.3f}, gap {fmt(gap, 2)}")
    return [claim(texts[0], where, "; ".join(top_parts), all(top)),
            claim(texts[1], where, "; ".join(gap_parts), query.all_told(redundant))]


def claims(t: Tables) -> pd.DataFrame:
    """The paper's claims checked against the measured numbers (see the module docstring)."""
    rows = [row for e in DEPTH.values() for row in depth_claims(t, e)]
    rows += [row for e in NOISE.values() for row in noise_claims(t, e)]
    return claims_frame(rows + resnet_claims(t))


TABLES: dict[str, Callable[[Tables], pd.DataFrame]] = {
    "claims": claims,
    "effective_depth": effective_depth_table,
}
