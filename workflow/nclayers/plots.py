"""Figures from the tidy tables; one function per figure, registered in ``FIGURES``.

Every function takes the metrics and training tables and returns a matplotlib Figure. Seeds are
drawn as mean ± one standard deviation (a band) by seaborn.
"""

from __future__ import annotations

from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
BAND = ("sd", 1)
SPLITS = ("train", "test")

METRIC_LABELS = {
    "nc1": r"NC1 $\mathrm{Tr}(\Sigma_W\Sigma_B^+)/C$",
    "nc1_ratio": r"NC1 ratio $\mathrm{Tr}\,\Sigma_W / \mathrm{Tr}\,\Sigma_T$",
    "cdnv": "CDNV",
    "nc2_equinorm": "NC2 equinorm",
    "nc2_equiangle": "NC2 equiangle",
    "nc2_maxangle": "NC2 max-angle",
    "ncc_accuracy": "NCC accuracy",
    "nc4_mismatch": "NC4 mismatch",
    "tr_sigma_w": r"$\mathrm{Tr}\,\Sigma_W$",
    "tr_sigma_b": r"$\mathrm{Tr}\,\Sigma_B$",
    "tr_sigma_t": r"$\mathrm{Tr}\,\Sigma_T$",
    "nc2_angle_shift": "NC2 angle shift",
    "nc3_pabs": "NC3 PABS alignment",
    "nc3_duality": "NC3 self-duality",
    "stable_rank": "stable rank (within-class)",
}
LOG_METRICS = {"nc1", "cdnv", "tr_sigma_w", "tr_sigma_b", "tr_sigma_t", "stable_rank"}


def _layer_axis(ax, metrics: pd.DataFrame) -> None:
    ticks = metrics.drop_duplicates("layer_index").sort_values("layer_index")
    ax.set_xticks(ticks["layer_index"], ticks["layer"], rotation=45, ha="right")
    ax.set_xlabel("layer")


def by_model(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(``dataset / arch``, rows) for each trained model in the table."""
    return [(f"{d} / {a}", part) for (d, a), part in table.groupby(["dataset", "arch"])]


def _per_layer(metrics: pd.DataFrame, metric: str, title: str, hline: float | None = None,
               ylim: tuple[float, float] | None = None) -> Figure:
    """A row per model, a panel per split: ``metric`` against depth, a line per epoch."""
    data = metrics[metrics["metric"] == metric]
    splits = [s for s in SPLITS if s in set(data["split"])]
    models = by_model(data)
    fig, axes = plt.subplots(len(models), len(splits), figsize=(4.2 * len(splits),
                             3.4 * len(models)), sharey=True, squeeze=False)
    for row, (model, part) in zip(axes, models, strict=True):
        for ax, split in zip(row, splits, strict=True):
            sns.lineplot(data=part[part["split"] == split], x="layer_index", y="value",
                         hue="epoch", palette="viridis", marker="o", errorbar=BAND, ax=ax,
                         legend=split == splits[-1])
            if metric in LOG_METRICS:
                ax.set_yscale("log")
            if hline is not None:
                ax.axhline(hline, color="crimson", linestyle="--", linewidth=1,
                           label=f"collapse line ε = {hline:g}")
            if ylim:
                ax.set_ylim(*ylim)
            ax.set_title(f"{split} split" if len(models) == 1 else f"{model}, {split} split")
            ax.set_ylabel(METRIC_LABELS.get(metric, metric))
            _layer_axis(ax, part)
        row[-1].legend(title="epoch", fontsize="small", loc="upper left",
                       bbox_to_anchor=(1.02, 1))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def nc1_by_layer(metrics, training, spectra=None, collapse_eps=0.2) -> Figure:
    return _per_layer(metrics, "nc1", "NC1 by layer over training")


def nc1_ratio_by_layer(metrics, training, spectra=None, collapse_eps=0.2) -> Figure:
    return _per_layer(metrics, "nc1_ratio", "NC1 ratio by layer, with the collapse line",
                      hline=collapse_eps, ylim=(0, 1.02))


def ncc_accuracy_by_layer(metrics, training, spectra=None, collapse_eps=0.2) -> Figure:
    return _per_layer(metrics, "ncc_accuracy", "Nearest-class-mean accuracy by layer",
                      ylim=(0, 1.02))


def training_curves(metrics, training, spectra=None, collapse_eps=0.2) -> Figure:
    long = training.melt(id_vars=["run", "dataset", "arch", "seed", "epoch"],
                         value_vars=["eval_train_loss", "test_loss", "train_acc", "test_acc"])
    long["split"] = long["variable"].str.startswith(("eval_train", "train")).map(
        {True: "train", False: "test"})
    models = by_model(long)
    fig, axes = plt.subplots(len(models), 2, figsize=(8.4, 3.4 * len(models)), squeeze=False)
    for (loss_ax, acc_ax), (model, rows) in zip(axes, models, strict=True):
        for ax, kind, label in ((loss_ax, "loss", "loss"), (acc_ax, "acc", "accuracy")):
            part = rows[rows["variable"].str.endswith(kind)]
            sns.lineplot(data=part, x="epoch", y="value", hue="split", errorbar=BAND, ax=ax)
            ax.set_ylabel(label if len(models) == 1 else f"{model}: {label}")
        loss_ax.set_yscale("log")
        acc_ax.set_ylim(0, 1.02)
    fig.suptitle("Training curves (mean ± sd over seeds)")
    fig.tight_layout()
    return fig


def nc_metrics_final(metrics, training, spectra=None, collapse_eps=0.2) -> Figure:
    """Every metric against depth at the last checkpoint, train and test."""
    last = metrics[(metrics["epoch"] == metrics["epoch"].max()) & metrics["layer_index"].notna()]
    names = [m for m in METRIC_LABELS if m in set(last["metric"])]
    cols = 4
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.8 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, names, strict=False):
        part = last[last["metric"] == metric].assign(
            model=lambda t: t["dataset"] + " / " + t["arch"])
        several = part["model"].nunique() > 1
        sns.lineplot(data=part, x="layer_index", y="value", hue="model" if several else "split",
                     style="split" if several else None, hue_order=None if several else SPLITS,
                     marker="o", errorbar=BAND, ax=ax, legend=metric == names[0])
        if metric in LOG_METRICS:
            ax.set_yscale("log")
        ax.set_title(METRIC_LABELS[metric], fontsize="medium")
        ax.set_ylabel("")
        _layer_axis(ax, last)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    fig.suptitle(f"All metrics by layer at the last checkpoint (epoch {last['epoch'].max()})")
    fig.tight_layout()
    return fig


def weight_spectra(metrics, training, spectra=None, collapse_eps=0.2) -> Figure:
    """Normalised singular values σ_k/Σσ of each layer's consuming weight, last checkpoint."""
    last = spectra[spectra["epoch"] == spectra["epoch"].max()]
    last = last[last["k"] < 40]
    models = by_model(last)
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 3.6), squeeze=False)
    for ax, (model, part) in zip(axes[0], models, strict=True):
        sns.lineplot(data=part, x="k", y="share", hue="layer_index", palette="viridis",
                     errorbar=BAND, ax=ax, legend="full")
        ax.set_yscale("log")
        ax.set_xlabel("singular value index k")
        ax.set_ylabel(r"$\sigma_k / \sum_j \sigma_j$")
        if len(models) > 1:
            ax.set_title(model)
        ax.legend(title="layer", fontsize="x-small", ncol=2, loc="upper left",
                  bbox_to_anchor=(1.02, 1))
    fig.suptitle(f"Spectra of the weights that read each layer (epoch {last['epoch'].max()})")
    fig.tight_layout()
    return fig


FIGURES: dict[str, Callable[..., Figure]] = {
    "training_curves": training_curves,
    "nc1_by_layer": nc1_by_layer,
    "nc1_ratio_by_layer": nc1_ratio_by_layer,
    "ncc_accuracy_by_layer": ncc_accuracy_by_layer,
    "nc_metrics_final": nc_metrics_final,
    "weight_spectra": weight_spectra,
}
