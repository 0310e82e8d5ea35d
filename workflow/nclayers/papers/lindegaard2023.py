"""Lindegaard (2023), MSc thesis "Feature learning in deep classifiers through Intermediate
Neural Collapse" (Ch. 3–4, App. B–C): its figures and claims from the experiment's tables.

The preset (workflow/presets/lindegaard2023/) names its groups by role, and this module finds
them by those names:

- ``sweep*`` groups: each model's learning-rate sweep, the best run kept (§3.3; Figs 4.1.x,
  B.0.x: NC1 and NCC accuracy per layer of the best runs);
- ``grid*`` groups: learning rate × weight decay × seeds, nothing selected (§4.2; Fig. 4.2.1,
  C.1.x: collapse layer against test accuracy, one point per run);
- the ``features`` group: the MLP-10 of §4.3–4.4, whose feature analysis (clusters, retention,
  PCA; Tables 4.3.1, 4.3.2, C.2.1, C.2.2, Fig. 4.4.1) the claims check. Those tables come
  from ``Tables.features`` (``{"clusters", "retention", "pca_summary": DataFrame}`` with
  ``run`` and ``epoch`` columns) where the report provides it; without them the feature
  claims read "cannot tell" and the feature figure is a placeholder.

Every function takes a :class:`nclayers.papers.Tables` and never raises on a config that lacks
a group: figures then say what is missing, claims hold None.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from nclayers.derived import collapse_layer
from nclayers.papers import Tables, claims_frame
from nclayers.plots import placeholder

SWEEP, GRID, FEATURES = "sweep", "grid", "features"
NCC_TOLERANCE = 0.02  # |NCC test accuracy − network test accuracy| that counts as "equal"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
FEATURE_TABLES = ("clusters", "retention", "pca_summary")


# --- the rows each figure and claim reads ----------------------------------------------------

def _runs(tables: Tables, prefix: str) -> pd.DataFrame:
    """runs.csv rows of the groups named ``prefix`` or ``prefix_…``, diverged runs left out."""
    runs = tables.runs
    if runs.empty or "group" not in runs:
        return runs.iloc[0:0]
    group = runs["group"].astype(str)
    chosen = runs[(group == prefix) | group.str.startswith(prefix + "_")]
    if "diverged" in chosen:
        chosen = chosen[~chosen["diverged"].astype(bool)]
    return chosen


def _final(metrics: pd.DataFrame, runs: pd.Series, epoch: dict | None = None) -> pd.DataFrame:
    """Per-layer metric rows of ``runs`` at each run's last measured epoch (or ``epoch[run]``)."""
    rows = metrics[metrics["run"].isin(set(runs)) & metrics["layer_index"].notna()]
    if rows.empty:
        return rows
    last = rows.groupby("run")["epoch"].transform("max")
    want = rows["run"].map(epoch) if epoch else last
    return rows[rows["epoch"] == want.fillna(last)].astype({"layer_index": int})


def _series(final: pd.DataFrame, run: str, metric: str, split: str = "train") -> pd.Series:
    part = final[(final["run"] == run) & (final["metric"] == metric) & (final["split"] == split)]
    return part.set_index("layer_index")["value"].sort_index().astype(float)


def collapse_layers(tables: Tables, runs: pd.Series, epoch: dict | None = None) -> pd.Series:
    """Run → collapse layer at its last epoch (first layer from which every NC1 ratio is below
    ``tables.thresholds.collapse_eps``, train split); NaN where none collapses or nothing was
    measured."""
    final = _final(tables.metrics, runs, epoch)
    eps = tables.thresholds.collapse_eps
    return pd.Series({run: collapse_layer(_series(final, run, "nc1_ratio"), eps)
                      if not _series(final, run, "nc1_ratio").empty else math.nan
                      for run in runs}, dtype=float)


def _model(row) -> str:
    return f"{row['dataset']}/{row['arch']}"


def _features(tables: Tables, runs: pd.Series) -> dict[str, pd.DataFrame] | None:
    """The feature tables of ``runs`` at each run's last analysed epoch; None without any."""
    features = getattr(tables, "features", None)
    if not features or any(name not in features for name in FEATURE_TABLES):
        return None
    out = {}
    for name in FEATURE_TABLES:
        table = features[name]
        table = table[table["run"].isin(set(runs))] if "run" in table else table.iloc[0:0]
        if not table.empty:
            table = table[table["epoch"] == table.groupby("run")["epoch"].transform("max")]
        out[name] = table
    return out if not out["clusters"].empty else None


def _rho(x, y) -> float:
    """Spearman rank correlation of two sequences (NaN pairs dropped; NaN if < 3 pairs)."""
    pairs = pd.DataFrame({"x": list(x), "y": list(y)}).dropna()
    if len(pairs) < 3 or pairs["x"].nunique() < 2 or pairs["y"].nunique() < 2:
        return math.nan
    return float(pairs["x"].rank().corr(pairs["y"].rank()))


def _all(values: list) -> bool | None:
    """True/False over the models that could tell; None if none could."""
    told = [v for v in values if v is not None]
    return None if not told else bool(all(told))


# --- figures ---------------------------------------------------------------------------------

def fig4_1_nc_by_layer(tables: Tables) -> Figure:
    """Figs. 4.1.1, 4.1.4, B.0.x: NC1 ratio (train) and NCC accuracy (train, test) per layer of
    each model's best run (sweep groups), a row per architecture, a line per dataset."""
    runs = _runs(tables, SWEEP)
    if "selected" in runs:
        runs = runs[runs["selected"].astype(bool)]
    final = _final(tables.metrics, runs["run"])
    if final.empty:
        return placeholder("lindegaard2023: no measured run of a sweep group (Figs. 4.1.x)")
    archs = list(dict.fromkeys(runs["arch"]))
    fig = Figure(figsize=(9.5, min(11.0, 0.6 + 3.0 * len(archs))), layout="constrained")
    axes = fig.subplots(len(archs), 2, squeeze=False)
    colours = dict(zip(dict.fromkeys(runs["dataset"]), _palette(runs["dataset"].nunique()),
                       strict=True))
    for row, arch in zip(axes, archs, strict=True):
        part = final[final["arch"] == arch]
        for dataset, rows in part.groupby("dataset", sort=False):
            mean = rows.groupby(["metric", "split", "layer_index"])["value"].mean()
            colour = colours[dataset]
            if ("nc1_ratio", "train") in mean.index.droplevel(2):
                ratio = mean.loc[("nc1_ratio", "train")]
                row[0].plot(ratio.index, ratio.clip(lower=1e-12), "o-", color=colour,
                            label=dataset)
            for split, style in (("train", "o-"), ("test", "s--")):
                if ("ncc_accuracy", split) in mean.index.droplevel(2):
                    acc = mean.loc[("ncc_accuracy", split)]
                    row[1].plot(acc.index, acc, style, color=colour,
                                label=f"{dataset} {split}")
        row[0].axhline(tables.thresholds.collapse_eps, color="green", lw=1, label="collapse ε")
        row[0].set_yscale("log")
        row[0].set_ylabel(f"{arch}\nNC1 ratio " + r"Tr $\Sigma_W$ / Tr $\Sigma_T$")
        row[1].set_ylabel("NCC accuracy")
        row[1].set_ylim(-0.02, 1.02)
        for ax in row:
            ax.set_xlabel("layer (0 = input)")
            ax.legend(fontsize=7)
    fig.suptitle("Intermediate NC of the best runs (thesis Figs. 4.1.1, 4.1.4, B.0.x)")
    return fig


def fig4_2_1_collapse_vs_accuracy(tables: Tables) -> Figure:
    """Fig. 4.2.1 / C.1.x: collapse layer against test accuracy over the lr × wd grid, one point
    per run, colour by learning rate, marker by weight decay; runs that never collapse sit at
    "none", right of the deepest layer."""
    runs = _runs(tables, GRID)
    if runs.empty:
        return placeholder("lindegaard2023: the config has no grid group (Fig. 4.2.1)")
    layers = collapse_layers(tables, runs["run"])
    runs = runs.assign(collapse=runs["run"].map(layers))
    depth = _final(tables.metrics, runs["run"]).groupby("run")["layer_index"].max()
    runs = runs.assign(depth=runs["run"].map(depth))
    runs = runs[runs["depth"].notna()]
    if runs.empty:
        return placeholder("lindegaard2023: no grid run was measured (Fig. 4.2.1)")
    models = list(dict.fromkeys(zip(runs["dataset"], runs["arch"], strict=True)))
    cols = min(2, len(models))
    nrows = math.ceil(len(models) / cols)
    fig = Figure(figsize=(9.5, min(11.0, 0.8 + 3.6 * nrows)), layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False).flatten()
    lrs = sorted(runs["lr"].dropna().unique()) if "lr" in runs else []
    wds = sorted(runs["weight_decay"].dropna().unique()) if "weight_decay" in runs else []
    colours = dict(zip(lrs, _palette(len(lrs)), strict=True))
    for ax, (dataset, arch) in zip(axes, models, strict=False):
        part = runs[(runs["dataset"] == dataset) & (runs["arch"] == arch)]
        none_at = int(part["depth"].max()) + 1
        for _, run in part.iterrows():
            x = run["collapse"] if not math.isnan(run["collapse"]) else none_at
            wd = run.get("weight_decay", math.nan)
            marker = MARKERS[wds.index(wd) % len(MARKERS)] if wd in wds else "o"
            ax.scatter(x, run["final_test_acc"], color=colours.get(run.get("lr"), "grey"),
                       marker=marker, edgecolor="black", linewidth=0.4, s=36)
        ax.set_xticks(range(0, none_at + 1),
                      [str(i) for i in range(none_at)] + ["none"], fontsize=7)
        ax.set_title(f"{dataset} / {arch}", fontsize=9)
        ax.set_xlabel("collapse layer (NC1 ratio < ε from here on)")
        ax.set_ylabel("test accuracy")
    for ax in axes[len(models):]:
        ax.set_visible(False)
    handles = [_handle(colours[lr], "o", f"lr {lr:g}") for lr in lrs]
    handles += [_handle("white", MARKERS[i % len(MARKERS)], f"wd {wd:g}")
                for i, wd in enumerate(wds)]
    if handles:
        fig.legend(handles=handles, loc="outside right upper", fontsize=7)
    fig.suptitle("Layer of collapse against test accuracy (thesis Fig. 4.2.1, C.1.x)")
    return fig


def fig4_3_feature_shape(tables: Tables) -> Figure:
    """Tables 4.3.1, C.2.1, 4.3.2, C.2.2 and Fig. 4.4.1b as curves over depth for the
    features group's run(s): points per cluster, cluster accuracy, retention ℓ → ℓ+1, and the
    share of units that hold 99 % of the variance; the collapse layer dotted."""
    runs = _runs(tables, FEATURES)
    feats = _features(tables, runs["run"]) if not runs.empty else None
    if feats is None:
        return placeholder("lindegaard2023: no feature analysis of the features group "
                           "(Tables 4.3.1, 4.3.2)")
    layers = collapse_layers(tables, pd.Series(feats["clusters"]["run"].unique()),
                             _feature_epochs(feats))
    fig = Figure(figsize=(9.5, 6.6), layout="constrained")
    (a, b), (c, d) = fig.subplots(2, 2)
    for (run, method), part in feats["clusters"].groupby(["run", "method"], sort=False):
        part = part.sort_values("layer_index")
        a.plot(part["layer_index"], part["avg_points"], "o-", label=f"{method} ({run})")
        b.plot(part["layer_index"], part["accuracy"], "o-", label=f"{method} ({run})")
    for (run, method), part in feats["retention"].groupby(["run", "method"], sort=False):
        part = part.sort_values("index_from")
        c.plot(part["index_from"] + 0.5, part["retention"], "o-", label=f"{method} ({run})")
    for run, part in feats["pca_summary"].groupby("run", sort=False):
        part = part.sort_values("layer_index")
        d.plot(part["layer_index"], part["n_components_99"] / part["units"], "o-", label=run)
    a.set_yscale("log")
    a.set_ylabel("points per cluster (≥ 3 points)")
    b.set_ylabel("cluster accuracy")
    c.set_ylabel("retention ℓ → ℓ+1 (eq. 4.1)")
    d.set_ylabel("components for 99 % variance / units")
    for ax in (a, b, c, d):
        for layer in layers.dropna().unique():
            ax.axvline(layer, color="green", ls=":", lw=1)
        ax.set_xlabel("layer (0 = input)")
        ax.legend(fontsize=7)
    fig.suptitle("Feature analysis over depth (thesis Tables 4.3.1, 4.3.2, C.2.1, C.2.2, "
                 "Fig. 4.4.1)")
    return fig


def _palette(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(i / max(n - 1, 1)) for i in range(n)]


def _handle(colour, marker: str, label: str):
    from matplotlib.lines import Line2D

    return Line2D([], [], ls="", marker=marker, color=colour, markeredgecolor="black",
                  label=label)


def _feature_epochs(feats: dict[str, pd.DataFrame]) -> dict:
    return feats["clusters"].groupby("run")["epoch"].max().to_dict()


FIGURES: dict[str, Callable[[Tables], Figure]] = {
    "fig4_1_nc_by_layer": fig4_1_nc_by_layer,
    "fig4_2_1_collapse_vs_accuracy": fig4_2_1_collapse_vs_accuracy,
    "fig4_3_feature_shape": fig4_3_feature_shape,
}


# --- claims ------------------------------------------------------------------------------------

def _best_runs(tables: Tables) -> pd.DataFrame:
    runs = _runs(tables, SWEEP)
    return runs[runs["selected"].astype(bool)] if "selected" in runs else runs


def claim_nc1_collapse(tables: Tables) -> dict:
    runs = _best_runs(tables)
    final = _final(tables.metrics, runs["run"])
    told, texts = [], []
    for _, run in runs.iterrows():
        ratio = _series(final, run["run"], "nc1_ratio")
        if ratio.empty:
            continue
        layer = collapse_layer(ratio, tables.thresholds.collapse_eps)
        falls = ratio.iloc[-1] < ratio.iloc[0] and _rho(ratio.index, ratio) < 0
        told.append(bool(falls and not math.isnan(layer)))
        texts.append(f"{_model(run)} s{run['seed']}: {ratio.iloc[0]:.3g} → {ratio.iloc[-1]:.3g}, "
                     f"rho {_rho(ratio.index, ratio):+.2f}, collapse layer "
                     f"{'none' if math.isnan(layer) else int(layer)}")
    return {"claim": "NC1 (Tr Σ_W / Tr Σ_T, train) falls with depth and collapses from a "
                     "layer on",
            "where": "Sec. 4.1.1, Figs. 4.1.1, 4.1.5, B.0.x",
            "measured": _text(texts, "no measured best run of a sweep group")
            + f"; criterion: deepest < input, Spearman rho(depth, NC1) < 0, and NC1 < "
              f"{tables.thresholds.collapse_eps:g} from some layer on",
            "holds": _all(told)}


def claim_ncc(tables: Tables) -> dict:
    runs = _best_runs(tables)
    final = _final(tables.metrics, runs["run"])
    told, texts = [], []
    for _, run in runs.iterrows():
        ratio = _series(final, run["run"], "nc1_ratio")
        train = _series(final, run["run"], "ncc_accuracy", "train")
        test = _series(final, run["run"], "ncc_accuracy", "test")
        if ratio.empty or train.empty:
            continue
        layer = collapse_layer(ratio, tables.thresholds.collapse_eps)
        if math.isnan(layer):
            texts.append(f"{_model(run)} s{run['seed']}: no collapse layer")
            continue
        after_train = train[train.index >= layer]
        net = float(run["final_test_acc"])
        gap = (test[test.index >= layer] - net).abs().max() if not test.empty else math.nan
        ok = bool(after_train.min() >= tables.thresholds.ncc and gap <= NCC_TOLERANCE)
        told.append(ok)
        texts.append(f"{_model(run)} s{run['seed']} from layer {int(layer)}: NCC train ≥ "
                     f"{after_train.min():.3f}, max |NCC test − net test {net:.3f}| = {gap:.3f}")
    return {"claim": "from the collapse layer on, the NCC classifier has train accuracy 1 and "
                     "the network's test accuracy",
            "where": "Sec. 4.1.1, Fig. 4.1.4, B.0.x",
            "measured": _text(texts, "no measured best run of a sweep group")
            + f"; criterion: NCC train ≥ {tables.thresholds.ncc:g} and |NCC test − network "
              f"test| ≤ {NCC_TOLERANCE:g} at every layer from the collapse layer",
            "holds": _all(told)}


def claim_middle_collapse(tables: Tables) -> dict:
    runs = _runs(tables, GRID)
    told, texts = [], []
    if not runs.empty:
        layers = collapse_layers(tables, runs["run"])
        depth = _final(tables.metrics, runs["run"]).groupby("run")["layer_index"].max()
        runs = runs.assign(collapse=runs["run"].map(layers), depth=runs["run"].map(depth))
        runs = runs[runs["depth"].notna()]
        for (dataset, arch), part in runs.groupby(["dataset", "arch"], sort=False):
            best = part.loc[part["final_test_acc"].idxmax()]
            layer, deepest = best["collapse"], int(best["depth"])
            ok = bool(not math.isnan(layer) and 1 < layer < deepest)
            told.append(ok)
            texts.append(f"{dataset}/{arch}: best test acc {best['final_test_acc']:.3f} "
                         f"({best['run']}) collapses at "
                         f"{'none' if math.isnan(layer) else int(layer)} of 0…{deepest}")
    return {"claim": "the best-generalising networks of the lr × wd grid collapse in the "
                     "middle of the network",
            "where": "Sec. 4.2, Fig. 4.2.1, C.1.x",
            "measured": _text(texts, "no measured grid group")
            + "; criterion: the collapse layer of each model's best run lies strictly between "
              "layer 1 and the deepest layer",
            "holds": _all(told)}


def claim_clusters(tables: Tables) -> list[dict]:
    runs = _runs(tables, FEATURES)
    feats = _features(tables, runs["run"]) if not runs.empty else None
    acc_told, size_told, acc_texts, size_texts = [], [], [], []
    if feats is not None:
        for (_run, method), part in feats["clusters"].groupby(["run", "method"], sort=False):
            part = part.sort_values("layer_index")
            acc = part["accuracy"].to_numpy(dtype=float)
            size = part["avg_points"].fillna(0).to_numpy(dtype=float)  # no cluster ≥ 3: 0
            first_hidden = 1 if len(size) > 1 else 0
            rho_acc, rho_size = _rho(part["layer_index"], acc), _rho(part["layer_index"], size)
            acc_told.append(bool(np.nan_to_num(acc[-1]) > np.nan_to_num(acc[0])
                                 and rho_acc > 0))
            size_told.append(bool(size[-1] > size[first_hidden] and rho_size > 0))
            acc_texts.append(f"{method}: {_fmt(acc[0])} → {_fmt(acc[-1])}, rho {rho_acc:+.2f}")
            size_texts.append(f"{method}: " + " ".join(_fmt(v, 3) for v in size)
                              + f", rho {rho_size:+.2f}")
    return [
        {"claim": "the accuracy of the clusters' induced labels rises with depth",
         "where": "Sec. 4.3.2, Tables 4.3.1, C.2.1",
         "measured": _text(acc_texts, "no feature analysis of the features group")
         + "; criterion: deepest > input and Spearman rho(depth, accuracy) > 0",
         "holds": _all(acc_told)},
        {"claim": "points per cluster grow with depth (whole classes after the collapse)",
         "where": "Sec. 4.3.2, Tables 4.3.1, C.2.1",
         "measured": _text(size_texts, "no feature analysis of the features group")
         + "; criterion: deepest > first hidden layer and rho(depth, points) > 0 "
           "(no cluster of ≥ 3 points counts 0)",
         "holds": _all(size_told)},
    ]


def claim_retention(tables: Tables) -> dict:
    runs = _runs(tables, FEATURES)
    feats = _features(tables, runs["run"]) if not runs.empty else None
    told, texts = [], []
    if feats is not None:
        for (_run, method), part in feats["retention"].groupby(["run", "method"], sort=False):
            part = part.sort_values("index_from").dropna(subset=["retention"])
            if len(part) < 2:
                texts.append(f"{method}: fewer than 2 defined values")
                continue
            values = part["retention"].to_numpy(dtype=float)
            rho = _rho(part["index_from"], values)
            told.append(bool(values[-1] > values[0] and rho > 0))
            texts.append(f"{method}: " + " ".join(f"{v:.2f}" for v in values)
                         + f", rho {rho:+.2f}")
    return {"claim": "hierarchy retention between consecutive layers rises with depth "
                     "(clusters are not kept whole before the collapse)",
            "where": "Sec. 4.3.3, eq. 4.1, Tables 4.3.2, C.2.2",
            "measured": _text(texts, "no feature analysis of the features group")
            + "; criterion: last defined > first defined and rho(depth, retention) > 0",
            "holds": _all(told)}


def claim_pca(tables: Tables) -> dict:
    runs = _runs(tables, FEATURES)
    feats = _features(tables, runs["run"]) if not runs.empty else None
    told, texts = [], []
    if feats is not None:
        layers = collapse_layers(tables, pd.Series(feats["pca_summary"]["run"].unique()),
                                 _feature_epochs(feats))
        for run, part in feats["pca_summary"].groupby("run", sort=False):
            layer = layers.get(run, math.nan)
            share = (part["n_components_99"] / part["units"]).to_numpy(dtype=float)
            index = part["layer_index"].to_numpy()
            if math.isnan(layer):
                texts.append(f"{run}: no collapse layer")
                continue
            before = share[(index < layer) & (index >= 1)]
            if len(before) == 0:
                before = share[index < layer]
            after = share[index >= layer]
            if len(before) == 0 or len(after) == 0:
                texts.append(f"{run}: collapse at layer {int(layer)}, nothing to compare")
                continue
            told.append(bool(after.mean() < before.mean()))
            texts.append(f"{run}: 99 % variance in {before.mean():.1%} of the units before "
                         f"layer {int(layer)}, {after.mean():.1%} from it")
    return {"claim": "after the collapse layer the activations occupy a low-dimensional "
                     "subspace",
            "where": "Sec. 4.4.1, Figs. 4.4.1, C.2.7",
            "measured": _text(texts, "no feature analysis of the features group")
            + "; criterion: mean share of units holding 99 % of the variance is smaller from "
              "the collapse layer on than in the hidden layers before it",
            "holds": _all(told)}


def claims(tables: Tables) -> pd.DataFrame:
    return claims_frame([claim_nc1_collapse(tables), claim_ncc(tables),
                         claim_middle_collapse(tables), *claim_clusters(tables),
                         claim_retention(tables), claim_pca(tables)])


def _fmt(value: float, digits: int = 2) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}g}"


def _text(parts: list[str], empty: str) -> str:
    return "; ".join(parts) if parts else empty


TABLES: dict[str, Callable[[Tables], pd.DataFrame]] = {"claims": claims}
