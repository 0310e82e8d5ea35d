"""Galanti & Galanti (2022), "On the implicit bias towards depth minimization in deep neural
networks" (§3.2, §4): Figs. 1-6, the effective depths and the paper's claims.

While a classifier trains with cross-entropy, the paper follows every hidden layer's CDNV (the
class-distance normalised variance, averaged over pairs of classes) and nearest class-centre
(NCC) accuracy, train and test (§3.1, §4.1). A network's *effective depth* (Def. 1) is its first
NCC-separable hidden layer: NCC train accuracy ≥ 99 % ("> 99 % fitting of the training data as a
(close to) perfect interpolation", §4.1). Experiments (§4.2): depth sweeps (Figs. 1, 2, 6), label
noise (Figs. 3, 4), ResNet-18 on several datasets (Fig. 5); each reads its group of
``PAPER_GROUPS["galanti2022"]`` (or its family ``<group>_…``; none: placeholders, claims None).

The CDNV of a split is the paper's (§3.1): that split's own class means and variances, so on the
test split ``cdnv_own`` (``cdnv`` measures the test features around the train means; on the
train split both are the same number). Tables without ``cdnv_own`` per epoch (measured so only
since it became a light metric) show "not measured" in the test-CDNV panels.

The claims ("NCC separable": NCC train accuracy ≥ ``thresholds.ncc``; "fits": train accuracy ≥
``thresholds.interpolation``; both 99 % in the full preset), each with the paper's value or
words and its place beside the measured numbers. Per depth group, with d* (the minimal NCC
depth, Def. 2) the smallest depth trained whose last layer is NCC separable:
1. "The fifth and higher layers enjoy neural collapse": in every deeper network each layer above
   d* is NCC separable (our reading of "collapsed"; their CDNV reported beside);
2. "effectively of depth 4" (MLP-d-100), "the minimal depth is 5" (ConvNet-d-400): every network
   deeper than the paper's number (:data:`PAPER_DEPTH`) has exactly it as effective depth (the
   paper states none for ConvNet-d-100: None);
3. "which is exactly the minimal depth": every network deeper than d* has effective depth d*;
4. "we do not necessarily achieve [...] neural collapse" with a shallow network that fits: some
   network fits while its last layer is not NCC separable;
5. "the degree of neural collapse (on the training samples) generally improves when increasing
   the number of layers" (§1.1): the last hidden layer's train CDNV falls in most of the steps
   from one depth trained to the next (:func:`query.majority`; "generally": not every step).

Per noise group, at layer :data:`NOISE_LAYER` (the paper's "fourth layer", MLP-d-100's minimal
depth):
6. the train CDNV grows strictly with the noise (over the levels trained);
7. it is ≈ 0.28 clean, ≈ 0.6 at 25 % (within a factor :data:`ABOUT_FACTOR`), > 1 at 50, 75 %;
8. with noise the network fits while the layer is not NCC separable; clean, both hold;
9. its NCC train accuracy falls strictly as the noise grows;
10. "the NCC accuracy rate of the minimal depth is more predictive of the actual test
    performance than the training accuracy rate": over the noise levels, the layer's NCC train
    accuracy lies nearer the network's test accuracy (mean absolute gap) than the network's
    train accuracy does (our reading of "more predictive"; at a network's own effective depth
    the NCC train accuracy is ≥ 99 % by definition, so the paper's fixed layer is read);
11. "NCC depth typically increases" (§4): the effective depth never falls as the noise grows and
    is deeper at the most noise than clean (no NCC-separable layer: deeper than the last).

ResNet-18, per dataset:
12. "the few top-most evaluated layers [...] tend to collapse": the last stage is NCC separable
    and its train CDNV below the first stage's;
13. "collapsed layers tend to be redundant": every NCC-separable stage's NCC test accuracy is
    within :data:`NCC_TOL` of the network's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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
from matplotlib.ticker import LogFormatter

from nclayers.derived import effective_depth as first_separable
from nclayers.papers import Tables, claims_frame, query
from nclayers.papers.query import Model, Verdict, claim, fmt, layer_text, percent
from nclayers.plots import placeholder
from nclayers.vocabulary import PAPER_GROUPS


@dataclass(frozen=True)
class Experiment:
    """One of the paper's experiments (its kind: depth, noise or resnet)."""

    group: str  # the preset's group that runs it: the contract's for the figure
    figure: int
    network: str  # the paper's name of the network
    kind: str


# figure name → experiment, in the order of the figures and of the claims
EXPERIMENTS = {name: Experiment(
    next(g for g, outputs in PAPER_GROUPS["galanti2022"].items() if name in outputs),
    int(name.split("_")[0].removeprefix("fig")), network, kind) for name, network, kind in (
        ("fig1_mlp_depth", "MLP-d-100", "depth"),
        ("fig2_convnet400_depth", "ConvNet-d-400", "depth"),
        ("fig6_convnet100_depth", "ConvNet-d-100", "depth"),
        ("fig3_mlp_noise", "MLP-10-500", "noise"),
        ("fig4_convnet_noise", "ConvNet-10-500", "noise"),
        ("fig5_resnet18", "ResNet-18", "resnet"))}

NOISE_LAYERS = (4, 6, 8, 10)  # Figs. 3, 4, first and third rows
NOISE_LAYER = 4  # the layer §4.2's text reads
PAPER_CDNV = {0.0: 0.28, 0.25: 0.6}  # §4.2: layer 4's CDNV, "≈" these
ABOVE_ONE = 1.0  # §4.2: "CDNV above 1 for the others" (50 and 75 %)
ABOUT_FACTOR = 2.0  # "≈ x": within [x / 2, 2 x] (our reading)
# §4.2: the minimal depth the paper states (and the effective depth of its deeper networks);
# none for ConvNet-d-100 (Fig. 6)
PAPER_DEPTH = {"MLP-d-100": 4, "ConvNet-d-400": 5}
NCC_TOL = 0.02  # Fig. 5: an NCC test accuracy "matches" the network's within this

# The CDNV of a split (§3.1): its own class means and variances. On the test split that is
# ``cdnv_own`` (``cdnv`` measures the test features around the *train* means); on the train
# split the two are the same number, and ``cdnv`` is read.
CDNV = {"train": "cdnv", "test": "cdnv_own"}
# The rows of the depth figures: (metric, split, the paper's row title).
DEPTH_ROWS = tuple((CDNV[split] if metric == "cdnv" else metric, split, f"{title} ({split})")
                   for metric, title in (("cdnv", "CDNV"), ("ncc_accuracy", "NCC accuracy"))
                   for split in ("train", "test"))
# A line per hidden layer, shallow blue to deep red (turbo without its near-black ends, which
# the network's black accuracy line would be confused with).
LAYER_CMAP = ListedColormap(colormaps["turbo"](np.linspace(0.08, 0.95, 256)))
NETWORK_STYLE = {"color": "black", "linewidth": 1.4}  # the network's own accuracy


def hidden_number(layer: str) -> int | None:
    """The paper's number of a tapped layer: k for ``layer{k}`` (the MLP's k-th block, the
    ConvNet's k-th 3×3 block, ResNet-18's k-th stage); None for the input, pooled features,
    logits and the ConvNet's stem (not one of ConvNet-d-w's d hidden layers, §4.1)."""
    match = re.fullmatch(r"layer(\d+)", str(layer))
    return int(match.group(1)) if match else None


def _hidden(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows at a hidden layer, with its number in ``hidden``."""
    rows = rows.assign(hidden=rows["layer"].map(hidden_number))
    return rows[rows["hidden"].notna()].astype({"hidden": int})


# --- the models of one experiment ------------------------------------------------------------

def group_models(t: Tables, group: str) -> list[Model]:
    """The models of ``group`` (seeds together) by dataset, architecture, label noise (the
    design's ``dataset.label_noise``; none: 0) and depth (the deepest layer{k} measured)."""
    rows = query.runs(t, group)
    if rows.empty:  # (then metrics.csv may have no columns to find the layers in)
        return []
    depths = _hidden(query.layer_rows(t.metrics, rows["run"], None)).groupby("run")["hidden"].max()
    rows = rows[rows["run"].isin(depths.index)]
    rows = rows.assign(depth=rows["run"].map(depths), label_noise=rows["run"].map(
        query.recipe(t, "dataset.label_noise")).fillna(0.0))
    return query.models(rows, ("dataset", "arch", "label_noise", "depth"), sort=True)


def final(t: Tables, m: Model, metric: str = "ncc_accuracy", split: str = "train") -> pd.Series:
    """Seed mean of ``metric`` at the runs' last checkpoint (metrics.csv), by hidden layer."""
    rows = _hidden(m.last(t.metrics, split))
    return rows[rows["metric"] == metric].groupby("hidden")["value"].mean()


def at(t: Tables, m: Model, layer: int | None = None, metric: str = "ncc_accuracy") -> float:
    """Train ``metric`` of hidden layer ``layer`` (None: the last) at the last checkpoint."""
    return float(final(t, m, metric).get(m.key["depth"] if layer is None else layer, np.nan))


def effective_depth(t: Tables, m: Model) -> float:
    """The first hidden layer with NCC train accuracy ≥ the threshold (Def. 1); NaN: none."""
    # Of the seed-mean NCC curve over the layer{k} only (no input, stem or pooled features), so
    # not query.derived's per-run value over every tapped layer index: computed here.
    return first_separable(final(t, m), t.thresholds.ncc)


def _layer_curves(t: Tables, m: Model, metric: str, split: str) -> dict[int, pd.DataFrame]:
    """Seed mean and sd (ddof 1: NaN with one seed) of ``metric`` against the epoch
    (epoch_metrics.csv), per hidden layer: epoch × (mean, std)."""
    rows = _hidden(m.rows(t.epoch_metrics[t.epoch_metrics["metric"] == metric], split))
    return {k: part.groupby("epoch")["value"].agg(["mean", "std"])
            for k, part in rows.groupby("hidden")}


# --- drawing ---------------------------------------------------------------------------------

class DecimalLogFormatter(LogFormatter):
    """Matplotlib's choice of which log ticks to label, written as decimals (0.05, 2)."""

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return f"{x:g}"


def _axes(ax: Axes, metric: str | None = None) -> None:
    """The metric's y axis and the paper's log epoch axis (symlog: the initialisation, epoch 0,
    stays on it), once the lines are drawn (the epoch axis' limits are fixed then)."""
    if metric in CDNV.values():
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


def _not_measured(ax: Axes, metric: str, split: str) -> None:
    """Say so in a panel whose curves the tables lack (tables from before ``cdnv_own`` was
    measured every epoch have no test CDNV of the paper's definition)."""
    ax.text(0.5, 0.5, f"not measured\n({metric}, {split}:\nnot in epoch_metrics.csv)",
            transform=ax.transAxes, ha="center", va="center", fontsize="x-small", color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def _columns(t: Tables, found: list[Model], panels, rows, threshold: float | None = None,
             label: str = "hidden layer") -> None:
    """Column c: model c's ``rows`` (metric, split, title) against the epoch, a line per layer
    (and the NCC ``threshold``); beside the panels, a colour bar with a band per layer."""
    deepest = max(m.key["depth"] for m in found)
    norm = BoundaryNorm(np.arange(0.5, deepest + 1.5), LAYER_CMAP.N)
    bar = panels[0][0].figure.colorbar(ScalarMappable(norm=norm, cmap=LAYER_CMAP), label=label,
                                       ax=[a for row in panels for a in row], shrink=0.6, aspect=30)
    bar.set_ticks(range(1, deepest + 1, max(1, deepest // 8)))
    for c, m in enumerate(found):
        for r, (metric, split, title) in enumerate(rows):
            ax, curves = panels[r][c], _layer_curves(t, m, metric, split)
            for k, curve in curves.items():
                query.mean_line(ax, curve["mean"], curve["std"], color=LAYER_CMAP(norm(k)),
                                linewidth=1.1)
            if not curves:
                _not_measured(ax, metric, split)
                continue
            if metric == "ncc_accuracy" and threshold is not None:
                ax.axhline(threshold, color="grey", linestyle=":", linewidth=0.8)
            _axes(ax, metric)
            if c == 0:
                ax.set_ylabel(title, fontsize="small")


def _network_line(ax: Axes, t: Tables, m: Model, column: str, **style) -> None:
    """The network's own accuracy (training.csv, seed mean ± sd) against the epoch."""
    runs = t.training[t.training["run"].isin(m.runs)]
    acc = runs.groupby("epoch")[column].agg(["mean", "std"])
    query.mean_line(ax, acc["mean"], acc["std"], **{**NETWORK_STYLE, **style})


def _level_colours(count: int) -> list:
    return [colormaps["plasma"](0.85 * i / max(count - 1, 1)) for i in range(count)]


def depth_figure(t: Tables, found: list[Model]) -> Figure:
    """Figs. 1, 2, 6: a column per depth (its effective depth in the title), rows CDNV and NCC
    accuracy (train, test) against the epoch, a line per layer; below, each depth's train acc."""
    cols = len(found)
    fig = Figure(figsize=(min(11.0, max(5.5, 2.0 + 2.0 * cols)), 10.0), layout="constrained")
    grid = fig.add_gridspec(len(DEPTH_ROWS) + 1, cols)
    panels = []  # a row per measure, its y axis shared so that the depths compare
    for r in range(len(DEPTH_ROWS)):
        first = fig.add_subplot(grid[r, 0])
        panels.append([first] + [fig.add_subplot(grid[r, c], sharey=first) for c in range(1, cols)])
    _columns(t, found, panels, DEPTH_ROWS, t.thresholds.ncc)
    acc = fig.add_subplot(grid[len(DEPTH_ROWS), :])
    for c, (m, colour) in enumerate(zip(found, _level_colours(cols), strict=True)):
        layers = f"{m.key['depth']} hidden layer" + ("" if m.key["depth"] == 1 else "s")
        panels[0][c].set_title(f"{layers}\neffective depth {layer_text(effective_depth(t, m))}",
                               fontsize="small")
        _network_line(acc, t, m, "train_acc", color=colour, label=layers)
    acc.axhline(t.thresholds.interpolation, color="grey", linestyle=":", linewidth=0.8)
    acc.set_ylabel("train accuracy", fontsize="small")
    acc.set_xlabel("epoch", fontsize="small")
    _axes(acc)
    acc.legend(fontsize="x-small", ncol=min(cols, 5), loc="lower right")
    return fig


def noise_figure(t: Tables, found: list[Model]) -> Figure:
    """Figs. 3, 4: rows 1 and 3, the CDNV (train, test) of layers 4, 6, 8, 10 against the epoch,
    a line per noise level; rows 2 and 4, a panel per noise level, the NCC accuracy (train,
    test) of every hidden layer and the network's own accuracy (black)."""
    deepest = max(m.key["depth"] for m in found)
    shown = [k for k in NOISE_LAYERS if k <= deepest] or [deepest]
    cols = max(len(shown), len(found))
    fig = Figure(figsize=(min(11.0, max(5.5, 2.0 + 2.2 * cols)), 9.0), layout="constrained")
    axes = fig.subplots(4, cols, squeeze=False)
    noise = [m.key["label_noise"] for m in found]
    colour = dict(zip(noise, _level_colours(len(found)), strict=True))  # one per level
    _columns(t, found, axes[[1, 3]], DEPTH_ROWS[2:])
    for row, split in ((0, "train"), (2, "test")):
        cdnv = [_layer_curves(t, m, CDNV[split], split) for m in found]
        for ax, k in zip(axes[row], shown, strict=False):
            for v, curves in zip(noise, cdnv, strict=True):
                if k in curves:
                    query.mean_line(ax, curves[k]["mean"], curves[k]["std"], color=colour[v],
                                    linewidth=1.2)
            ax.set_title(f"layer {k}, {split}", fontsize="small")
            if ax.lines:
                _axes(ax, CDNV[split])
            else:
                _not_measured(ax, CDNV[split], split)
        axes[row, 0].set_ylabel(f"CDNV ({split})", fontsize="small")
        for ax, m in zip(axes[row + 1], found, strict=False):
            _network_line(ax, t, m, f"{split}_acc", linestyle="--")
            ax.set_title(f"{percent(m.key['label_noise'])} noisy labels, {split}", fontsize="small")
    for ax in axes.flat:
        ax.set_visible(bool(ax.lines or ax.texts))
    for ax in axes[-1]:
        ax.set_xlabel("epoch", fontsize="small")
    handles = [Line2D([], [], color=colour[v], label=f"{percent(v)} noisy labels") for v in noise]
    handles.append(Line2D([], [], linestyle="--", **NETWORK_STYLE, label="network accuracy"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize="small")
    return fig


def resnet_figure(t: Tables, found: list[Model]) -> Figure:
    """Fig. 5: a column per dataset; CDNV train, CDNV test and the NCC test accuracy of each
    stage against the epoch, with the network's train (dashed) and test (solid) accuracy."""
    fig = Figure(figsize=(min(11.0, max(5.5, 2.2 + 2.6 * len(found))), 7.5), layout="constrained")
    axes = fig.subplots(3, len(found), squeeze=False)
    rows = (*DEPTH_ROWS[:2], ("ncc_accuracy", "test", "accuracy (test NCC per stage)"))
    _columns(t, found, axes, rows, label="stage (group of residual blocks)")
    for c, m in enumerate(found):
        _network_line(axes[2, c], t, m, "train_acc", linestyle="--")
        _network_line(axes[2, c], t, m, "test_acc")
        axes[0, c].set_title(f"{m.dataset} / {m.arch}", fontsize="small")
        axes[-1, c].set_xlabel("epoch", fontsize="small")
    handles = [Line2D([], [], linestyle="--", **NETWORK_STYLE, label="network, train"),
               Line2D([], [], **NETWORK_STYLE, label="network, test")]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize="small")
    return fig


def _figure(e: Experiment, t: Tables) -> Figure:
    """The experiment's figure of its models, titled; a placeholder where they have no curves."""
    found = group_models(t, e.group)
    if t.epoch_metrics.empty or all(_hidden(m.rows(t.epoch_metrics, None)).empty for m in found):
        return placeholder(f"Galanti et al. Fig. {e.figure} needs the group '{e.group}' "
                           f"({e.network}) with train.epoch_metrics")
    fig = KINDS[e.kind][0](t, found)
    drawn = "" if e.kind == "resnet" else ", ".join(  # (ResNet-18's title names no datasets)
        dict.fromkeys(f"{m.dataset} / {m.arch}" for m in found)) + "; "
    fig.suptitle(f"Within-class variation collapse with {e.network}{TITLES[e.kind]}\n"
                 f"({drawn}Galanti et al. Fig. {e.figure})", fontsize="medium")
    return fig


def effective_depth_table(t: Tables) -> pd.DataFrame:
    """Per model of the depth and noise groups: depth, label noise, final train accuracy, the
    last hidden layer's NCC train accuracy and the effective depth ("none": no layer)."""
    rows = [(f"Fig. {e.figure}", e.network, m.dataset, m.key["depth"],
             percent(m.key["label_noise"]), m.final(t, "final_train_acc"), at(t, m),
             layer_text(effective_depth(t, m)))
            for e in EXPERIMENTS.values() if e.kind != "resnet" for m in group_models(t, e.group)]
    return pd.DataFrame(rows, columns=["figure", "network", "dataset", "depth", "label noise",
                                       "train acc", "NCC train acc, last layer", "effective depth"])


# --- claims ----------------------------------------------------------------------------------
# Each kind's claims: (in words, where the paper makes it). In the words: {net} the paper's
# network, {ncc} and {fit} the NCC and the interpolation threshold, {k} NOISE_LAYER, {d} the
# paper's minimal depth of the network (PAPER_DEPTH) in words; in the place: {fig} the figure.

DEPTH_CLAIMS = (
    ("{net}: in every network deeper than the minimal NCC depth d*, each layer above d* is "
     "collapsed (NCC train ≥ {ncc:g}; min NCC, max CDNV there; paper: the fifth and higher "
     "layers of d = 8, 16 for MLP-d-100, the sixth and higher for ConvNet-d-400)",
     "§4.2, Fig. {fig}"),
    ("{net}: the networks deeper than the paper's minimal depth are effectively of that depth, "
     "exactly (paper: {d}; 'these networks [d = 8, 16] are effectively of depth 4', 'for "
     "convolutional networks [...] the minimal depth is 5')", "§4.2, Fig. {fig}"),
    ("{net}: that effective depth is exactly the minimal NCC depth d*: every network deeper "
     "than d* has effective depth d* (paper: 'exactly the minimal depth', {d})",
     "§4.2, Fig. {fig}"),
    ("{net}: a shallow network fits its train data (≥ {fit:g}) while its last layer is not NCC "
     "separable (paper: 'we do not necessarily achieve [...] neural collapse', Figs. 1(3,a), "
     "2(3,a))", "§4.2, Fig. {fig}"),
    ("{net}: the degree of collapse generally improves with the number of layers: the last "
     "hidden layer's train CDNV falls in most steps from one depth to the next (paper: "
     "'generally improves', no number)", "§1.1, Fig. {fig}"))
NOISE_CLAIMS = (
    ("{net}: layer {k}'s train CDNV grows with the label noise (strictly; paper: ≈ 0.28, ≈ 0.6, "
     "> 1, > 1 at 0, 25, 50, 75 %)", "§4.2, Fig. {fig}"),
    ("{net}: layer {k}'s train CDNV is ≈ 0.28 clean, ≈ 0.6 at 25 %, > 1 at 50 and 75 % (the "
     f"paper's values; ≈: within a factor {ABOUT_FACTOR:g})", "§4.2, Fig. {fig}"),
    ("{net}: with noise the network fits its labels (≥ {fit:g}) but layer {k} is not NCC "
     "separable (< {ncc:g}); clean, both fit (paper: network 100 %, layer 4 NCC < 100 % with "
     "noise, both 100 % clean)", "§4.2, Fig. {fig}"),
    ("{net}: layer {k}'s NCC train accuracy falls as the noise grows (strictly; paper: "
     "'decreases when increasing the amount of noisy labels', no number)", "§4.2, Fig. {fig}"),
    ("{net}: the NCC train accuracy of the minimal depth (layer {k}, the paper's) predicts the "
     "test accuracy better than the network's train accuracy: smaller mean |accuracy − test "
     "accuracy| over the noise levels (paper: 'more predictive of the actual test "
     "performance', no number)", "§4.2, Fig. {fig}"),
    ("{net}: the effective depth grows with the noise (never falls; deeper at the most noise "
     "than clean; paper: 'NCC depth typically increases', no number)", "§4, Fig. {fig}"))
RESNET_CLAIMS = (
    ("{net}: the top-most stage collapses (NCC train ≥ {ncc:g}, train CDNV below the first "
     "stage's; CDNV first → last, last NCC; paper: 'the few top-most evaluated layers [...] "
     "tend to collapse', no number)", "§4.2, Fig. {fig}"),
    ("{net}: collapsed stages are redundant: their NCC test accuracy is within "
     f"{NCC_TOL:g} of the network's (largest gap; paper: 'their performance already matches "
     "that of the full network', no number)", "§4.2, Fig. {fig}(c)"))


def _joined(cases: list[tuple[str, bool | None]]) -> Verdict:
    """The cases' texts, and whether every case that can tell (not None) holds."""
    return "; ".join(text for text, _ in cases), query.all_told(holds for _, holds in cases)


def _depths_text(found: list[Model], values: list[float]) -> str:
    return ", ".join(f"d={m.key['depth']}: {layer_text(v)}"
                     for m, v in zip(found, values, strict=True))


def paper_depth_verdict(t: Tables, e: Experiment, found: list[Model]) -> Verdict:
    """Claim 2: every network deeper than the paper's minimal depth has it as effective depth."""
    d = PAPER_DEPTH.get(e.network)
    if d is None:
        return f"the paper states no effective depth for {e.network}", None
    deeper = [m for m in found if m.key["depth"] > d]
    if not deeper:
        return (f"no network deeper than {d} trained (depths "
                f"{', '.join(str(m.key['depth']) for m in found)})", None)
    effective = [effective_depth(t, m) for m in deeper]  # NaN (none) is not d
    return (f"effective depth {_depths_text(deeper, effective)} (paper {d})",
            all(v == d for v in effective))


def depth_trend_verdict(t: Tables, found: list[Model]) -> Verdict:
    """Claim 5: the last hidden layer's train CDNV falls in most steps as the depth grows."""
    cdnv = [at(t, m, None, "cdnv") for m in found]  # found: by depth
    text = ", ".join(f"d={m.key['depth']}: {fmt(v, 2)}" for m, v in zip(found, cdnv, strict=True))
    steps = np.diff(cdnv)
    if not len(steps) or np.isnan(steps).any():
        return f"{text or 'no network'} (needs two depths measured)", None
    return f"last layer's CDNV {text}", query.majority(list(steps < 0))


def depth_verdicts(t: Tables, e: Experiment, found: list[Model]) -> list[Verdict]:
    """Claims 1-5 on the models of one depth group."""
    ncc = t.thresholds.ncc
    fitting = [m for m in found if m.final(t, "final_train_acc") >= t.thresholds.interpolation]
    cases = [m for m in fitting if not at(t, m) >= ncc]  # claim 4's
    if not fitting:
        fits = "no network fits its train data", None
    else:
        fits = ("" if cases else "every fitting network is NCC separable: ") + "; ".join(
            f"d={m.key['depth']}: train {m.final(t, 'final_train_acc'):.3f}, last layer NCC "
            f"{at(t, m):.3f}" for m in cases or fitting), bool(cases)
    paper, trend = paper_depth_verdict(t, e, found), depth_trend_verdict(t, found)
    # d*: the shallowest model whose last layer is NCC separable (Def. 2, over the depths run)
    base = min((m for m in found if at(t, m) >= ncc), key=lambda m: m.key["depth"], default=None)
    if base is None:
        return [(f"no depth has its last layer NCC ≥ {ncc:g}; no deeper network", None), paper,
                ("no depth is NCC separable; no deeper network", None), fits, trend]
    d = base.key["depth"]
    head = f"d* = {d} (last layer NCC {at(t, base):.3f})"
    deeper = [m for m in found if m.key["depth"] > d]
    if not deeper:
        return [(f"{head}; no deeper network", None), paper,
                (f"d* = {d}; no deeper network", None), fits, trend]
    collapsed = [(head, None)]  # (the head: no verdict)
    for m in deeper:
        above = range(d + 1, m.key["depth"] + 1)
        layers, cdnv = final(t, m).reindex(above), final(t, m, "cdnv").reindex(above)
        collapsed.append((f"d={m.key['depth']}: layers {above[0]}-{above[-1]} NCC ≥ "
                          f"{fmt(layers.min())}, CDNV ≤ {fmt(cdnv.max(), 2)}",
                          (layers >= ncc).all()))
    effective = [effective_depth(t, m) for m in deeper]  # NaN (none) is not d*
    known = f", paper {PAPER_DEPTH[e.network]}" if e.network in PAPER_DEPTH else ""
    return [_joined(collapsed), paper,
            (f"d* = {d}{known}; effective depth {_depths_text(deeper, effective)}",
             all(v == d for v in effective)), fits, trend]


def predictive_verdict(t: Tables, reach: list[Model], ncc: dict[float, float]) -> Verdict:
    """Claim 10: layer k's NCC train accuracy lies nearer the test accuracy, on average over the
    noise levels, than the network's train accuracy does."""
    if len(reach) < 2:
        return f"{len(reach)} noise level", None
    test = np.array([m.final(t, "final_test_acc") for m in reach])
    train = np.array([m.final(t, "final_train_acc") for m in reach])
    layer = np.array([ncc[m.key["label_noise"]] for m in reach])
    gap_ncc, gap_train = np.mean(np.abs(layer - test)), np.mean(np.abs(train - test))
    text = "; ".join(f"{percent(m.key['label_noise'])}: test {te:.3f}, layer NCC {n:.3f}, "
                     f"train {tr:.3f}" for m, te, n, tr in zip(reach, test, layer, train,
                                                                 strict=True))
    if np.isnan([gap_ncc, gap_train]).any():
        return text, None
    return (f"{text}; mean gap to test: layer NCC {gap_ncc:.3f}, train {gap_train:.3f}",
            bool(gap_ncc < gap_train))


def noise_verdicts(t: Tables, e: Experiment, found: list[Model]) -> list[Verdict] | str:
    """Claims 6-11 on the models of one noise group."""
    k = NOISE_LAYER
    reach = [m for m in found if m.key["depth"] >= k]
    if not reach:
        return f"no network with a layer {k}"
    cdnv, ncc, fits, paper = {}, {}, [], []
    for m in reach:
        level, train = m.key["label_noise"], m.final(t, "final_train_acc")
        cdnv[level], ncc[level] = at(t, m, k, "cdnv"), at(t, m, k)
        fits.append((f"{percent(level)}: network {train:.3f}, layer {k} NCC {fmt(ncc[level])}",
                     train >= t.thresholds.interpolation
                     and (ncc[level] >= t.thresholds.ncc) == (level == 0)))
    for level, value in sorted(cdnv.items()):  # claim 7: the levels the paper gives values for
        if level in PAPER_CDNV:
            about = PAPER_CDNV[level]
            paper.append((f"{percent(level)}: {fmt(value)} (paper ≈ {about:g})",
                          about / ABOUT_FACTOR <= value <= about * ABOUT_FACTOR))
        elif level >= 0.5:
            paper.append((f"{percent(level)}: {fmt(value)} (paper > 1)", value > ABOVE_ONE))
    # claim 11: a network without an NCC-separable layer counts as one layer deeper than its last
    effective = [effective_depth(t, m) for m in found]
    depths = [v if v == v else m.key["depth"] + 1 for m, v in zip(found, effective, strict=True)]
    deeper = (", ".join(f"{percent(m.key['label_noise'])}: {layer_text(v)}"
                        for m, v in zip(found, effective, strict=True)),
              bool((np.diff(depths) >= 0).all() and depths[-1] > depths[0]))
    return [_trend(cdnv, rising=True),
            _joined(paper) if paper else ("no noise level the paper gives a value for", None),
            _joined(fits), _trend(ncc, rising=False), predictive_verdict(t, reach, ncc),
            deeper if len(found) > 1 else (f"{len(found)} noise level", None)]


def _trend(values: dict[float, float], rising: bool) -> Verdict:
    """The values by noise level; whether they rise (fall) strictly (None: < 2 or a NaN)."""
    levels = sorted(values.items())
    steps = np.diff([v for _, v in levels])  # NaN next to a missing value
    return (", ".join(f"{percent(level)}: {fmt(v)}" for level, v in levels),
            None if not len(steps) or np.isnan(steps).any()
            else bool((steps > 0).all() if rising else (steps < 0).all()))


def resnet_verdicts(t: Tables, e: Experiment, found: list[Model]) -> list[Verdict]:
    """Claims 12-13, over the datasets of the ResNet-18 group."""
    ncc, top, redundant = t.thresholds.ncc, [], []
    for m in found:
        cdnv, stages, test = final(t, m, "cdnv"), final(t, m), m.final(t, "final_test_acc")
        top.append((f"{m.dataset}: CDNV {fmt(cdnv.iloc[0], 2)} → {fmt(cdnv.iloc[-1], 2)}, "
                    f"NCC {stages.iloc[-1]:.3f}",
                    stages.iloc[-1] >= ncc and cdnv.iloc[-1] < cdnv.iloc[0]))
        collapsed = stages[stages >= ncc].index
        gap = (final(t, m, "ncc_accuracy", "test").reindex(collapsed) - test).abs().max()
        redundant.append((f"{m.dataset}: stages {', '.join(map(str, collapsed))}, network test "
                          f"{test:.3f}, gap {fmt(gap, 2)}", gap <= NCC_TOL) if len(collapsed)
                         else (f"{m.dataset}: no collapsed stage", None))
    return [_joined(top), _joined(redundant)]


# kind of experiment → its figure, its claims in words, their verdicts on its models; TITLES: how
# its figure's title ends
KINDS = {"depth": (depth_figure, DEPTH_CLAIMS, depth_verdicts),
         "noise": (noise_figure, NOISE_CLAIMS, noise_verdicts),
         "resnet": (resnet_figure, RESNET_CLAIMS, resnet_verdicts)}
TITLES = {"depth": "", "noise": " and noisy labels", "resnet": ", after each stage"}


def claims(t: Tables) -> pd.DataFrame:
    """The paper's claims checked against the measured numbers (see the module docstring)."""
    rows = []
    for e in EXPERIMENTS.values():
        _, texts, verdicts = KINDS[e.kind]
        found = group_models(t, e.group)
        told = verdicts(t, e, found) if found else f"no measured run of group {e.group}"
        if isinstance(told, str):  # why none of them can tell
            told = [(told, None)] * len(texts)
        words = {"net": e.network, "k": NOISE_LAYER, "ncc": t.thresholds.ncc,
                 "fit": t.thresholds.interpolation,
                 "d": PAPER_DEPTH.get(e.network, "no number stated for this network")}
        rows += [claim(text.format(**words), where.format(fig=e.figure), *v)
                 for (text, where), v in zip(texts, told, strict=True)]
    return claims_frame(rows)


FIGURES: dict[str, Callable[[Tables], Figure]] = {
    name: partial(_figure, e) for name, e in EXPERIMENTS.items()}
TABLES: dict[str, Callable[[Tables], pd.DataFrame]] = {
    "claims": claims, "effective_depth": effective_depth_table}
