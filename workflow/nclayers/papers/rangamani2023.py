"""Rangamani et al. (2023), "Feature learning in deep classifiers through intermediate neural
collapse": Figs. 2–8 (the appendix's Figs. 9–15 are the same plots on more datasets) and the
claims, on these runs (diverged ones left out; values are seed means, with ± sd bands):

- the ETF experiments (Fig. 7, §5.3): the selected runs of every group whose design compares
  ``etf_layers``; as in the authors' fixed_etfs_expt/, each trains every k at one fixed lr (a
  group of its own, selecting nothing), its ``etf_layers = 0`` run the baseline;
- the *free* models (Figs. 2–6, §4–5.2): the selected runs that fix no layer to an ETF, outside
  the ETF experiments (whose free run is a baseline, not a second free model);
- the solutions without intermediate collapse (Fig. 8, §5.4, App. B): every free run, selected
  or not, that reached the interpolation threshold (its derived ``interpolation_epoch``) and
  whose ℓ* is missing or its last layer (the paper's hyperparameter search).

ℓ* is the collapse layer of the seed-mean NC1 ratios at ``Tables.thresholds.collapse_eps``
(computed here: the derived ``collapse_layer`` rows are per run and count the logits). Layer 0
is the input; a tapped ``classifier`` (the logits, trivially collapsed under MSE) is left out,
as in the paper. With L the last hidden layer, the top k* = L − ℓ* + 1 linear maps (the
classifier included) read the layers ℓ* … L: fixing k ≤ k* of them to ETFs (``etf_layers``,
``nclayers.models.MLP``) fixes only weights that read collapsed layers.

Claims, per free model at its last epoch (train split): NC1, ℓ* exists below the last layer;
NCC within NCC_TOL of the network's accuracy from ℓ* on; NC2 (each of its three measures) is
smallest in the deepest third of the collapsed hidden layers; PABS at least PABS_GAIN above
initialisation in the collapsed layers; the top C of Σσ at least TOP_C_SHARE, and the top C
singular values about equal (relative sd at most TOP_C_SPREAD), in the weights reading them;
in a ResNet tapped inside its blocks, PABS highest, and higher on average, at the features read
by each block's last convolution (just before the residual connection) than at the blocks'
other layers; the within-class stable rank first rises, then falls through the collapsed
layers. ETF: k ≤ k*
keeps the test accuracy within ETF_TOL of the k = 0 baseline's, k > k* lowers it by more (not
told where the design re-selects the lr per k).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from nclayers import vocabulary
from nclayers.derived import collapse_layer, last_epoch
from nclayers.papers import Tables, claims_frame, query
from nclayers.plots import placeholder

# The criteria of the claims (the paper gives ε only; the others are ours, stated in the claims).
NCC_TOL = 0.01  # NCC train accuracy within this of the network's own, from ℓ* on
PABS_GAIN = 0.2  # mean PABS in the collapsed layers at least this far above its initial value
TOP_C_SHARE = 0.9  # share of Σσ the top C singular values carry in the collapsed layers
TOP_C_SPREAD = 0.1  # relative sd (sd/mean) of the top C singular values: "nearly equal"
SPECTRUM_SHARE = 0.99  # a weight's rank estimate: singular values carrying this share of Σσ
ETF_TOL = 0.01  # test accuracy kept: within this of the baseline's (etf_layers = 0)
# A ResNet's tapped layers with ``taps: convs`` (models.ResNet): a residual block's output
# ``layer{s}.{b}`` and the activations inside it ``layer{s}.{b}.act{k}``.
RESIDUAL_LAYER = re.compile(r"^(layer\d+\.\d+)(?:\.act(\d+))?$")
# NC2's three measures (Fig. 3's panels, top to bottom), each 0 at a simplex ETF.
NC2_MEASURES = {"nc2_angle_shift": "mean of cos + 1/(C−1)",
                "nc2_equiangle_ratio": "equiangularity: std/|mean| of cosines",
                "nc2_equinorm": "equinorm: std/mean of ‖μ_c − μ_G‖"}
COLLAPSE_COLOR = "green"  # the paper's vertical line at ℓ*
MAX_NO_COLLAPSE = 6  # Fig. 8 shows at most this many runs
NO_FREE = ("no selected run of a model without fixed ETF layers: the figure needs at least one "
           "group of free models (etf_layers 0 or unset)")
NO_COLLAPSE = ("every run that reached the interpolation threshold collapses in an "
               "intermediate layer: no solution without intermediate NC to show (Fig. 8)")
NO_ETF = ("no ETF experiment: Fig. 7 needs a group whose architecture's etf_layers is an axis "
          "(e.g. etf_layers: [0, 3, 7] on an mlp) at one fixed lr, as in "
          "workflow/presets/rangamani2023/")


# --- which runs ---------------------------------------------------------------------------------

def _models(t: Tables, runs: pd.DataFrame, points: bool = False) -> list[query.Model]:
    """The models of ``runs``, named by the compared axes that differ among them but the ETF axis
    and by the group where any dataset × arch is in several; ``points``: each point of a sweep,
    named by every axis swept and by its group where its dataset × arch is in several."""
    several = runs.groupby(["dataset", "arch"])["group"].transform("nunique") > 1
    if points:
        axes = query.compared_axes(t, query.runs(t, selected=None)["run"], selected=True)
    else:
        axes = [a for a in query.compared_axes(t, runs["run"])
                if a != query.ETF_AXIS and runs[a].nunique() > 1]
        several = several | several.any()
    labels = [vocabulary.model_label(
        row["dataset"], row["arch"], *([row["group"]] if many else []),
        *(f"{a}={vocabulary.shown_value(row[a])}" for a in axes if pd.notna(row[a])))
        for row, many in zip(runs.to_dict("records"), several, strict=True)]
    return query.models(runs.assign(label=labels), by=["label", "dataset", "arch"],
                        label=lambda key: key["label"])


def _etf_run_ids(t: Tables) -> set[str]:
    """The runs of the ETF experiments: those whose design compares ``etf_layers``."""
    design = t.design
    if design.empty or "compared_axes" not in design:
        return set()
    compared = design["compared_axes"].fillna("").astype(str).str.split(";")
    return set(design.loc[compared.map(lambda axes: query.ETF_AXIS in axes), "run"])


def _free(t: Tables, selected: bool | None = True) -> pd.DataFrame:
    """The runs without fixed ETF layers outside the ETF experiments (whose k = 0 run is their
    baseline: counted there, not as a second free model)."""
    runs = query.runs(t, selected=selected)
    return runs[(query.etf_layers(runs) == 0) & ~runs["run"].isin(_etf_run_ids(t))]


def _lstar(t: Tables, runs: Sequence[str]) -> float:
    """ℓ*: the collapse layer of the seed-mean NC1 ratios at the runs' last epoch (train)."""
    rows = last_epoch(query.layer_rows(t.metrics, runs, logits=False))
    return collapse_layer(query.by_layer(rows, "nc1_ratio")["mean"], t.thresholds.collapse_eps)


def _no_collapse(t: Tables) -> pd.DataFrame:
    """The free runs, selected or not, that reached the interpolation threshold (a run that
    never trained is no solution) and whose ℓ* is missing or the last layer, in one pass over
    the table (a sweep has hundreds of runs)."""
    runs = _free(t, selected=None)
    runs = runs[runs["run"].map(query.derived(t, "interpolation_epoch")).notna()]
    rows = last_epoch(query.layer_rows(t.metrics, runs["run"], logits=False))
    ratios = rows[rows["metric"] == "nc1_ratio"]
    lstar = ratios.set_index("layer_index").groupby("run")["value"].apply(
        collapse_layer, eps=t.thresholds.collapse_eps)
    flat = lstar.isna() | (lstar >= ratios.groupby("run")["layer_index"].max())
    return runs[runs["run"].map(flat).eq(True)]


def _etf_experiments(t: Tables) -> list[tuple[query.Model, pd.DataFrame, float, float]]:
    """``[(model, its selected runs with their etf_layers as _k, ℓ* of its free model
    (etf_layers = 0), k*)]`` per ETF experiment (NaN without a free model)."""
    chosen = query.runs(t)
    chosen = chosen[chosen["run"].isin(_etf_run_ids(t))]
    out = []
    for model in _models(t, chosen):
        rows = chosen[chosen["run"].isin(model.runs)].assign(_k=query.etf_layers)
        free = list(rows.loc[rows["_k"] == 0, "run"])
        lstar = _lstar(t, free)
        last = query.layer_rows(t.metrics, free, logits=False)["layer_index"].max()
        out.append((model, rows, lstar, float(last) - lstar + 1))
    return out


def _etf_setting(t: Tables, rows: pd.DataFrame) -> tuple[str, bool]:
    """An ETF experiment's training setting in words, and whether it is the paper's: one lr
    for every k (the authors' fixed_etfs_expt/); an axis selected per k (e.g. the lr of a
    sweep) may pick, for each k, the lr that hides the accuracy lost."""
    compared = set(query.compared_axes(t, rows["run"]))
    varied = [a for a in query.compared_axes(t, rows["run"], selected=True)
              if a not in compared and a in rows and rows[a].nunique() > 1]
    if varied:
        return "; ".join(f"{a} re-selected per k (" + ", ".join(
            f"k={k}: {vocabulary.shown_value(v)}"
            for k, v in rows.sort_values("_k")[["_k", a]].itertuples(index=False)) + ")"
            for a in varied), False
    lrs = rows["lr"].dropna().unique() if "lr" in rows else []
    return (f"one lr {vocabulary.shown_value(lrs[0])} for every k" if len(lrs) == 1 else
            "one setting for every k"), True


def _spectra(t: Tables, runs: Sequence[str]) -> tuple[pd.DataFrame, int, pd.DataFrame]:
    """The runs' last-epoch weight spectra, C (the classifier's number of σ) and per layer index
    the seed means of ``top_c`` (the top C's share of Σσ), ``rank`` (how many σ carry
    SPECTRUM_SHARE of it), ``n`` (how many there are) and ``spread`` (the sd/mean of the top C
    σ; ``spread_init`` at the first epoch)."""
    rows = query.layer_rows(t.spectra, runs, None, logits=False)
    top = rows[rows["layer_index"] == rows["layer_index"].max()]
    classes = int(top.groupby(["run", "epoch"], sort=False).size().iloc[0])
    last, out = last_epoch(rows), []
    for when, table in (("last", last), ("init", query.first_epoch(rows))):
        for (_, index), part in table.sort_values("k").groupby(["run", "layer_index"]):
            share = part["share"].to_numpy() / part["share"].sum()
            spread = float(np.std(share[:classes]) / np.mean(share[:classes]))
            out.append({"layer_index": index, "spread_init": spread} if when == "init" else {
                "layer_index": index, "n": len(share), "top_c": float(share[:classes].sum()),
                "spread": spread,
                "rank": int(np.searchsorted(np.cumsum(share), SPECTRUM_SHARE - 1e-12) + 1)})
    stats = pd.DataFrame(out).groupby("layer_index").mean()
    return last, classes, stats[["top_c", "rank", "n", "spread", "spread_init"]]


# --- the figures --------------------------------------------------------------------------------

def _panels(items: Sequence, per_model: int, title: str, empty: str, panel_height: float = 2.5
            ) -> tuple[Figure, list[tuple[list[Axes], Any]]]:
    """A figure with ``per_model`` panels for each of ``items`` (in rows of at most 4 panels, 6
    of three-panel items, at most 4 rows where possible) and each item's panels; the
    placeholder ``empty`` without items."""
    if not items:
        return placeholder(empty), []
    count = len(items)
    per_row = min(count, max(1, 3 // per_model))
    while math.ceil(count / per_row) > 4 and (per_row + 1) * per_model <= max(4, 2 * per_model):
        per_row += 1
    rows, cols = math.ceil(count / per_row), per_row * per_model
    fig, grid = query.grid(count * per_model, cols, title, margin=(0.5, 0.7),
                           panel=(3.6 if cols <= 2 else 9.0 / cols, min(panel_height, 10.0 / rows)))
    return fig, [(list(grid[i // per_row, (i % per_row) * per_model:(i % per_row + 1) * per_model]),
                  item) for i, item in enumerate(items)]


def _line(ax: Axes, stats: pd.DataFrame, label: str | None = None, **style) -> None:
    """A seed-mean line against the layer index, with a ± sd band where there are seeds."""
    query.mean_line(ax, stats["mean"], stats.get("sd"), label=label, marker=".", **style)


def _layer_axis(ax: Axes, rows: pd.DataFrame, title: str, lstar: float = math.nan,
                eps: float | None = None) -> None:
    """The threshold ε (0–1 scale) and ℓ* where given, layer names (every k-th of many), title."""
    if eps is not None:
        ax.axhline(eps, color="crimson", linewidth=1, label=f"ε = {eps:g}")
        ax.set_ylim(0, 1.02)
    if not math.isnan(lstar):
        ax.axvline(lstar, color=COLLAPSE_COLOR, linewidth=1.3, label="collapse layer ℓ*")
    ticks = rows.drop_duplicates("layer_index").sort_values("layer_index")
    step = max(1, math.ceil(len(ticks) / 12))
    shown = ticks.iloc[sorted({*range(0, len(ticks), step), len(ticks) - 1})]
    ax.set_xticks(shown["layer_index"], shown["layer"], rotation=90, fontsize="x-small")
    ax.set_title(title, fontsize="small")


def fig2_traces(t: Tables) -> Figure:
    """Figs. 2 and 9 (NC1): Tr Σ_W (dotted), Tr Σ_B (dashed) and Tr Σ_T (solid) per layer at the
    last epoch, and the first two over Tr Σ_T with the threshold ε and ℓ* (green)."""
    fig, panels = _panels(_models(t, _free(t)), 2, "Feature variability suppression (NC1), train "
                          "split, last epoch (Rangamani et al. Figs. 2, 9)", NO_FREE)
    for (raw, norm), model in panels:
        rows = model.last(t.metrics, logits=False)
        for metric, name, style in (("tr_sigma_w", "Tr Σ_W", ":"), ("tr_sigma_b", "Tr Σ_B", "--"),
                                    ("tr_sigma_t", "Tr Σ_T", "-")):
            _line(raw, query.by_layer(rows, metric), name, color="k", linestyle=style)
        # Each run's Tr Σ_W / Tr Σ_T is its NC1 ratio, and Tr Σ_B / Tr Σ_T = 1 − it (Σ_T :=
        # Σ_W + Σ_B): their seed means and sd, the curve ℓ* is read from.
        ratio = query.by_layer(rows, "nc1_ratio")
        _line(norm, ratio, "Tr Σ_W / Tr Σ_T", color="k", linestyle=":")
        _line(norm, ratio.assign(mean=1 - ratio["mean"]), "Tr Σ_B / Tr Σ_T", color="k",
              linestyle="--")
        raw.set_yscale("log")
        lstar = _lstar(t, model.runs)
        for ax, what, eps in ((raw, "traces", None),
                              (norm, "normalised by Tr Σ_T", t.thresholds.collapse_eps)):
            _layer_axis(ax, rows, f"{model.label}: {what}", lstar, eps)
    query.legend_below(fig, fig.axes)
    return fig


def fig3_nc2(t: Tables) -> Figure:
    """Figs. 3 and 10 (NC2), the paper's three panels per network: the mean of
    cos(μ_c − μ_G, μ_c' − μ_G) + 1/(C−1) (0 at a simplex ETF), the std/|mean| of those cosines
    and the std/mean of the centred class-mean norms, per layer, a line per epoch."""
    fig, panels = _panels(_models(t, _free(t)), 3, "Class means approach a simplex ETF (NC2), "
                          "train split (Rangamani et al. Figs. 3, 10)", NO_FREE)
    for axes, model in panels:
        rows, lstar = model.rows(t.metrics, logits=False), _lstar(t, model.runs)
        for ax, (metric, what) in zip(axes, NC2_MEASURES.items(), strict=True):
            for epoch, part in rows.groupby("epoch"):
                _line(ax, query.by_layer(part, metric), f"epoch {epoch}",
                      color=colormaps["viridis"](0.9 * epoch / (rows["epoch"].max() or 1)))
            if metric == "nc2_angle_shift":  # signed, 0 at the ETF: a linear scale
                ax.axhline(0, color="k", linewidth=0.8)
            else:
                ax.set_yscale("log")
            _layer_axis(ax, rows, f"{model.label}:\n{what}", lstar)
        axes[-1].legend(fontsize="x-small", loc="best")
    return fig


def fig4_pabs(t: Tables) -> Figure:
    """Figs. 4 and 11 (NC3): mean cosine of the principal angles between the centred class means
    and the top-C input space of the weight reading each layer, at initialisation and last."""
    fig, panels = _panels(_models(t, _free(t)), 1, "Feature–weight alignment (NC3, PABS) "
                          "(Rangamani et al. Figs. 4, 11)", NO_FREE, 3.2)
    for (ax,), model in panels:
        rows = model.rows(t.metrics, logits=False)
        first = query.first_epoch(rows)
        _line(ax, query.by_layer(first, "nc3_pabs"),
              f"initialisation (epoch {first['epoch'].min()})", color="grey", linestyle="--")
        _line(ax, query.by_layer(last_epoch(rows), "nc3_pabs"), "last epoch", color="tab:blue")
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("mean cos of principal angles", fontsize="small")
        _layer_axis(ax, rows, f"{model.label}: PABS", _lstar(t, model.runs))
    query.legend_below(fig, fig.axes)
    return fig


def fig5_ncc(t: Tables) -> Figure:
    """Figs. 5 and 12 (NC4): the nearest-class-centre accuracy of each layer's features,
    train and test, against the network's own final accuracies (horizontal lines)."""
    fig, panels = _panels(_models(t, _free(t)), 1, "NCC accuracy per layer vs the network's "
                          "(Rangamani et al. Figs. 5, 12)", NO_FREE, 3.2)
    for (ax,), model in panels:
        rows = model.last(t.metrics, None, logits=False)
        for split, color in (("train", "tab:blue"), ("test", "tab:orange")):
            _line(ax, query.by_layer(rows[rows["split"] == split], "ncc_accuracy"),
                  f"NCC, {split}", color=color)
            ax.axhline(model.final(t, f"final_{split}_acc"), color=color, linestyle="--",
                       linewidth=1, label=f"network, {split}")
        _layer_axis(ax, rows, f"{model.label}: accuracy", _lstar(t, model.runs))
    query.legend_below(fig, fig.axes)
    return fig


def fig6_ranks(t: Tables) -> Figure:
    """Figs. 6 and 13–15: σ_k/σ_1 of the weight reading each layer (top row), and per layer how
    many σ carry 99 % of Σσ and the within-class features' stable rank (bottom row)."""
    fig, panels = _panels(_models(t, _free(t)), 2, "Ranks of weights and within-class features, "
                          "last epoch (Rangamani et al. Figs. 6, 13–15)", NO_FREE)
    for (spec_ax, rank_ax), model in panels:
        spectra, classes, stats = _spectra(t, model.runs)
        shown = spectra[spectra["k"] < 3 * classes]
        for index, part in shown.groupby("layer_index"):
            mean = part.groupby("k")["sigma"].mean()
            spec_ax.plot(mean.index + 1, mean / mean.iloc[0], linewidth=1,
                         color=colormaps["viridis"](index / max(shown["layer_index"].max(), 1)))
        spec_ax.axvline(classes, color="k", linestyle=":", linewidth=1, label="k = C")
        spec_ax.set_yscale("log")
        spec_ax.set_xlabel("k", fontsize="small")
        spec_ax.set_ylabel("σ_k / σ_1 (colour: depth)", fontsize="small")
        spec_ax.set_title(f"{model.label}: weight spectra", fontsize="small")
        _line(rank_ax, pd.DataFrame({"mean": stats["rank"]}),
              f"weight: σ's carrying {SPECTRUM_SHARE:.0%} of Σσ", color="tab:red")
        rows = model.last(t.metrics, logits=False)
        _line(rank_ax, query.by_layer(rows, "stable_rank"), "features: within-class stable rank",
              color="tab:blue")
        rank_ax.axhline(classes, color="k", linestyle=":", linewidth=1)
        rank_ax.set_yscale("log")
        _layer_axis(rank_ax, rows, f"{model.label}: rank estimates", _lstar(t, model.runs))
    query.legend_below(fig, fig.axes)
    return fig


def fig7_etf(t: Tables) -> Figure:
    """Fig. 7 (§5.3): final accuracy against the number of top linear layers fixed to simplex
    ETFs, and (green) k*, the number that read collapsed layers of the free model."""
    fig, panels = _panels(_etf_experiments(t), 1, "Fixing the top layers to simplex ETFs "
                          "(Rangamani et al. Fig. 7)", NO_ETF, 2.8)
    for (ax,), (model, rows, _, kstar) in panels:
        for split, style, color in (("test", "-", "tab:blue"), ("train", "--", "tab:grey")):
            _line(ax, rows.groupby("_k")[f"final_{split}_acc"].agg(mean="mean", sd="std"),
                  f"final {split} accuracy", color=color, linestyle=style)
        if not math.isnan(kstar):
            ax.axvline(kstar, color=COLLAPSE_COLOR, linewidth=1.3,
                       label="weights reading collapsed layers of the free model")
        ax.set_xlabel("top linear layers fixed to ETFs (classifier included)", fontsize="small")
        ax.set_ylabel("accuracy", fontsize="small")
        ax.set_title(f"{model.label}: accuracy, {_etf_setting(t, rows)[0]}",
                     fontsize="small", wrap=True)
    query.legend_below(fig, fig.axes)
    return fig


def fig8_no_collapse(t: Tables) -> Figure:
    """Fig. 8 (§5.4, App. B): runs without intermediate collapse: NC1 ratio and NCC accuracy
    per layer at the last epoch."""
    models = _models(t, _no_collapse(t), points=True)
    more = len(models) - MAX_NO_COLLAPSE
    hidden = f", {more} more not shown" if more > 0 else ""
    fig, panels = _panels(models[:MAX_NO_COLLAPSE], 2, "Solutions without intermediate "
                          f"collapse (Rangamani et al. Fig. 8){hidden}", NO_COLLAPSE)
    for (ratio_ax, ncc_ax), model in panels:
        rows = model.last(t.metrics, None, logits=False)
        _line(ratio_ax, query.by_layer(rows[rows["split"] == "train"], "nc1_ratio"),
              "Tr Σ_W / Tr Σ_T", color="k", linestyle=":")
        for split, color in (("train", "tab:blue"), ("test", "tab:orange")):
            _line(ncc_ax, query.by_layer(rows[rows["split"] == split], "ncc_accuracy"),
                  f"NCC, {split}", color=color)
        ncc_ax.set_ylim(0, 1.02)
        _layer_axis(ratio_ax, rows, f"{model.label}: NC1 ratio", eps=t.thresholds.collapse_eps)
        _layer_axis(ncc_ax, rows, f"{model.label}: NCC accuracy")
    query.legend_below(fig, fig.axes)
    return fig


FIGURES: dict[str, Callable[[Tables], Figure]] = {f.__name__: f for f in (
    fig2_traces, fig3_nc2, fig4_pabs, fig5_ncc, fig6_ranks, fig7_etf, fig8_no_collapse)}


# --- the claims ---------------------------------------------------------------------------------

def _model_claims(t: Tables, model: query.Model) -> list[dict]:
    """The claims of §4–5.2 for one free model: in words, where made, and what was measured."""
    eps = t.thresholds.collapse_eps
    texts = {
        "nc1": (f"there is a layer ℓ* after which every layer has Tr Σ_W/Tr Σ_T < ε = {eps:g} "
                "(and ℓ* is not the last layer)", "Sec. 4, 5.1; Fig. 2"),
        "ncc": (f"from ℓ* on, NCC accuracy equals the network's (train split, within "
                f"{NCC_TOL:g})", "Sec. 5.1; Fig. 5"),
        "nc2": ("the class means approach a simplex ETF most closely in the deepest layers: "
                "each NC2 measure (mean cos + 1/(C−1) in absolute value, std/|mean| of the "
                "cosines, std/mean of the norms) is smallest in the deepest third of the "
                "collapsed hidden layers ℓ* … L, below every earlier collapsed layer",
                "Sec. 5.1; Fig. 3 caption"),
        "pabs": ("PABS alignment in the collapsed layers far above its value at initialisation "
                 f"(mean gain ≥ {PABS_GAIN:g})", "Sec. 5.1; Fig. 4"),
        "rank": ("in collapsed layers the top C singular values dominate the weight spectrum "
                 f"(their mean share of the sum of the singular values ≥ {TOP_C_SHARE:g}; "
                 "weights with more than C singular values)", "Sec. 5.2; Fig. 6"),
        "equal": ("in collapsed layers the top C singular values of the weights are nearly "
                  f"equal (their sd/mean, averaged over the weights reading ℓ* … L with more "
                  f"than C singular values, ≤ {TOP_C_SPREAD:g})", "Sec. 4 (NC3), 5.1, 5.2; Fig. 6"),
        "residual": ("in a ResNet, feature-weight alignment is strongest just before a residual "
                     "connection: in the collapsed layers, the features read by each block's "
                     "last convolution (whose output meets the shortcut) have the highest PABS, "
                     "and on average a higher one than the other features of the blocks (each "
                     "block's output and its other inner activations)", "Sec. 5.1; Fig. 4"),
        "hunch": ("the within-class stable rank of the features first increases, then decreases "
                  "in the collapsed layers (over the hidden layers 1 … L: its peak p lies "
                  "strictly between the first and the last; its value at L is below its value "
                  "at ℓ*)", "Sec. 5.2; Fig. 6 caption")}
    rows = model.last(t.metrics, logits=False)
    if not rows["layer"].astype(str).str.match(RESIDUAL_LAYER).any():
        del texts["residual"]  # not a ResNet (or not tapped by blocks)
    nc1 = query.by_layer(rows, "nc1_ratio")
    lstar = collapse_layer(nc1["mean"], eps)  # _lstar of the rows at hand
    flat = ("no collapsed layers", None)
    if nc1.empty:
        verdicts = dict.fromkeys(texts, ("no measurements of this model", None))
    elif math.isnan(lstar):
        verdicts = {**dict.fromkeys(texts, flat), "nc1": _nc1(nc1, lstar, eps),
                    "ncc": _ncc(t, model, rows, lstar)}
    else:
        _, classes, spectra = _spectra(t, model.runs)
        verdicts = {"nc1": _nc1(nc1, lstar, eps), "ncc": _ncc(t, model, rows, lstar),
                    "nc2": _nc2_deepest(rows, lstar), "pabs": _pabs(t, model.runs, rows, lstar),
                    "rank": _low_rank(classes, spectra, lstar),
                    "equal": _top_c_equal(classes, spectra, lstar),
                    "residual": _before_residual(rows, lstar), "hunch": _hunchback(rows, lstar)}
    return [query.claim(f"{text} [{model.label}]", where, *verdicts[key])
            for key, (text, where) in texts.items()]


def _nc1(nc1: pd.DataFrame, lstar: float, eps: float) -> query.Verdict:
    ratios, top = nc1["mean"], float(nc1.index.max())
    if math.isnan(lstar):
        return f"no layer ℓ* (last layer's ratio {ratios.iloc[-1]:.3g} ≥ ε = {eps:g})", False
    measured = (f"ℓ* = {nc1.loc[lstar, 'layer']} (index {int(lstar)}) of {int(top)}; "
                f"Tr Σ_W/Tr Σ_T ≤ {ratios.loc[lstar:].max():.3g} from ℓ* on")
    if lstar > ratios.index.min():
        measured += f", {ratios.loc[:lstar].iloc[-2]:.3g} just before"
    intermediate = lstar < top
    return measured + ("" if intermediate else "; only the last layer is collapsed"), intermediate


def _ncc(t: Tables, model: query.Model, rows: pd.DataFrame, lstar: float) -> query.Verdict:
    ncc = query.by_layer(rows, "ncc_accuracy")["mean"]
    network = model.final(t, "final_train_acc")
    if math.isnan(lstar):
        return (f"no collapsed layers; network {network:.3f}, last layer's NCC "
                f"{ncc.iloc[-1]:.3f}", None)
    gap = (ncc.loc[lstar:] - network).abs()
    return (f"network {network:.3f}; NCC from ℓ* on {ncc.loc[lstar:].min():.3f}–"
            f"{ncc.loc[lstar:].max():.3f} (largest gap {gap.max():.3f})",
            bool(gap.max() <= NCC_TOL))


def _nc2_deepest(rows: pd.DataFrame, lstar: float) -> query.Verdict:
    """Each NC2 measure over the collapsed hidden layers ℓ* … L (the input is no hidden
    layer): is its smallest value in the deepest third, strictly below the earlier ones?"""
    parts, verdicts = [], []
    for metric, what in (("nc2_angle_shift", "|mean cos + 1/(C−1)|"),
                         ("nc2_equiangle_ratio", "equiangle"), ("nc2_equinorm", "equinorm")):
        values = query.by_layer(rows, metric)["mean"].abs()
        values = values[(values.index >= max(lstar, 1))].dropna()
        if len(values) < 2:
            continue
        deep = values.iloc[-math.ceil(len(values) / 3):]
        earlier = values.iloc[:len(values) - len(deep)]
        parts.append(f"{what} {earlier.min():.3g} (min over {int(earlier.index[0])}–"
                     f"{int(earlier.index[-1])}) vs {deep.min():.3g} (min over "
                     f"{int(deep.index[0])}–{int(deep.index[-1])})")
        verdicts.append(bool(deep.min() < earlier.min()))
    if not parts:
        return "fewer than two collapsed hidden layers (or no NC2 measurements)", None
    return "; ".join(parts), all(verdicts)


def _pabs(t: Tables, runs: Sequence[str], rows: pd.DataFrame, lstar: float) -> query.Verdict:
    first = query.first_epoch(query.layer_rows(t.metrics, runs, logits=False))
    now = query.by_layer(rows, "nc3_pabs")["mean"].loc[lstar:].dropna()
    init = query.by_layer(first, "nc3_pabs")["mean"].reindex(now.index).dropna()
    now = now.reindex(init.index)
    if now.empty:
        return "no PABS in the collapsed layers (or no epoch-0 checkpoint)", None
    gain = float((now - init).mean())
    return (f"collapsed layers: mean {now.mean():.3f} vs {init.mean():.3f} at initialisation "
            f"(gain {gain:.3f})", gain >= PABS_GAIN)


def _low_rank(classes: int, stats: pd.DataFrame, lstar: float) -> query.Verdict:
    stats = stats[stats["n"] > classes]
    inside = stats.loc[stats.index >= lstar, "top_c"]
    outside = stats.loc[stats.index < lstar, "top_c"]
    if inside.empty:
        return f"C = {classes}; only the classifier reads collapsed layers", None
    before = f", {outside.mean():.3f} in the layers before ℓ*" if len(outside) else ""
    return (f"C = {classes}; top-C share {inside.mean():.3f} (min {inside.min():.3f}) in the "
            f"collapsed layers{before}", bool(inside.mean() >= TOP_C_SHARE))


def _top_c_equal(classes: int, stats: pd.DataFrame, lstar: float) -> query.Verdict:
    stats = stats[stats["n"] > classes]
    inside = stats.loc[stats.index >= lstar, "spread"]
    if inside.empty:
        return f"C = {classes}; only the classifier reads collapsed layers", None
    init = stats.loc[stats.index >= lstar, "spread_init"].mean()
    return (f"C = {classes}; sd/mean of the top C σ {inside.mean():.3f} (max "
            f"{inside.max():.3f}) in the collapsed layers, {query.fmt(init)} at "
            "initialisation", bool(inside.mean() <= TOP_C_SPREAD))


def _before_residual(rows: pd.DataFrame, lstar: float) -> query.Verdict:
    """PABS of the collapsed layers inside residual blocks: the last inner activation of each
    block (read by the convolution that meets the shortcut) against the blocks' other layers."""
    pabs = query.by_layer(rows, "nc3_pabs")
    pabs = pabs[pabs.index >= lstar].dropna(subset=["mean"])
    parsed = {i: RESIDUAL_LAYER.match(str(name)) for i, name in pabs["layer"].items()}
    inner: dict[str, list[tuple[int, int]]] = {}  # block → its (act number, layer index)
    for index, match in parsed.items():
        if match and match.group(2):
            inner.setdefault(match.group(1), []).append((int(match.group(2)), index))
    before = {max(acts)[1] for acts in inner.values()}
    within = {i for i, match in parsed.items() if match and i not in before}
    if not before or not within:
        return ("no collapsed layer inside residual blocks on both sides (taps: convs "
                "measures inside the blocks)", None)
    values = pabs["mean"]
    top = values.loc[sorted(before | within)].idxmax()
    high, low = values.loc[sorted(before)], values.loc[sorted(within)]
    return (f"PABS before a residual connection {high.mean():.3f} ({_layers(high)}), "
            f"elsewhere in the blocks {low.mean():.3f} ({_layers(low)}); highest at "
            f"{pabs.loc[top, 'layer']}", bool(top in before and high.mean() > low.mean()))


def _layers(values: pd.Series) -> str:
    count = f"{len(values)} layer{'s' if len(values) > 1 else ''}"
    return count if len(values) == 1 else f"{count}, {values.min():.3f}–{values.max():.3f}"


def _hunchback(rows: pd.DataFrame, lstar: float) -> query.Verdict:
    ranks = query.by_layer(rows, "stable_rank")["mean"]
    ranks = ranks[ranks.index >= 1].dropna()  # the hidden layers 1 … L
    if len(ranks) < 3 or lstar >= ranks.index[-1] or lstar not in ranks.index:
        return "fewer than three hidden layers, or no collapsed layer below L", None
    peak, first, last = ranks.idxmax(), ranks.index[0], ranks.index[-1]
    return (f"stable rank {ranks.loc[first]:.3g} at layer {int(first)}, peak "
            f"{ranks.max():.3g} at {int(peak)}, {ranks.loc[lstar]:.3g} at ℓ* = {int(lstar)}, "
            f"{ranks.loc[last]:.3g} at L = {int(last)}",
            bool(first < peak < last and ranks.loc[last] < ranks.loc[lstar]))


def _etf_claims(t: Tables) -> list[dict]:
    keep = (f"fixing the top layers that read collapsed layers to simplex ETFs keeps the "
            f"test accuracy (within {ETF_TOL:g} of the k = 0 baseline, one lr for every k)")
    hurt = (f"fixing layers that read non-collapsed layers to ETFs lowers the test "
            f"accuracy (by more than {ETF_TOL:g}, one lr for every k)")
    where = "Sec. 5.3; Fig. 7"
    if not (experiments := _etf_experiments(t)):
        return [query.claim(f"{c} [no ETF experiment]", where,
                            "the config has no etf_layers axis", None) for c in (keep, hurt)]
    out = []
    for model, rows, lstar, kstar in experiments:
        acc = rows.groupby("_k")["final_test_acc"].mean()
        setting, faithful = _etf_setting(t, rows)
        if 0 not in acc.index or math.isnan(kstar) or not faithful:
            why = ("no k = 0 baseline run (etf_layers = 0)" if 0 not in acc.index else
                   f"the k = 0 baseline (test {acc.loc[0]:.3f}) has no collapsed layer"
                   if math.isnan(kstar) else
                   f"not the paper's design, which trains every k at one lr: {setting}")
            out += [query.claim(f"{c} [{model.label}]", where, why, None) for c in (keep, hurt)]
            continue
        base, fixed = float(acc.loc[0]), acc.drop(index=0)
        head = (f"{setting}; k = 0 baseline {base:.3f}, ℓ* = {int(lstar)}: "
                f"the top k* = {int(kstar)} linear layers read collapsed layers; ")
        for text, part, test in ((keep, fixed[fixed.index <= kstar], lambda d: d >= -ETF_TOL),
                                 (hurt, fixed[fixed.index > kstar], lambda d: d < -ETF_TOL)):
            values = ", ".join(f"k={int(k)}: {v:.3f}" for k, v in part.items())
            out.append(query.claim(f"{text} [{model.label}]", where,
                                   head + (values or "no etf_layers value on this side of k*"),
                                   None if part.empty else bool(test(part - base).all())))
    return out


def claims(t: Tables) -> pd.DataFrame:
    """Each claim of §4–5.3 per free model and per ETF experiment, with what was measured."""
    return claims_frame([row for model in _models(t, _free(t)) for row in _model_claims(t, model)]
                        + _etf_claims(t))


TABLES: dict[str, Callable[[Tables], pd.DataFrame]] = {"claims": claims}
