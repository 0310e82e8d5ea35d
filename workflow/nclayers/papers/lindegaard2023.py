"""Lindegaard (2023), MSc thesis "Feature learning in deep classifiers through Intermediate
Neural Collapse" (Ch. 3–4, App. B–C): its figures and claims from the experiment's tables.

The preset names its groups by role (``PAPER_GROUPS["lindegaard2023"]``, with families ``g_…``):

- ``sweep``: each model's learning-rate sweep, the best run kept (§3.3; Figs 4.1.x, B.0.x);
- ``grid``: learning rate × weight decay × seeds, nothing selected (§4.2; Fig. 4.2.1, C.1.x);
- ``features``: the MLP-10 of §4.3–4.4, whose feature analysis (clusters, retention, PCA;
  Tables 4.3.1, 4.3.2, C.2.1, C.2.2, Fig. 4.4.1; ``Tables.features``) the claims check.

The collapse layer (from which on every NC1 ratio, train split, is below
``thresholds.collapse_eps``) is the one ``aggregate`` derived per run and epoch. Each claim
(:data:`CLAIMS`, with its criterion) holds where it holds in every case that can tell; a config
that lacks a group gets figures that say what is missing and claims that hold None.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from nclayers.derived import last_epoch
from nclayers.papers import FEATURE_PAPER_TABLES, Tables, claims_frame, query
from nclayers.plots import placeholder
from nclayers.vocabulary import PAPER_GROUPS

SWEEP, GRID, FEATURES = PAPER_GROUPS["lindegaard2023"]
NCC_TOLERANCE = 0.02  # |NCC test accuracy − network test accuracy| that counts as "equal"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
NO_SWEEP, NO_FEATURES = ("no measured best run of a sweep group",
                         "no feature analysis of the features group")
Told = tuple[list[str], list[bool]]  # a claim's measured text per case, its outcomes where told


# --- the rows each figure and claim reads ----------------------------------------------------

def _final(t: Tables, run_ids: Iterable[str]) -> pd.DataFrame:
    """The per-layer rows (every split) of ``run_ids`` at each run's last epoch."""
    return last_epoch(query.layer_rows(t.metrics, run_ids, split=None))


def collapse_layers(t: Tables, runs: Iterable[str], at: pd.DataFrame | None = None) -> pd.Series:
    """Run → its collapse layer at its last epoch, or at its last epoch in ``at`` (a feature
    table: where its features were analysed); NaN where none collapses or nothing was measured."""
    epoch = {} if at is None else at.groupby("run")["epoch"].max().to_dict()
    last, every = query.derived(t, "collapse_layer"), query.derived(t, "collapse_layer", "all")
    return pd.Series({run: every.get((run, epoch[run]), math.nan) if run in epoch
                      else last.get(run, math.nan) for run in runs}, dtype=float)


def _measured(t: Tables, runs: pd.DataFrame) -> pd.DataFrame:
    """The measured ``runs``, with their collapse layer and deepest layer at their last epoch."""
    depth = _final(t, runs["run"]).groupby("run")["layer_index"].max()
    runs = runs.assign(collapse=runs["run"].map(collapse_layers(t, runs["run"])),
                       depth=runs["run"].map(depth))
    return runs[runs["depth"].notna()]


def _features(t: Tables) -> dict[str, pd.DataFrame] | None:
    """The features group's feature tables at each run's last analysed epoch; None without."""
    runs = query.runs(t, FEATURES, selected=None)["run"]
    feats = {name: query.feature_table(t, name, runs) for name in FEATURE_PAPER_TABLES}
    return None if feats["clusters"].empty else feats


def _palette(keys: list) -> dict:
    return {k: colormaps["viridis"](i / max(len(keys) - 1, 1)) for i, k in enumerate(keys)}


# --- figures ---------------------------------------------------------------------------------

def fig4_1_nc_by_layer(t: Tables) -> Figure:
    """Figs. 4.1.1, 4.1.4, B.0.x: NC1 ratio (train) and NCC accuracy (train, test) per layer of
    each model's best run (sweep groups), a row per architecture, a line per dataset."""
    runs = query.runs(t, SWEEP)
    final = _final(t, runs["run"])
    if final.empty:
        return placeholder("lindegaard2023: no measured run of a sweep group (Figs. 4.1.x)")
    archs = list(dict.fromkeys(runs["arch"]))
    fig, axes = query.grid(2 * len(archs), 2, panel=(4.75, 3.0), margin=(0.0, 0.6))
    colours = _palette(list(dict.fromkeys(runs["dataset"])))
    for row, arch in zip(axes, archs, strict=True):
        for dataset, rows in final[final["arch"] == arch].groupby("dataset", sort=False):
            for ax, metric, split, style, label in (
                    (row[0], "nc1_ratio", "train", "o-", dataset),
                    (row[1], "ncc_accuracy", "train", "o-", f"{dataset} train"),
                    (row[1], "ncc_accuracy", "test", "s--", f"{dataset} test")):
                curve = query.by_layer(rows[rows["split"] == split], metric)["mean"]
                if not curve.empty:
                    ax.plot(curve.index, curve.clip(lower=1e-12) if ax is row[0] else curve,
                            style, color=colours[dataset], label=label)
        row[0].axhline(t.thresholds.collapse_eps, color="green", lw=1, label="collapse ε")
        row[0].set(yscale="log", ylabel=f"{arch}\nNC1 ratio " + r"Tr $\Sigma_W$ / Tr $\Sigma_T$")
        row[1].set(ylabel="NCC accuracy", ylim=(-0.02, 1.02))
        for ax in row:
            ax.set_xlabel("layer (0 = input)")
            ax.legend(fontsize=7)
    fig.suptitle("Intermediate NC of the best runs (thesis Figs. 4.1.1, 4.1.4, B.0.x)")
    return fig


def fig4_2_1_collapse_vs_accuracy(t: Tables) -> Figure:
    """Fig. 4.2.1 / C.1.x: collapse layer against test accuracy, a point per grid run coloured by
    lr, marked by weight decay; runs that never collapse sit at "none", after the deepest layer."""
    grid = query.runs(t, GRID, selected=None)
    runs = _measured(t, grid)
    if runs.empty:
        return placeholder("lindegaard2023: " + ("no grid run was measured" if len(grid) else
                                                 "the config has no grid group") + " (Fig. 4.2.1)")
    models = runs.groupby(["dataset", "arch"], sort=False)
    fig, axes = query.grid(models.ngroups, 2, panel=(9.5, 3.6), margin=(0.0, 0.8))
    wds = sorted(runs["weight_decay"].dropna().unique()) if "weight_decay" in runs else []
    colours = _palette(sorted(runs["lr"].dropna().unique()) if "lr" in runs else [])
    markers = {wd: MARKERS[i % len(MARKERS)] for i, wd in enumerate(wds)}
    for ax, ((dataset, arch), part) in zip(axes.flat, models, strict=False):
        none_at = int(part["depth"].max()) + 1
        for _, run in part.iterrows():
            ax.scatter(np.nan_to_num(run["collapse"], nan=none_at), run["final_test_acc"],
                       color=colours.get(run.get("lr"), "grey"), edgecolor="black",
                       marker=markers.get(run.get("weight_decay"), "o"), linewidth=0.4, s=36)
        ax.set_xticks(range(0, none_at + 1), [*map(str, range(none_at)), "none"], fontsize=7)
        ax.set_title(f"{dataset} / {arch}", fontsize=9)
        ax.set(xlabel="collapse layer (NC1 ratio < ε from here on)", ylabel="test accuracy")
    legend = [("o", colour, f"lr {lr:g}") for lr, colour in colours.items()]
    legend += [(marker, "white", f"wd {wd:g}") for wd, marker in markers.items()]
    if legend:
        fig.legend(handles=[Line2D([], [], ls="", marker=m, color=c, markeredgecolor="black",
                                   label=label) for m, c, label in legend],
                   loc="outside right upper", fontsize=7)
    fig.suptitle("Layer of collapse against test accuracy (thesis Fig. 4.2.1, C.1.x)")
    return fig


def fig4_3_feature_shape(t: Tables) -> Figure:
    """Tables 4.3.1, 4.3.2, C.2.1, C.2.2, Fig. 4.4.1b over depth, features group: points per
    cluster, cluster accuracy, retention ℓ → ℓ+1, units for 99 % variance; collapse layer dotted."""
    feats = _features(t)
    if feats is None:
        return placeholder(f"lindegaard2023: {NO_FEATURES} (Tables 4.3.1, 4.3.2)")
    layers = collapse_layers(t, feats["clusters"]["run"].unique(), feats["clusters"])
    fig, axes = query.grid(4, 2, panel=(4.75, 3.3), margin=(0.0, 0.0))
    for ax, (table, x, y, ylabel) in zip(axes.flat, (
            (feats["clusters"], "layer_index", "avg_points", "points per cluster (≥ 3 points)"),
            (feats["clusters"], "layer_index", "accuracy", "cluster accuracy"),
            (feats["retention"], "index_from", "retention", "retention ℓ → ℓ+1 (eq. 4.1)"),
            (feats["pca_summary"].assign(share=lambda p: p["n_components_99"] / p["units"]),
             "layer_index", "share", "components for 99 % variance / units")), strict=True):
        for key, part in table.groupby("run" if y == "share" else ["run", "method"], sort=False):
            part = part.sort_values(x)
            ax.plot(part[x] + (0.5 if x == "index_from" else 0), part[y], "o-",
                    label=key if y == "share" else f"{key[1]} ({key[0]})")
        for layer in layers.dropna().unique():
            ax.axvline(layer, color="green", ls=":", lw=1)
        ax.set(xlabel="layer (0 = input)", ylabel=ylabel)
        ax.legend(fontsize=7)
    axes[0, 0].set_yscale("log")
    fig.suptitle("Feature analysis over depth (thesis Tables 4.3.1, 4.3.2, C.2.1, C.2.2, "
                 "Fig. 4.4.1)")
    return fig


FIGURES: dict[str, Callable[[Tables], Figure]] = {f.__name__: f for f in (
    fig4_1_nc_by_layer, fig4_2_1_collapse_vs_accuracy, fig4_3_feature_shape)}


# --- claims ------------------------------------------------------------------------------------

# (claim, where, measured where no case tells, criterion: {eps}, {ncc} the thresholds, {tol})
CLAIMS = (
    ("NC1 (Tr Σ_W / Tr Σ_T, train) falls with depth and collapses from a layer on",
     "Sec. 4.1.1, Figs. 4.1.1, 4.1.5, B.0.x", NO_SWEEP,
     "deepest < input, Spearman rho(depth, NC1) < 0, and NC1 < {eps:g} from some layer on"),
    ("from the collapse layer on, the NCC classifier has train accuracy 1 and the network's "
     "test accuracy", "Sec. 4.1.1, Fig. 4.1.4, B.0.x", NO_SWEEP, "NCC train ≥ {ncc:g} and "
     "|NCC test − network test| ≤ {tol:g} at every layer from the collapse layer"),
    ("the best-generalising networks of the lr × wd grid collapse in the middle of the "
     "network", "Sec. 4.2, Fig. 4.2.1, C.1.x", "no measured grid group", "the collapse layer "
     "of each model's best run lies strictly between layer 1 and the deepest layer"),
    ("the accuracy of the clusters' induced labels rises with depth",
     "Sec. 4.3.2, Tables 4.3.1, C.2.1", NO_FEATURES,
     "deepest > input and Spearman rho(depth, accuracy) > 0"),
    ("points per cluster grow with depth (whole classes after the collapse)",
     "Sec. 4.3.2, Tables 4.3.1, C.2.1", NO_FEATURES, "deepest > first hidden layer and "
     "rho(depth, points) > 0 (no cluster of ≥ 3 points counts 0)"),
    ("hierarchy retention between consecutive layers rises with depth (clusters are not kept "
     "whole before the collapse)", "Sec. 4.3.3, eq. 4.1, Tables 4.3.2, C.2.2", NO_FEATURES,
     "last defined > first defined and rho(depth, retention) > 0"),
    ("after the collapse layer the activations occupy a low-dimensional subspace",
     "Sec. 4.4.1, Figs. 4.4.1, C.2.7", NO_FEATURES, "mean share of units holding 99 % of the "
     "variance is smaller from the collapse layer on than in the hidden layers before it"),
)


def _best_runs(t: Tables) -> list[Told]:
    """Claims 1-2 on each model's best run (sweep groups)."""
    runs = query.runs(t, SWEEP)
    final, layers = _final(t, runs["run"]), collapse_layers(t, runs["run"])
    nc1, ncc = ([], []), ([], [])
    for _, run in runs.iterrows():
        name, layer = f"{run['dataset']}/{run['arch']} s{run['seed']}", layers[run["run"]]
        rows = final[final["run"] == run["run"]]
        ratio, train, test = (query.by_layer(rows[rows["split"] == s], m)["mean"] for m, s in (
            ("nc1_ratio", "train"), ("ncc_accuracy", "train"), ("ncc_accuracy", "test")))
        if ratio.empty:
            continue
        rho = query.spearman(ratio.index, ratio)
        nc1[0].append(f"{name}: {ratio.iloc[0]:.3g} → {ratio.iloc[-1]:.3g}, rho {rho:+.2f}, "
                      f"collapse layer {query.layer_text(layer)}")
        nc1[1].append(bool(ratio.iloc[-1] < ratio.iloc[0] and rho < 0 and not math.isnan(layer)))
        if train.empty:
            continue
        if math.isnan(layer):
            ncc[0].append(f"{name}: no collapse layer")
            continue
        fit, net = train[train.index >= layer].min(), float(run["final_test_acc"])
        gap = (test[test.index >= layer] - net).abs().max()  # NaN without a test curve
        ncc[0].append(f"{name} from layer {int(layer)}: NCC train ≥ {fit:.3f}, "
                      f"max |NCC test − net test {net:.3f}| = {gap:.3f}")
        ncc[1].append(bool(fit >= t.thresholds.ncc and gap <= NCC_TOLERANCE))
    return [nc1, ncc]


def _middle_collapse(t: Tables) -> Told:
    """Claim 3 on each model of the grid: where its best-generalising run collapses."""
    texts, told = [], []
    grid = _measured(t, query.runs(t, GRID, selected=None))
    for (dataset, arch), part in grid.groupby(["dataset", "arch"], sort=False):
        best = part.loc[part["final_test_acc"].idxmax()]
        layer, deepest = best["collapse"], int(best["depth"])
        told.append(bool(not math.isnan(layer) and 1 < layer < deepest))
        texts.append(f"{dataset}/{arch}: best test acc {best['final_test_acc']:.3f} "
                     f"({best['run']}) collapses at {query.layer_text(layer)} of 0…{deepest}")
    return texts, told


def _rises(table: pd.DataFrame, x: str, y: str, show: Callable, first: int = 0) -> Told:
    """Claims 4-6 per run × method of a feature table: whether ``y`` ends above its value at
    position ``first`` (NaN as 0) and rises with ``x`` (Spearman rho > 0)."""
    texts, told = [], []
    for (_run, method), part in table.groupby(["run", "method"], sort=False):
        part = part.sort_values(x)
        values = part[y].to_numpy(dtype=float)
        if len(values) < 2:
            texts.append(f"{method}: fewer than 2 defined values")
            continue
        rho = query.spearman(part[x], values)
        told.append(bool(np.nan_to_num(values[-1]) > np.nan_to_num(values[first]) and rho > 0))
        texts.append(f"{method}: {show(values)}, rho {rho:+.2f}")
    return texts, told


def _low_dimensional(t: Tables, feats: dict[str, pd.DataFrame]) -> Told:
    """Claim 7 per analysed run: the share of units holding 99 % of the variance from its
    collapse layer on against the hidden layers before it (the input where there are none)."""
    texts, told = [], []
    layers = collapse_layers(t, feats["pca_summary"]["run"].unique(), feats["clusters"])
    for run, part in feats["pca_summary"].groupby("run", sort=False):
        share = (part["n_components_99"] / part["units"]).to_numpy(dtype=float)
        index, layer = part["layer_index"].to_numpy(), layers[run]
        before = share[(index < layer) & (index >= (1 if layer > 1 else 0))]
        after = share[index >= layer]
        if len(before) == 0 or len(after) == 0:  # also where it never collapses (layer NaN)
            texts.append(f"{run}: no collapse layer" if math.isnan(layer) else
                         f"{run}: collapse at layer {int(layer)}, nothing to compare")
            continue
        told.append(bool(after.mean() < before.mean()))
        texts.append(f"{run}: 99 % variance in {before.mean():.1%} of the units before "
                     f"layer {int(layer)}, {after.mean():.1%} from it")
    return texts, told


def claims(t: Tables) -> pd.DataFrame:
    feats = _features(t)
    told = [*_best_runs(t), _middle_collapse(t), *([([], [])] * 4 if feats is None else [
        _rises(feats["clusters"], "layer_index", "accuracy",
               lambda v: f"{query.fmt(v[0], 2)} → {query.fmt(v[-1], 2)}"),
        _rises(feats["clusters"].fillna({"avg_points": 0}), "layer_index", "avg_points",
               lambda v: " ".join(query.fmt(p) for p in v), first=1),  # no cluster ≥ 3: 0
        _rises(feats["retention"].dropna(subset=["retention"]), "index_from", "retention",
               lambda v: " ".join(f"{r:.2f}" for r in v)),
        _low_dimensional(t, feats)])]
    fill = {"eps": t.thresholds.collapse_eps, "ncc": t.thresholds.ncc, "tol": NCC_TOLERANCE}
    return claims_frame([query.claim(text, where, f"{'; '.join(texts) or missing}; criterion: "
                                     f"{criterion.format(**fill)}", query.all_told(outcomes))
                         for (text, where, missing, criterion), (texts, outcomes)
                         in zip(CLAIMS, told, strict=True)])


TABLES: dict[str, Callable[[Tables], pd.DataFrame]] = {"claims": claims}
