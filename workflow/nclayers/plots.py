"""Figures from the tidy tables; one function per figure, registered in ``FIGURES``.

Every function takes the metrics and training tables and returns a matplotlib Figure, built
with :class:`matplotlib.figure.Figure` (no pyplot, no backend: ``savefig`` picks the writer
from the format). Seeds are drawn as mean ± one standard deviation (a band) by :func:`lines`.
The project's look is not set on import: the steps that draw call :func:`use_style` first.
Neither seaborn nor torch is imported: a figure step is a fresh process, and their imports
(~1.7 s and ~1.6 s) cost more than drawing most figures.

Sizes: the report includes every figure at the text width (16 cm ≈ 6.3 in), so a figure is at
most ~9.5 in wide (fonts stay ≥ ~6.5 pt) and ~12 in tall; panels wrap into rows to stay so.
"""

from __future__ import annotations

import colorsys
import textwrap
from collections.abc import Callable, Sequence

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.ticker import MaxNLocator

from nclayers import vocabulary
from nclayers.derived import last_epoch
from nclayers.vocabulary import COLLAPSE_EPS

SPLITS = ("train", "test")
# seaborn's "deep" palette, the colour cycle of the project's look
DEEP = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3",
        "#8c8c8c", "#ccb974", "#64b5cd")
# What seaborn 0.13's set_theme(context="paper", style="whitegrid", font_scale=1.1) sets that
# differs from matplotlib's defaults: a white background with a light grey grid below the
# data, no ticks, grey text, the "paper" sizes (0.8 × "notebook", fonts × 1.1 more).
STYLE = {
    "axes.axisbelow": True, "axes.edgecolor": ".8", "axes.grid": True,
    "axes.labelcolor": ".15", "axes.linewidth": 1.0, "axes.prop_cycle": mpl.cycler(color=DEEP),
    "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "Bitstream Vera Sans",
                        "sans-serif"],
    "font.size": 10.56, "axes.labelsize": 10.56, "axes.titlesize": 10.56,
    "legend.fontsize": 9.68, "legend.title_fontsize": 10.56,
    "xtick.labelsize": 9.68, "ytick.labelsize": 9.68,
    "grid.color": ".8", "grid.linewidth": 0.8, "lines.linewidth": 1.2, "lines.markersize": 4.8,
    "lines.solid_capstyle": "round", "patch.edgecolor": "w", "patch.force_edgecolor": True,
    "patch.linewidth": 0.8, "text.color": ".15",
    "xtick.bottom": False, "xtick.color": ".15", "xtick.major.size": 4.8,
    "xtick.major.width": 1.0, "xtick.minor.size": 3.2, "xtick.minor.width": 0.8,
    "ytick.left": False, "ytick.color": ".15", "ytick.major.size": 4.8,
    "ytick.major.width": 1.0, "ytick.minor.size": 3.2, "ytick.minor.width": 0.8,
}
BRIEF = 6  # a numeric hue of more levels gets a legend of ~6 round values (as seaborn's)


def use_style() -> None:
    """The project's look (seaborn's "paper" context, white grid, deep palette, in
    matplotlib's own settings: :data:`STYLE`); call it before drawing."""
    mpl.rcParams.update(STYLE)


def hue_circle(count: int) -> list[tuple]:
    """``count`` evenly spaced hues of one lightness and saturation: distinct colours where a
    palette of 10 would repeat (as seaborn's husl palette)."""
    return [colorsys.hls_to_rgb((k / count + 0.01) % 1, 0.6, 0.65) for k in range(count)]


def _level(value) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def lines(ax, data: pd.DataFrame, x: str, y: str, hue: str, *, palette: str | None = None,
          hue_order: Sequence | None = None, style: str | None = None,
          marker: str | None = None, legend: bool | str = True, log_hue: bool = False) -> None:
    """A line per ``hue`` level of the mean of ``y`` over the rows (seeds) at each ``x``, in a
    band of ± one standard deviation (ddof 1; none where one row), as seaborn's
    ``lineplot(errorbar="sd")`` draws it. ``palette``: a colormap for a numeric hue, spread
    over its range of values (else the colour cycle, in order of appearance or
    ``hue_order``); ``style``: a column whose levels get dashes. ``legend``: an entry per
    level (with >6 numeric levels, ~6 round values; "full": every level), under the hue's
    name as title. ``log_hue``: a numeric hue's colours spread over log(1 + value), so that
    log-spaced levels (checkpoints 0, 10, 50, … 400) get distinct colours."""
    data = data.dropna(subset=[x, y, hue])
    numeric = palette is not None and pd.api.types.is_numeric_dtype(data[hue])
    levels = list(hue_order) if hue_order is not None else list(
        np.sort(data[hue].unique()) if numeric else data[hue].unique())
    if numeric:
        scale = np.log1p if log_hue else float
        norm, cmap = Normalize(scale(min(levels)), scale(max(levels))), colormaps[palette]
        colour = {level: cmap(norm(scale(level))) for level in levels}
    else:
        cycle = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
        cycle = cycle if len(levels) <= len(cycle) else hue_circle(len(levels))
        colour = {level: cycle[k] for k, level in enumerate(levels)}
    styles = list(data[style].unique()) if style else [None]
    dashes = dict(zip(styles, ["", (4, 1.5), (1, 1), (3, 1.25, 1.5, 1.25), (5, 1, 1, 1)] * 4,
                      strict=False))
    for level in levels:
        for kind in styles:
            rows = data[(data[hue] == level) & (data[style] == kind if style else True)]
            if rows.empty:
                continue
            stats = rows.groupby(x)[y].agg(["mean", "std"])
            ax.plot(stats.index, stats["mean"], color=colour[level], marker=marker,
                    markeredgewidth=0.75, markeredgecolor="w", dashes=dashes[kind] or (None, None))
            if stats["std"].notna().any():
                ax.fill_between(stats.index, stats["mean"] - stats["std"],
                                stats["mean"] + stats["std"], color=colour[level], alpha=0.2)
    if not legend:
        return
    entries = levels
    if numeric and legend != "full" and len(levels) > BRIEF:
        whole = pd.api.types.is_integer_dtype(data[hue])  # epochs: no legend entry "2.5"
        ticks = MaxNLocator(nbins=BRIEF, integer=whole).tick_values(min(levels), max(levels))
        entries = [float(t) for t in ticks if min(levels) <= t <= max(levels)]
        colour.update({t: cmap(norm(scale(t))) for t in entries})
    names = [_level(level) for level in entries]

    def proxy(label: str, **kw) -> None:  # labelled and empty: in the legend, not the plot
        ax.plot([], [], label=label, markeredgewidth=0.75, markeredgecolor="w", **kw)

    if style:
        proxy(hue, color="none")
    for level, name in zip(entries, names, strict=True):
        proxy(name, color=colour[level], marker=marker)
    if style:
        proxy(style, color="none")
        for kind in styles:
            proxy(_level(kind), color=".2", marker=marker, dashes=dashes[kind] or (None, None))
    ax.legend(title=None if style else hue)


def seeds_note(runs: pd.DataFrame) -> str:
    """How many seeds each drawn model averages: its selected runs that did not diverge, one per
    seed ("n = 2 seeds per model", or a range where models differ)."""
    kept = runs[runs["selected"].astype(bool) & ~runs["diverged"].astype(bool)]
    if kept.empty:
        return ""
    counts = kept.groupby(kept["run"].str.replace(r"-s\d+$", "", regex=True))["run"].count()
    low, high = int(min(counts)), int(max(counts))
    n = f"n = {low}" if low == high else f"n = {low}–{high}"
    return (f"{n} seed{'s' if high > 1 else ''} per model"
            + ("" if high > 1 else ": no spread to show"))


def finish(fig: Figure, runs: pd.DataFrame) -> None:
    """What every saved figure of runs gets: the number of seeds its curves average in its
    title (:func:`note_seeds`), and its title and legends fitted to its width."""
    note_seeds(fig, runs)
    fit_to_width(fig)


def fit_to_width(fig: Figure) -> None:
    """The figure's title wrapped and its figure legends in fewer columns until each is no
    wider than the figure (:func:`fit_title`, :func:`fit_legend`)."""
    renderer = FigureCanvasAgg(fig).get_renderer()  # measures as the saved file draws
    if (title := getattr(fig, "_suptitle", None)) is not None:  # matplotlib keeps it here
        fit_title(fig, title, renderer)
    for legend in list(fig.legends):  # a legend that is made again leaves the list
        fit_legend(fig, legend, renderer)


def note_seeds(fig: Figure, runs: pd.DataFrame) -> None:
    """Say in the figure's title how many seeds its curves average (:func:`seeds_note`); the
    report says once that a curve over seeds is their mean in a band of ± 1 sd."""
    if not (note := seeds_note(runs)):
        return
    title = getattr(fig, "_suptitle", None)
    if title is not None and title.get_text():
        title.set_text(f"{title.get_text()}\n({note})")  # a second line: legends sit below
    else:
        fig.suptitle(f"({note})", fontsize="small")


def _fits(fig: Figure, artist, renderer) -> bool:
    return artist.get_window_extent(renderer).width <= 0.98 * fig.bbox.width


def fit_title(fig: Figure, title: Text, renderer) -> None:
    """Wrap each line of ``title`` at word breaks until it is no wider than the figure (a
    one-panel figure's long title would otherwise run off both sides of the page)."""
    lines = title.get_text().split("\n")
    for width in range(max(map(len, lines)), 20, -4):
        if _fits(fig, title, renderer):
            return
        title.set_text("\n".join(textwrap.fill(line, width) for line in lines))


def fit_legend(fig: Figure, legend: Legend, renderer) -> None:
    """Fewer columns until the figure-level ``legend`` is no wider than the figure: the legend
    made again (a legend lays its box out once, when it is made) with its keys, place and font."""
    ncols = legend._ncols
    while not _fits(fig, legend, renderer) and ncols > 1:
        ncols -= 1
        where = next(name for name, code in Legend.codes.items() if code == legend._loc)
        if getattr(legend, "_outside_loc", None):  # fig.legend(loc="outside ...")
            where = f"outside {where}"
        keys, labels = legend.legend_handles, [text.get_text() for text in legend.texts]
        legend.remove()
        legend = fig.legend(keys, labels, loc=where, ncols=ncols, prop=legend.prop,
                            title=legend.get_title().get_text() or None)


def placeholder(message: str) -> Figure:
    """A small figure that states why there is nothing to draw, so the report still builds."""
    fig = Figure(figsize=(6, 1))
    fig.text(0.5, 0.5, message, ha="center", va="center")
    return fig


def _layer_axis(ax, metrics: pd.DataFrame, rotation: float = 45) -> None:
    ticks = metrics.drop_duplicates("layer_index").sort_values("layer_index")
    ax.set_xticks(ticks["layer_index"], ticks["layer"], rotation=rotation,
                  ha="right" if rotation < 90 else "center")
    ax.set_xlabel("layer")


def _per_layer(metrics: pd.DataFrame, metric: str, title: str, hline: float | None = None,
               ylim: tuple[float, float] | None = None) -> Figure:
    """A row per model, a panel per split: ``metric`` against depth, a line per epoch."""
    data = metrics[metrics["metric"] == metric]
    splits = [s for s in SPLITS if s in set(data["split"])]
    models = vocabulary.by_model(data)
    fig = Figure(figsize=(8.4, 0.3 + 3.3 * len(models)), layout="constrained")
    axes = fig.subplots(len(models), len(splits), sharey=True, squeeze=False)
    for row, (model, part) in zip(axes, models, strict=True):
        for ax, split in zip(row, splits, strict=True):
            lines(ax, part[part["split"] == split], "layer_index", "value", "epoch",
                  palette="viridis", marker="o", legend=split == splits[-1], log_hue=True)
            if metric in vocabulary.LOG_METRICS:
                ax.set_yscale("log")
            if hline is not None:
                ax.axhline(hline, color="crimson", linestyle="--", linewidth=1,
                           label=f"collapse line ε = {hline:g}")
            if ylim:
                ax.set_ylim(*ylim)
            ax.set_title(f"{split} split" if len(models) == 1 else f"{model}, {split} split")
            ax.set_ylabel(vocabulary.METRIC_LABELS.get(metric, metric))
            _layer_axis(ax, part)
        row[-1].legend(title="epoch", loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle(title)
    return fig


def nc1_by_layer(metrics, training, spectra=None, collapse_eps=COLLAPSE_EPS) -> Figure:
    return _per_layer(metrics, "nc1", "NC1 by layer over training")


def nc1_ratio_by_layer(metrics, training, spectra=None, collapse_eps=COLLAPSE_EPS) -> Figure:
    return _per_layer(metrics, "nc1_ratio", "NC1 ratio by layer, with the collapse line",
                      hline=collapse_eps, ylim=(0, 1.02))


def ncc_accuracy_by_layer(metrics, training, spectra=None, collapse_eps=COLLAPSE_EPS) -> Figure:
    # the data's own range: on 0-1, every trained checkpoint is squeezed into 0.9-1
    return _per_layer(metrics, "ncc_accuracy", "Nearest-class-mean accuracy by layer")


def _long_curves(rows: pd.DataFrame) -> pd.DataFrame:
    """A model's train-log rows as (epoch, variable, value, split), tidy for :func:`lines`."""
    values = ["eval_train_loss", "test_loss", "train_acc", "test_acc"]
    long = rows.melt(id_vars=["run", "epoch"], value_vars=values)
    long["split"] = long["variable"].str.startswith(("eval_train", "train")).map(
        {True: "train", False: "test"})
    return long


def training_curves(metrics, training, spectra=None, collapse_eps=COLLAPSE_EPS) -> Figure:
    models = vocabulary.by_model(training)
    fig = Figure(figsize=(8.4, 0.3 + 3.1 * len(models)), layout="constrained")
    axes = fig.subplots(len(models), 2, squeeze=False)
    for (loss_ax, acc_ax), (model, rows) in zip(axes, models, strict=True):
        long = _long_curves(rows)
        for ax, kind, label in ((loss_ax, "loss", "loss"), (acc_ax, "acc", "accuracy")):
            part = long[long["variable"].str.endswith(kind)]
            lines(ax, part, "epoch", "value", "split")
            ax.set_xlabel("epoch")
            ax.set_ylabel(label if len(models) == 1 else f"{model}: {label}")
        loss_ax.set_yscale("log")
        acc_ax.set_ylim(0, 1.02)
    fig.suptitle("Training curves (mean ± sd over seeds)")
    return fig


def nc_metrics_final(metrics, training, spectra=None, collapse_eps=COLLAPSE_EPS) -> Figure:
    """Every metric against depth at each run's last checkpoint, train and test: three panels a
    row, the layers named under the lowest panel of each column, one legend under them all."""
    last = last_epoch(metrics[metrics["layer_index"].notna()])
    names = [m for m in vocabulary.METRIC_LABELS if m in set(last["metric"])]
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(3.1 * cols, 1.4 + 1.75 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, sharex=True, squeeze=False)
    last = last.assign(model=vocabulary.model_labels(last))
    several = last["model"].nunique() > 1
    for ax, metric in zip(axes.flat, names, strict=False):
        part = last[last["metric"] == metric]
        lines(ax, part, "layer_index", "value", "model" if several else "split",
              style="split" if several else None, hue_order=None if several else SPLITS,
              marker="o", legend=metric == names[0])
        if metric in vocabulary.LOG_METRICS:
            ax.set_yscale("log")
        ax.set_title(vocabulary.METRIC_LABELS[metric], fontsize="medium")
        ax.set_ylabel("")
    lowest = {k % cols: ax for k, ax in enumerate(axes.flat[:len(names)])}.values()
    for ax in axes.flat:
        if ax in lowest:  # shared: rows of the same names would only crowd the panels
            _layer_axis(ax, last, rotation=45 if last["layer_index"].nunique() <= 8 else 90)
            ax.tick_params(labelbottom=True)
        else:
            ax.tick_params(labelbottom=False)
            ax.set_xlabel("")
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    first = axes.flat[0]
    handles, labels = first.get_legend_handles_labels()
    first.get_legend().remove()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels))
    fig.suptitle(f"All metrics by layer at the last checkpoint (epoch {last['epoch'].max()})")
    return fig


def weight_spectra(metrics, training, spectra=None, collapse_eps=COLLAPSE_EPS) -> Figure:
    """Normalised singular values σ_k/Σσ of each layer's consuming weight, last checkpoint;
    a row per model."""
    last = spectra[spectra["epoch"] == spectra["epoch"].max()]
    last = last[last["k"] < 40]
    models = vocabulary.by_model(last)
    fig = Figure(figsize=(6.4, 0.3 + 3.4 * len(models)), layout="constrained")
    axes = fig.subplots(len(models), 1, squeeze=False)
    for ax, (model, part) in zip(axes[:, 0], models, strict=True):
        lines(ax, part, "k", "share", "layer_index", palette="viridis", legend="full")
        ax.set_yscale("log")
        ax.set_xlabel("singular value index k")
        ax.set_ylabel(r"$\sigma_k / \sum_j \sigma_j$")
        if len(models) > 1:
            ax.set_title(model)
        ax.legend(title="layer", ncol=2, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle(f"Spectra of the weights that read each layer (epoch {last['epoch'].max()})")
    return fig


FIGURES: dict[str, Callable[..., Figure]] = {
    "training_curves": training_curves,
    "nc1_by_layer": nc1_by_layer,
    "nc1_ratio_by_layer": nc1_ratio_by_layer,
    "ncc_accuracy_by_layer": ncc_accuracy_by_layer,
    "nc_metrics_final": nc_metrics_final,
    "weight_spectra": weight_spectra,
}
