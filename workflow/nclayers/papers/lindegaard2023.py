"""Lindegaard (2023), MSc thesis "Feature learning in deep classifiers through Intermediate
Neural Collapse" (Ch. 3–4, App. B–C): its figures and claims from the experiment's tables.

The preset names its groups by role (``vocabulary.PAPER_GROUPS["lindegaard2023"]``, each
with its family ``g_…``):

- ``sweep``: each model's learning-rate sweep, the best run kept (§3.3; Figs 4.1.x, B.0.x:
  NC1 and NCC accuracy per layer of the best runs);
- ``grid``: learning rate × weight decay × seeds, nothing selected (§4.2; Fig. 4.2.1, C.1.x:
  collapse layer against test accuracy, one point per run);
- ``features``: the MLP-10 of §4.3–4.4, whose feature analysis (clusters, retention, PCA;
  Tables 4.3.1, 4.3.2, C.2.1, C.2.2, Fig. 4.4.1; ``Tables.features``) the claims check;
  without it they read "cannot tell" and the feature figure is a placeholder.

The collapse layer (from which on every NC1 ratio, train split, is below
``thresholds.collapse_eps``) is the one ``aggregate`` derived per run and epoch. Nothing here
raises on a config that lacks a group: figures then say what is missing, claims hold None.
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


# --- the rows each figure and claim reads ----------------------------------------------------

def _final(t: Tables, run_ids: Iterable[str]) -> pd.DataFrame:
    """The per-layer rows (every split) of ``run_ids`` at each run's last epoch."""
    return last_epoch(query.layer_rows(t.metrics, run_ids, split=None))


def collapse_layers(t: Tables, runs: Iterable[str], at: pd.DataFrame | None = None) -> pd.Series:
    """Run → its collapse layer at its last epoch, or at its last epoch in ``at`` (a feature
    table: where its features were analysed); NaN where none collapses or nothing was measured."""
    epoch = {} if at is None else at.groupby("run")["epoch"].max().to_dict()
    last = query.derived(t, "collapse_layer")
    every = query.derived(t, "collapse_layer", epoch="all")
    return pd.Series({run: every.get((run, epoch[run]), math.nan) if run in epoch
                      else last.get(run, math.nan) for run in runs}, dtype=float)


def _measured(t: Tables, runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with their collapse layer and deepest layer index at their last epoch; the
    unmeasured ones left out."""
    depth = _final(t, runs["run"]).groupby("run")["layer_index"].max()
    runs = runs.assign(collapse=runs["run"].map(collapse_layers(t, runs["run"])),
                       depth=runs["run"].map(depth))
    return runs[runs["depth"].notna()]


def _features(t: Tables) -> dict[str, pd.DataFrame]:
    """The feature tables of the features group's runs at each run's last analysed epoch; all
    empty without a cluster analysis."""
    runs = query.runs(t, FEATURES, selected=None)
    feats = ({name: query.feature_table(t, name, runs["run"]) for name in FEATURE_PAPER_TABLES}
             if not runs.empty and set(FEATURE_PAPER_TABLES) <= set(t.features or {}) else {})
    if not feats or feats["clusters"].empty:
        return dict.fromkeys(FEATURE_PAPER_TABLES, pd.DataFrame(columns=["run", "epoch",
                                                                        "method"]))
    return feats


def _palette(n: int) -> list:
    return [colormaps["viridis"](i / max(n - 1, 1)) for i in range(n)]


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
    colours = dict(zip(dict.fromkeys(runs["dataset"]), _palette(runs["dataset"].nunique()),
                       strict=True))
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
        row[0].set_yscale("log")
        row[0].set_ylabel(f"{arch}\nNC1 ratio " + r"Tr $\Sigma_W$ / Tr $\Sigma_T$")
        row[1].set_ylabel("NCC accuracy")
        row[1].set_ylim(-0.02, 1.02)
        for ax in row:
            ax.set_xlabel("layer (0 = input)")
            ax.legend(fontsize=7)
    fig.suptitle("Intermediate NC of the best runs (thesis Figs. 4.1.1, 4.1.4, B.0.x)")
    return fig


def fig4_2_1_collapse_vs_accuracy(t: Tables) -> Figure:
    """Fig. 4.2.1 / C.1.x: collapse layer against test accuracy over the lr × wd grid, one point
    per run, colour by learning rate, marker by weight decay; runs that never collapse sit at
    "none", right of the deepest layer."""
    runs = query.runs(t, GRID, selected=None)
    if runs.empty:
        return placeholder("lindegaard2023: the config has no grid group (Fig. 4.2.1)")
    runs = _measured(t, runs)
    if runs.empty:
        return placeholder("lindegaard2023: no grid run was measured (Fig. 4.2.1)")
    models = list(dict.fromkeys(zip(runs["dataset"], runs["arch"], strict=True)))
    fig, axes = query.grid(len(models), 2, panel=(9.5, 3.6), margin=(0.0, 0.8))
    lrs = sorted(runs["lr"].dropna().unique()) if "lr" in runs else []
    wds = sorted(runs["weight_decay"].dropna().unique()) if "weight_decay" in runs else []
    colours = dict(zip(lrs, _palette(len(lrs)), strict=True))
    for ax, (dataset, arch) in zip(axes.flat, models, strict=False):
        part = runs[(runs["dataset"] == dataset) & (runs["arch"] == arch)]
        none_at = int(part["depth"].max()) + 1
        for _, run in part.iterrows():
            wd = run.get("weight_decay", math.nan)
            ax.scatter(run["collapse"] if not math.isnan(run["collapse"]) else none_at,
                       run["final_test_acc"], color=colours.get(run.get("lr"), "grey"),
                       marker=MARKERS[wds.index(wd) % len(MARKERS)] if wd in wds else "o",
                       edgecolor="black", linewidth=0.4, s=36)
        ax.set_xticks(range(0, none_at + 1),
                      [str(i) for i in range(none_at)] + ["none"], fontsize=7)
        ax.set_title(f"{dataset} / {arch}", fontsize=9)
        ax.set_xlabel("collapse layer (NC1 ratio < ε from here on)")
        ax.set_ylabel("test accuracy")
    handles = [(colours[lr], "o", f"lr {lr:g}") for lr in lrs]
    handles += [("white", MARKERS[i % len(MARKERS)], f"wd {wd:g}") for i, wd in enumerate(wds)]
    if handles:
        fig.legend(handles=[Line2D([], [], ls="", marker=marker, color=colour, label=label,
                                   markeredgecolor="black")
                            for colour, marker, label in handles],
                   loc="outside right upper", fontsize=7)
    fig.suptitle("Layer of collapse against test accuracy (thesis Fig. 4.2.1, C.1.x)")
    return fig


def fig4_3_feature_shape(t: Tables) -> Figure:
    """Tables 4.3.1, C.2.1, 4.3.2, C.2.2 and Fig. 4.4.1b as curves over depth for the
    features group's run(s): points per cluster, cluster accuracy, retention ℓ → ℓ+1, and the
    share of units that hold 99 % of the variance; the collapse layer dotted."""
    feats = _features(t)
    if feats["clusters"].empty:
        return placeholder("lindegaard2023: no feature analysis of the features group "
                           "(Tables 4.3.1, 4.3.2)")
    layers = collapse_layers(t, feats["clusters"]["run"].unique(), feats["clusters"])
    pca = feats["pca_summary"]
    fig = Figure(figsize=(9.5, 6.6), layout="constrained")
    axes = fig.subplots(2, 2).flatten()
    for ax, (table, x, y, ylabel) in zip(axes, (
            (feats["clusters"], "layer_index", "avg_points", "points per cluster (≥ 3 points)"),
            (feats["clusters"], "layer_index", "accuracy", "cluster accuracy"),
            (feats["retention"], "index_from", "retention", "retention ℓ → ℓ+1 (eq. 4.1)"),
            (pca.assign(share=pca["n_components_99"] / pca["units"]), "layer_index", "share",
             "components for 99 % variance / units")), strict=True):
        for key, part in table.groupby("run" if y == "share" else ["run", "method"], sort=False):
            part = part.sort_values(x)
            ax.plot(part[x] + (0.5 if x == "index_from" else 0), part[y], "o-",
                    label=key if y == "share" else f"{key[1]} ({key[0]})")
        for layer in layers.dropna().unique():
            ax.axvline(layer, color="green", ls=":", lw=1)
        ax.set_xlabel("layer (0 = input)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    axes[0].set_yscale("log")
    fig.suptitle("Feature analysis over depth (thesis Tables 4.3.1, 4.3.2, C.2.1, C.2.2, "
                 "Fig. 4.4.1)")
    return fig


FIGURES: dict[str, Callable[[Tables], Figure]] = {
    "fig4_1_nc_by_layer": fig4_1_nc_by_layer,
    "fig4_2_1_collapse_vs_accuracy": fig4_2_1_collapse_vs_accuracy,
    "fig4_3_feature_shape": fig4_3_feature_shape,
}


# --- claims ------------------------------------------------------------------------------------

def _claim(text: str, where: str, texts: list[str], missing: str, criterion: str,
           told: list[bool]) -> dict:
    return query.claim(text, where, ("; ".join(texts) or missing) + "; criterion: " + criterion,
                       query.all_told(told))


def claims_best_runs(t: Tables) -> list[dict]:
    """In each model's best run (sweep groups), NC1 falls with depth and collapses, and from the
    collapse layer on the NCC classifier fits the train set and has the network's accuracy."""
    runs = query.runs(t, SWEEP)
    final, layers = _final(t, runs["run"]), collapse_layers(t, runs["run"])
    nc1, nc1_texts, ncc, ncc_texts = [], [], [], []
    for _, run in runs.iterrows():
        name, layer = f"{run['dataset']}/{run['arch']} s{run['seed']}", layers[run["run"]]
        rows = final[final["run"] == run["run"]]
        ratio, train, test = (query.by_layer(rows[rows["split"] == split], metric)["mean"]
                              for metric, split in (("nc1_ratio", "train"),
                                                    ("ncc_accuracy", "train"),
                                                    ("ncc_accuracy", "test")))
        if ratio.empty:
            continue
        rho = query.spearman(ratio.index, ratio)
        nc1.append(bool(ratio.iloc[-1] < ratio.iloc[0] and rho < 0 and not math.isnan(layer)))
        nc1_texts.append(f"{name}: {ratio.iloc[0]:.3g} → {ratio.iloc[-1]:.3g}, rho {rho:+.2f}, "
                         f"collapse layer {query.layer_text(layer)}")
        if train.empty:
            continue
        if math.isnan(layer):
            ncc_texts.append(f"{name}: no collapse layer")
            continue
        fit, net = train[train.index >= layer].min(), float(run["final_test_acc"])
        gap = (test[test.index >= layer] - net).abs().max() if not test.empty else math.nan
        ncc.append(bool(fit >= t.thresholds.ncc and gap <= NCC_TOLERANCE))
        ncc_texts.append(f"{name} from layer {int(layer)}: NCC train ≥ {fit:.3f}, "
                         f"max |NCC test − net test {net:.3f}| = {gap:.3f}")
    missing = "no measured best run of a sweep group"
    return [
        _claim("NC1 (Tr Σ_W / Tr Σ_T, train) falls with depth and collapses from a layer on",
               "Sec. 4.1.1, Figs. 4.1.1, 4.1.5, B.0.x", nc1_texts, missing,
               "deepest < input, Spearman rho(depth, NC1) < 0, and NC1 < "
               f"{t.thresholds.collapse_eps:g} from some layer on", nc1),
        _claim("from the collapse layer on, the NCC classifier has train accuracy 1 and the "
               "network's test accuracy", "Sec. 4.1.1, Fig. 4.1.4, B.0.x", ncc_texts, missing,
               f"NCC train ≥ {t.thresholds.ncc:g} and |NCC test − network test| ≤ "
               f"{NCC_TOLERANCE:g} at every layer from the collapse layer", ncc),
    ]


def claim_middle_collapse(t: Tables) -> dict:
    runs = query.runs(t, GRID, selected=None)
    told, texts = [], []
    for (dataset, arch), part in (_measured(t, runs).groupby(["dataset", "arch"], sort=False)
                                  if not runs.empty else []):
        best = part.loc[part["final_test_acc"].idxmax()]
        layer, deepest = best["collapse"], int(best["depth"])
        told.append(bool(not math.isnan(layer) and 1 < layer < deepest))
        texts.append(f"{dataset}/{arch}: best test acc {best['final_test_acc']:.3f} "
                     f"({best['run']}) collapses at {query.layer_text(layer)} of 0…{deepest}")
    return _claim("the best-generalising networks of the lr × wd grid collapse in the middle of "
                  "the network", "Sec. 4.2, Fig. 4.2.1, C.1.x", texts, "no measured grid group",
                  "the collapse layer of each model's best run lies strictly between layer 1 "
                  "and the deepest layer", told)


def claims_features(t: Tables) -> list[dict]:
    """Over depth in the features group's analysis: the clusters' accuracy and size and the
    retention rise, and from the collapse layer on the activations are low-dimensional."""
    feats = _features(t)
    acc, acc_texts, size, size_texts, kept, kept_texts, low, low_texts = ([] for _ in range(8))
    for (_run, method), part in feats["clusters"].groupby(["run", "method"], sort=False):
        part = part.sort_values("layer_index")
        accuracy = part["accuracy"].to_numpy(dtype=float)
        points = part["avg_points"].fillna(0).to_numpy(dtype=float)  # no cluster ≥ 3: 0
        rho_acc = query.spearman(part["layer_index"], accuracy)
        rho_size = query.spearman(part["layer_index"], points)
        acc.append(bool(np.nan_to_num(accuracy[-1]) > np.nan_to_num(accuracy[0])
                        and rho_acc > 0))
        size.append(bool(points[-1] > points[1 if len(points) > 1 else 0] and rho_size > 0))
        acc_texts.append(f"{method}: {query.fmt(accuracy[0], 2)} → "
                         f"{query.fmt(accuracy[-1], 2)}, rho {rho_acc:+.2f}")
        size_texts.append(f"{method}: " + " ".join(query.fmt(v) for v in points)
                          + f", rho {rho_size:+.2f}")
    for (_run, method), part in feats["retention"].groupby(["run", "method"], sort=False):
        part = part.sort_values("index_from").dropna(subset=["retention"])
        if len(part) < 2:
            kept_texts.append(f"{method}: fewer than 2 defined values")
            continue
        values = part["retention"].to_numpy(dtype=float)
        rho = query.spearman(part["index_from"], values)
        kept.append(bool(values[-1] > values[0] and rho > 0))
        kept_texts.append(f"{method}: " + " ".join(f"{v:.2f}" for v in values)
                          + f", rho {rho:+.2f}")
    layers = collapse_layers(t, feats["pca_summary"]["run"].unique(), feats["clusters"])
    for run, part in feats["pca_summary"].groupby("run", sort=False):
        layer = layers.get(run, math.nan)
        share = (part["n_components_99"] / part["units"]).to_numpy(dtype=float)
        index = part["layer_index"].to_numpy()
        if math.isnan(layer):
            low_texts.append(f"{run}: no collapse layer")
            continue
        before = share[(index < layer) & (index >= 1)]  # the hidden layers, else the input
        if len(before) == 0:
            before = share[index < layer]
        after = share[index >= layer]
        if len(before) == 0 or len(after) == 0:
            low_texts.append(f"{run}: collapse at layer {int(layer)}, nothing to compare")
            continue
        low.append(bool(after.mean() < before.mean()))
        low_texts.append(f"{run}: 99 % variance in {before.mean():.1%} of the units before "
                         f"layer {int(layer)}, {after.mean():.1%} from it")
    missing = "no feature analysis of the features group"
    return [
        _claim("the accuracy of the clusters' induced labels rises with depth",
               "Sec. 4.3.2, Tables 4.3.1, C.2.1", acc_texts, missing,
               "deepest > input and Spearman rho(depth, accuracy) > 0", acc),
        _claim("points per cluster grow with depth (whole classes after the collapse)",
               "Sec. 4.3.2, Tables 4.3.1, C.2.1", size_texts, missing,
               "deepest > first hidden layer and rho(depth, points) > 0 (no cluster of ≥ 3 "
               "points counts 0)", size),
        _claim("hierarchy retention between consecutive layers rises with depth (clusters "
               "are not kept whole before the collapse)",
               "Sec. 4.3.3, eq. 4.1, Tables 4.3.2, C.2.2", kept_texts, missing,
               "last defined > first defined and rho(depth, retention) > 0", kept),
        _claim("after the collapse layer the activations occupy a low-dimensional subspace",
               "Sec. 4.4.1, Figs. 4.4.1, C.2.7", low_texts, missing,
               "mean share of units holding 99 % of the variance is smaller from the "
               "collapse layer on than in the hidden layers before it", low),
    ]


def claims(t: Tables) -> pd.DataFrame:
    return claims_frame([*claims_best_runs(t), claim_middle_collapse(t), *claims_features(t)])


TABLES: dict[str, Callable[[Tables], pd.DataFrame]] = {"claims": claims}
