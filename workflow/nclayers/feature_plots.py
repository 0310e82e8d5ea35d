"""Figures of the feature analysis (lindegaard2023 §4.3–4.4, App. C), from the tidy tables of
:func:`nclayers.features.analyse_layers`; each function returns a matplotlib Figure.

``layers`` selects panels by name or by ``layer_index`` (default: every layer in the table,
for the neuron sparsity every layer but the input, which the thesis leaves out, §5.4).
:data:`FEATURE_FIGURES` maps a file name to a function of the dict of tables.

The panels of a figure wrap into rows of at most ``cols`` (balanced: 7 layers make rows of 4
and 3), so that a figure stays ≤ ~9.5 in wide and ≤ ~12 in tall up to ~12 layers and reads at
the report's text width (see :mod:`nclayers.plots`, whose :func:`~nclayers.plots.use_style`
the drawing step calls first).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from nclayers import vocabulary
from nclayers.cluster_matrix import cluster_class_matrix
from nclayers.plots import hue_circle

Layers = Sequence[str | int] | None
EXCLUDED = "#d9d9d9"  # points of clusters < 3 points
CORRECT = "#4c72b0"  # the lines and dots of the PCA and sparsity figures
# The error panels of the UMAPs: wrong points black over pale blue right ones, colours no class
# has (the thesis' Fig. C.2.4 uses blue and purple, which read alike and are classes' colours)
RIGHT, WRONG = "#a6cee3", "#000000"
WIDTH = 9.3  # in: the widest figure that reads at the report's text width (nclayers.plots)


def _layers(table: pd.DataFrame, layers: Layers, skip_input: bool = False) -> list[tuple]:
    """(layer_index, layer) pairs in depth order, restricted to ``layers``."""
    pairs = list(table[["layer_index", "layer"]].drop_duplicates().sort_values("layer_index")
                 .itertuples(index=False, name=None))
    if layers is not None:
        wanted = set(layers)
        pairs = [(i, n) for i, n in pairs if i in wanted or n in wanted]
    elif skip_input and len(pairs) > 1:
        pairs = [(i, n) for i, n in pairs if i != 0]
    if not pairs:
        raise ValueError(f"no layers to draw: the table has "
                         f"{', '.join(table['layer'].unique()) or 'none'}, asked for {layers}")
    return pairs


def _shape(count: int, cols: int) -> tuple[int, int]:
    """(rows, columns) of ``count`` panels in rows of at most ``cols``, as even as can be."""
    rows = math.ceil(count / max(1, min(cols, count)))
    return rows, math.ceil(count / rows)


def _grid(count: int, cols: int, width: float, height: float | None, rows_per: int = 1,
          extra: tuple[float, float] = (0.0, 0.4), **kw):
    """A figure of ``count`` panels, each at most ``width`` in wide (narrower where that many
    columns would make the figure wider than WIDTH) and ``height`` in tall (None: square and
    a title); ``extra`` (in) adds room beside and above them (legends, colour bar, title)."""
    rows, cols = _shape(count, cols)
    width = min(width, (WIDTH - extra[0]) / cols)
    height = width + 0.25 if height is None else height
    fig = Figure(figsize=(width * cols + extra[0], height * rows * rows_per + extra[1]),
                 layout="constrained")
    axes = fig.subplots(rows * rows_per, cols, squeeze=False, **kw)
    return fig, axes, rows


def _palette(num_classes: int) -> list:
    """A colour per class: tab10 up to 10 classes, else a circle of evenly spaced hues."""
    if num_classes <= 10:
        return list(colormaps["tab10"].colors[:num_classes])
    return hue_circle(num_classes)


def _spread(cmap: str, count: int) -> list:
    """``count`` colours evenly spaced inside ``cmap``, its ends left out (as seaborn's
    ``color_palette(cmap, count)``)."""
    return [tuple(c[:3]) for c in colormaps[cmap](np.linspace(0, 1, count + 2)[1:-1])]


def _dots(entries: Sequence[tuple[str, object]]) -> list[Line2D]:
    return [Line2D([], [], marker="o", linestyle="", color=colour, label=label)
            for label, colour in entries]


def _class_legend(fig: Figure, num_classes: int, extra: Sequence[tuple[str, object]] = ()
                  ) -> None:
    colours = _palette(num_classes)
    fig.legend(handles=_dots([(str(c), colours[c]) for c in range(num_classes)] + list(extra)),
               title="class", loc="outside right upper")


def _scatter(ax, part: pd.DataFrame, colours, title: str) -> None:
    ax.scatter(part["x"], part["y"], c=colours, s=max(0.5, min(8.0, 3000 / len(part))),
               linewidths=0, rasterized=True)  # rasterised: 10⁵ vector dots make a slow PDF
    ax.set_title(title, fontsize="medium")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")


def _title(index: int, name: str) -> str:
    return f"layer {index} ({name})"


# --- UMAP ------------------------------------------------------------------------------------

def umap_by_class(umap: pd.DataFrame, layers: Layers = None, cols: int = 4) -> Figure:
    """UMAP of each layer, points coloured by true class (Fig. 4.3.1, C.2.3)."""
    pairs = _layers(umap, layers)
    num_classes = int(umap["label"].max()) + 1
    colours = np.asarray(_palette(num_classes))
    fig, axes, _ = _grid(len(pairs), cols, 3.0, None, extra=(0.9, 0.4))
    for ax, (index, name) in zip(axes.flat, pairs, strict=False):
        part = umap[umap["layer_index"] == index]
        _scatter(ax, part, colours[part["label"].to_numpy()], _title(index, name))
    for ax in axes.flat[len(pairs):]:
        ax.set_visible(False)
    _class_legend(fig, num_classes)
    fig.suptitle("UMAP of the activations (cosine, 20 neighbours), by true class")
    return fig


def umap_by_cluster(umap: pd.DataFrame, assignments: pd.DataFrame, method: str = "cosine",
                    layers: Layers = None, cols: int = 4) -> Figure:
    """UMAP of each layer (a column each, in rows of at most ``cols`` layers), coloured (top)
    by the class its cluster induces and (bottom) by whether that induced class is wrong
    (Fig. C.2.4, C.2.6)."""
    pairs = _layers(umap, layers)
    num_classes = int(umap["label"].max()) + 1
    colours = np.asarray(_palette(num_classes) + [EXCLUDED], dtype=object)
    fig, axes, rows = _grid(len(pairs), cols, 3.0, 1.85, rows_per=2, extra=(1.4, 0.4))
    cols = axes.shape[1]
    chosen = assignments[assignments["method"] == method]
    for k, (index, name) in enumerate(pairs):
        top, bottom = axes[2 * (k // cols), k % cols], axes[2 * (k // cols) + 1, k % cols]
        part = umap[umap["layer_index"] == index].merge(
            chosen[chosen["layer_index"] == index][["point", "induced"]], on="point")
        induced = part["induced"].to_numpy()
        _scatter(top, part, list(colours[induced]), _title(index, name))
        wrong = (induced >= 0) & (induced != part["label"].to_numpy())
        state = np.where(induced < 0, EXCLUDED, np.where(wrong, WRONG, RIGHT))
        scored = int((induced >= 0).sum())
        order = np.argsort(wrong, kind="stable")  # the wrong points drawn last, on top
        _scatter(bottom, part.iloc[order], list(state[order]),
                 f"wrong: {100 * wrong.sum() / scored:.1f}%" if scored else "all excluded")
    for row in range(rows):
        axes[2 * row, 0].set_ylabel("induced class")
        axes[2 * row + 1, 0].set_ylabel("error of the\ninduced class")
    for k in range(len(pairs), rows * cols):
        for r in (0, 1):
            axes[2 * (k // cols) + r, k % cols].set_visible(False)
    _class_legend(fig, num_classes, [("excluded (< 3)", EXCLUDED)])
    fig.legend(handles=_dots([("correct", RIGHT), ("wrong", WRONG),
                              ("excluded (< 3)", EXCLUDED)]),
               title="induced class", loc="outside right lower")
    fig.suptitle(f"UMAP coloured by agglomerative clustering "
                 f"({vocabulary.METHOD_LABELS.get(method, method)})")
    return fig


# --- clustering ------------------------------------------------------------------------------

def cluster_heatmaps(assignments: pd.DataFrame, method: str = "cosine", layers: Layers = None,
                     cols: int = 4) -> Figure:
    """Row-normalised cluster × class heat maps of the clusters of ≥ 3 points, rows sorted by
    induced class, then size (Fig. 4.3.2, C.2.5); lines separate the induced classes."""
    chosen = assignments[assignments["method"] == method]
    pairs = _layers(chosen, layers)
    num_classes = int(assignments["label"].max()) + 1
    fig, axes, _ = _grid(len(pairs), cols, 3.0, 2.9, extra=(0.8, 0.4))
    image = None
    for k, (ax, (index, name)) in enumerate(zip(axes.flat, pairs, strict=False)):
        part = chosen[chosen["layer_index"] == index]
        matrix = cluster_class_matrix(part["cluster"], part["label"], num_classes)
        ax.set_title(f"{_title(index, name)}:\n{len(matrix)} clusters", fontsize="medium")
        ax.set_xlabel("true class")
        ax.grid(False)
        if k % axes.shape[1] == 0:  # the same on every panel: once a row
            ax.set_ylabel("cluster (by induced class, then size)")
        if matrix.empty:
            ax.text(0.5, 0.5, "no cluster\nof ≥ 3 points", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        shares = matrix[list(range(num_classes))].to_numpy()
        image = ax.imshow(shares, aspect="auto", cmap="Blues", vmin=0, vmax=1,
                          interpolation="nearest")
        for edge in np.flatnonzero(np.diff(matrix["induced"].to_numpy())) + 0.5:
            ax.axhline(edge, color="0.6", linewidth=0.4)
        ax.set_xticks(range(num_classes), [str(c) for c in range(num_classes)],
                      fontsize="x-small" if num_classes > 10 else None)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # a cluster's row, not 2.5
    for ax in axes.flat[len(pairs):]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="share of the cluster's points")
    fig.suptitle(f"Clusters × true classes, agglomerative "
                 f"({vocabulary.METHOD_LABELS.get(method, method)})")
    return fig


# --- PCA -------------------------------------------------------------------------------------

def pca_spectrum(pca: pd.DataFrame, layers: Layers = None) -> Figure:
    """Eigenvalues of the covariance by component and 1 − cumulative share, with the
    component where it falls below 0.01 marked, a line per layer (Fig. 4.4.1); the layers'
    legend under both panels."""
    pairs = _layers(pca, layers)
    colours = _spread("viridis", len(pairs))
    fig = Figure(figsize=(WIDTH, 3.6 + 0.22 * math.ceil(len(pairs) / 4)), layout="constrained")
    ax_values, ax_rest = fig.subplots(1, 2)
    for colour, (index, name) in zip(colours, pairs, strict=True):
        part = pca[pca["layer_index"] == index]
        # Round-off (~1e-16 of the largest) is no variance: left out, not drawn as a cliff.
        values = part["eigenvalue"].where(part["eigenvalue"] > 1e-12 * part["eigenvalue"].max())
        below = part["component"][1 - part["cumulative"] < 0.01]
        # k where it passes 0.01 (Fig. 4.4.1b): in the legend, as labels beside the dots
        # overprint each other where layers pass it close together
        label = _title(index, name) + (f": k = {int(below.iloc[0])}" if len(below) else "")
        ax_values.plot(part["component"], values, color=colour, label=label)
        rest = (1 - part["cumulative"]).where(lambda r: r > 1e-12)
        ax_rest.plot(part["component"], rest, color=colour)
        if len(below):
            ax_rest.plot([int(below.iloc[0])], [0.01], "o", color=colour)
    ax_values.set(yscale="log", xlabel="principal component", ylabel="eigenvalue (variance)",
                  title="Spectrum of the covariance")
    ax_rest.axhline(0.01, color="crimson", linestyle="--", linewidth=1, label="0.01")
    ax_rest.set(yscale="log", xlabel="principal component", ylabel="1 − cumulative share",
                title="Unexplained share (•: k where it passes 0.01)")
    ax_rest.legend()
    fig.legend(*ax_values.get_legend_handles_labels(), loc="outside lower center",
               ncol=min(4, len(pairs)))
    return fig


def pca_l1(pca: pd.DataFrame, layers: Layers = None, cols: int = 3) -> Figure:
    """ℓ1 norm of each unit principal direction (right axis: its corresponding dimensionality
    π‖v‖₁²/2) against a random orthonormal basis and √(2p/π) (Fig. 4.4.2, C.2.7)."""
    pairs = _layers(pca, layers)
    fig, axes, _ = _grid(len(pairs), cols, 3.8, 2.6)
    cols = axes.shape[1]

    def to_dim(l1):
        return np.pi * l1 * np.abs(l1) / 2

    def to_l1(dim):
        return np.sign(dim) * np.sqrt(2 * np.abs(dim) / np.pi)

    for k, (ax, (index, name)) in enumerate(zip(axes.flat, pairs, strict=False)):
        part = pca[pca["layer_index"] == index]
        dot = max(1.0, min(8.0, 800 / len(part)))
        ax.scatter(part["component"], part["random_l1"], s=dot, color="0.6", linewidths=0,
                   label="random orthonormal", rasterized=True)
        ax.scatter(part["component"], part["l1"], s=dot, color=CORRECT, linewidths=0,
                   label="principal directions", rasterized=True)
        units = int(part["units"].iloc[0])
        ax.axhline(math.sqrt(2 * units / math.pi), color="crimson", linestyle="--",
                   linewidth=1, label=r"$\sqrt{2p/\pi}$ (uniform random)")
        ax.set(xlabel="principal component", title=_title(index, name), ylim=(0, None))
        right = ax.secondary_yaxis("right", functions=(to_dim, to_l1))
        # The axis labels are the same on every panel: left of a row and right of it.
        if k % cols == 0:
            ax.set_ylabel(r"$\|v\|_1$")
        if k % cols == cols - 1 or k == len(pairs) - 1:
            right.set_ylabel(r"dimensionality $\pi\|v\|_1^2/2$")
    for ax in axes.flat[len(pairs):]:
        ax.set_visible(False)
    handles = axes.flat[0].get_legend_handles_labels()
    if len(pairs) < axes.size:  # in the first free panel, else under the panels
        spare = axes.flat[len(pairs)]
        spare.set_visible(True)
        spare.axis("off")
        spare.legend(*handles, loc="center")
    else:
        fig.legend(*handles, loc="outside lower center", ncol=3)
    fig.suptitle("Sparsity of the principal directions by their ℓ1 norm")
    return fig


# --- neurons ---------------------------------------------------------------------------------

def neuron_sparsity(sparsity: pd.DataFrame, layers: Layers = None, cols: int = 4) -> Figure:
    """Per layer, units sorted by sparsity: (top) share of exact zeros, (bottom) mean ± std of
    the nonzero activations (Fig. 4.4.3, 4.4.4, C.2.9)."""
    pairs = _layers(sparsity, layers, skip_input=True)
    fig, axes, rows = _grid(len(pairs), cols, 3.6, 1.85, rows_per=2)
    cols = axes.shape[1]
    for k, (index, name) in enumerate(pairs):
        row, col = 2 * (k // cols), k % cols
        top, bottom = axes[row, col], axes[row + 1, col]
        bottom.sharex(top)
        part = sparsity[sparsity["layer_index"] == index].sort_values("unit_rank")
        top.plot(part["unit_rank"], part["zero_share"], color=CORRECT)
        top.set(ylim=(-0.02, 1.02), title=_title(index, name))
        top.tick_params(labelbottom=False)
        # a band, not a bar per unit: hundreds of bars fill the panel into a solid block
        bottom.fill_between(part["unit_rank"], part["mean"] - part["std"],
                            part["mean"] + part["std"], color="#55a868", alpha=0.3, lw=0)
        bottom.plot(part["unit_rank"], part["mean"], "o", markersize=1.5, color=CORRECT)
        if (part["mean"].dropna() > 0).all() and part["mean"].notna().any():
            # a linear axis from 0: on a log one, every unit whose sd exceeds its mean sends
            # the band down in a spike
            bottom.set_ylim(bottom=0, top=1.05 * (part["mean"] + part["std"]).max())
        bottom.set(xlabel="unit (sorted by sparsity)")
        if col == 0:  # the same on every panel: once a row
            top.set_ylabel("share of zeros")
            bottom.set_ylabel("nonzero mean ± std")
    for k in range(len(pairs), rows * cols):
        for r in (0, 1):
            axes[2 * (k // cols) + r, k % cols].set_visible(False)
    fig.suptitle("Neuron sparsity and the size of the nonzero activations")
    return fig


# --- registry --------------------------------------------------------------------------------

Tables = dict[str, pd.DataFrame]
FEATURE_FIGURES: dict[str, Callable[[Tables], Figure]] = {
    "umap_class": lambda t: umap_by_class(t["umap"]),
    "umap_cosine": lambda t: umap_by_cluster(t["umap"], t["assignments"], "cosine"),
    "umap_ward": lambda t: umap_by_cluster(t["umap"], t["assignments"], "ward"),
    "clusters_cosine": lambda t: cluster_heatmaps(t["assignments"], "cosine"),
    "clusters_ward": lambda t: cluster_heatmaps(t["assignments"], "ward"),
    "pca_spectrum": lambda t: pca_spectrum(t["pca"]),
    "pca_l1": lambda t: pca_l1(t["pca"]),
    "neuron_sparsity": lambda t: neuron_sparsity(t["sparsity"]),
}
