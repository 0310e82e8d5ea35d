"""Figures from the tidy tables; one function per figure, registered in ``FIGURES``.

Every function takes the metrics and training tables and returns a matplotlib Figure, built
with :class:`matplotlib.figure.Figure` (no pyplot, no backend: ``savefig`` picks the writer
from the format). Seeds are drawn as mean ± one standard deviation (a band) by seaborn. The
project's look is not set on import: the steps that draw call :func:`use_style` first.

Sizes: the report includes every figure at the text width (16 cm ≈ 6.3 in), so a figure is at
most ~9.5 in wide (fonts stay ≥ ~6.5 pt) and ~12 in tall; panels wrap into rows to stay so.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from nclayers import vocabulary

BAND = ("sd", 1)
SPLITS = ("train", "test")


def use_style() -> None:
    """The project's look (seaborn's "paper" context, white grid); call it before drawing."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)


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
            sns.lineplot(data=part[part["split"] == split], x="layer_index", y="value",
                         hue="epoch", palette="viridis", marker="o", errorbar=BAND, ax=ax,
                         legend=split == splits[-1])
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


def nc1_by_layer(metrics, training, spectra=None, collapse_eps=0.2) -> Figure:
    return _per_layer(metrics, "nc1", "NC1 by layer over training")


def nc1_ratio_by_layer(metrics, training, spectra=None, collapse_eps=0.2) -> Figure:
    return _per_layer(metrics, "nc1_ratio", "NC1 ratio by layer, with the collapse line",
                      hline=collapse_eps, ylim=(0, 1.02))


def ncc_accuracy_by_layer(metrics, training, spectra=None, collapse_eps=0.2) -> Figure:
    return _per_layer(metrics, "ncc_accuracy", "Nearest-class-mean accuracy by layer",
                      ylim=(0, 1.02))


def _long_curves(rows: pd.DataFrame) -> pd.DataFrame:
    """A model's train-log rows as (epoch, variable, value, split) for seaborn."""
    values = ["eval_train_loss", "test_loss", "train_acc", "test_acc"]
    long = rows.melt(id_vars=["run", "epoch"], value_vars=values)
    long["split"] = long["variable"].str.startswith(("eval_train", "train")).map(
        {True: "train", False: "test"})
    return long


def training_curves(metrics, training, spectra=None, collapse_eps=0.2) -> Figure:
    models = vocabulary.by_model(training)
    fig = Figure(figsize=(8.4, 0.3 + 3.1 * len(models)), layout="constrained")
    axes = fig.subplots(len(models), 2, squeeze=False)
    for (loss_ax, acc_ax), (model, rows) in zip(axes, models, strict=True):
        long = _long_curves(rows)
        for ax, kind, label in ((loss_ax, "loss", "loss"), (acc_ax, "acc", "accuracy")):
            part = long[long["variable"].str.endswith(kind)]
            sns.lineplot(data=part, x="epoch", y="value", hue="split", errorbar=BAND, ax=ax)
            ax.set_ylabel(label if len(models) == 1 else f"{model}: {label}")
        loss_ax.set_yscale("log")
        acc_ax.set_ylim(0, 1.02)
    fig.suptitle("Training curves (mean ± sd over seeds)")
    return fig


def nc_metrics_final(metrics, training, spectra=None, collapse_eps=0.2) -> Figure:
    """Every metric against depth at the last checkpoint, train and test: three panels a row,
    the layers named under the lowest panel of each column, one legend under them all."""
    last = metrics[(metrics["epoch"] == metrics["epoch"].max()) & metrics["layer_index"].notna()]
    names = [m for m in vocabulary.METRIC_LABELS if m in set(last["metric"])]
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(3.1 * cols, 1.4 + 1.75 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, sharex=True, squeeze=False)
    last = last.assign(model=vocabulary.model_labels(last))
    several = last["model"].nunique() > 1
    for ax, metric in zip(axes.flat, names, strict=False):
        part = last[last["metric"] == metric]
        sns.lineplot(data=part, x="layer_index", y="value", hue="model" if several else "split",
                     style="split" if several else None, hue_order=None if several else SPLITS,
                     marker="o", errorbar=BAND, ax=ax, legend=metric == names[0])
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


def weight_spectra(metrics, training, spectra=None, collapse_eps=0.2) -> Figure:
    """Normalised singular values σ_k/Σσ of each layer's consuming weight, last checkpoint;
    a row per model."""
    last = spectra[spectra["epoch"] == spectra["epoch"].max()]
    last = last[last["k"] < 40]
    models = vocabulary.by_model(last)
    fig = Figure(figsize=(6.4, 0.3 + 3.4 * len(models)), layout="constrained")
    axes = fig.subplots(len(models), 1, squeeze=False)
    for ax, (model, part) in zip(axes[:, 0], models, strict=True):
        sns.lineplot(data=part, x="k", y="share", hue="layer_index", palette="viridis",
                     errorbar=BAND, ax=ax, legend="full")
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
