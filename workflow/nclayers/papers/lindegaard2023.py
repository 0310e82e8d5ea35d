"""Lindegaard (2023), MSc thesis "Feature learning in deep classifiers through Intermediate
Neural Collapse" (Ch. 3–4, App. B–C): its figures and claims from the experiment's tables.

The preset names its groups by role (``PAPER_GROUPS["lindegaard2023"]``, with families ``g_…``):

- ``sweep``: each model's learning-rate sweep, the best run kept (§3.3; Figs 4.1.x, B.0.x);
  its MLP (the thesis' MLP-10: ``arch.name`` mlp in the design) draws Figs. 4.1.1–4.1.3 and
  4.1.5–4.1.7 through training, a row per dataset; every architecture the panels of B.0.x;
- ``grid``: learning rate × weight decay × seeds, nothing selected (§4.2; Fig. 4.2.1, C.1.x);
- ``features``: the MLP-10 of §4.3–4.4, whose feature analysis (clusters, retention, PCA;
  Tables 4.3.1, 4.3.2, C.2.1, C.2.2, Fig. 4.4.1; ``Tables.features``) the claims check.

The collapse layer ℓ* (from which on every NC1 ratio, train split, is below
``thresholds.collapse_eps``, the thesis' 0.2) is the one ``aggregate`` derived per run and epoch.
NC2 is measured as the thesis' eqs. 2.19–2.21 (``nc2_angle_shift``, ``nc2_equiangle``,
``nc2_equinorm``), NC3 as AvCosPABS (eq. 2.25, ``nc3_pabs``) and the relative singular values
σ'_k = σ_k / Σσ of the weight that reads each layer (eqs. 2.23–2.24, ``Tables.spectra``).
Each claim (:data:`CLAIMS`) shows the thesis' value or wording, what was measured and the
criterion (where the thesis gives no number, ours, stated); it holds where it holds in every
case that can tell (the seeds and architectures claims: in most). A config that lacks a group
or a dataset gets figures that say what is missing and claims that hold None.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from nclayers.derived import last_epoch
from nclayers.papers import FEATURE_PAPER_TABLES, Tables, claims_frame, query
from nclayers.plots import placeholder
from nclayers.vocabulary import PAPER_GROUPS, shown_value

SWEEP, GRID, FEATURES = PAPER_GROUPS["lindegaard2023"]
NCC_TOLERANCE = 0.02  # |NCC test accuracy − network test accuracy| that counts as "equal"
# Where the thesis gives words, not a number, the number is ours:
MIDDLE = (1 / 3, 2 / 3)  # "somewhere in the middle" (§4.2): ℓ* within these shares of the depth
AROUND = 1  # "around layer 3" (§4.1.2): within this many layers of the thesis' ℓ*
SEED_SPREAD = 1  # "a similar layer of collapse" (§4.2): the seeds' ℓ* within this many layers
RETENTION_BELOW = 0.9  # "significantly lower than 100 %" (§4.3.3; Table 4.3.2: ≤ 81 % before ℓ*)
THESIS_LSTAR = {"mnist": 3, "cifar10": 5}  # the MLP-10's ℓ* (§4.1.2, §4.1.1)
NC2 = {"nc2_angle_shift": "|eq. 2.19|", "nc2_equiangle": "eq. 2.20", "nc2_equinorm": "eq. 2.21"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
NO_SWEEP, NO_FEATURES = ("no measured best run of a sweep group",
                         "no feature analysis of the features group")
Told = tuple[list[str], list[bool]]  # a claim's measured text per case, its outcomes where told
Panel = tuple[str, Callable[[Axes, query.Model, object], None], bool]  # title, draw, per layer


# --- the rows each figure and claim reads ----------------------------------------------------

def _final(t: Tables, run_ids: Iterable[str]) -> pd.DataFrame:
    """The per-layer rows (every split) of ``run_ids`` at each run's last epoch."""
    return last_epoch(query.layer_rows(t.metrics, run_ids, split=None))


def collapse_layers(t: Tables, runs: Iterable[str], at: pd.DataFrame | None = None) -> pd.Series:
    """Run → its collapse layer at its last epoch, or at its last epoch in ``at`` (a feature
    table: where its features were analysed); NaN where none collapses or nothing was measured."""
    last = query.derived(t, "collapse_layer")
    if at is None:
        return pd.Series({run: last.get(run, math.nan) for run in runs}, dtype=float)
    epoch = at.groupby("run")["epoch"].max().to_dict()
    every = query.derived(t, "collapse_layer", "all")
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


def _sweep_models(t: Tables, mlp: bool = False) -> list[query.Model]:
    """The sweep's models (dataset × architecture, seeds together); ``mlp``: only the MLP's,
    the thesis' MLP-10 of Figs. 4.1.1–4.1.7 (the design's ``arch.name``, else the arch)."""
    runs = query.runs(t, SWEEP)
    if mlp and not runs.empty:
        runs = runs[runs["run"].map(query.recipe(t, "arch.name")).fillna(runs["arch"]) == "mlp"]
    return query.models(runs, by=("dataset", "arch"))


def _by_dataset_name(t: Tables, models: list[query.Model]) -> dict[str, query.Model]:
    """``models`` by their dataset's name (the design's ``dataset.name``, else the dataset)."""
    names = query.recipe(t, "dataset.name")
    return {str(names.get(m.runs[0], m.dataset)).lower(): m for m in models}


def _model_lstar(t: Tables, model: query.Model) -> float:
    """The model's ℓ*: the median of its seeds' collapse layers (NaN if one never collapses)."""
    return float(collapse_layers(t, model.runs).median(skipna=False))


def _layer_stats(rows: pd.DataFrame, metric: str) -> tuple[pd.Series, pd.Series]:
    """Seed mean and sd over the seeds of ``metric`` per layer index; eq. 2.19's signed measure
    as the magnitude of its mean, with the sd of the signed values (the claims read that
    magnitude, so the band sits around it)."""
    stats = query.by_layer(rows, metric)
    mean = stats["mean"].abs() if metric == "nc2_angle_shift" else stats["mean"]
    return mean, stats["sd"]


def _layer_profile(rows: pd.DataFrame, metric: str) -> pd.Series:
    """Seed mean of ``metric`` per layer index; eq. 2.19's signed measure as its magnitude."""
    return _layer_stats(rows, metric)[0]


def _layer_band(ax: Axes, rows: pd.DataFrame, metric: str, **style) -> None:
    """``metric``'s seed mean per layer in its ± sd band (:func:`query.mean_line`)."""
    query.mean_line(ax, *_layer_stats(rows, metric), **style)


def _split_at_lstar(values: pd.Series, layer: float) -> tuple[pd.Series, pd.Series]:
    """``values`` (by layer index) in the hidden layers before ``layer`` (the input where there
    are none) and from ``layer`` on; both empty where ``layer`` is NaN."""
    index = values.index
    return values[(index < layer) & (index >= (1 if layer > 1 else 0))], values[index >= layer]


def _sigma_shares(t: Tables, model: query.Model) -> tuple[pd.DataFrame, int]:
    """σ'_k = σ_k / Σσ (eq. 2.23) of the weight that reads each layer (the classifier the
    last), seed means, a row per (epoch, layer index) and a column per k (0: the largest); and
    C, the classifier's number of singular values."""
    rows = model.rows(t.spectra, split=None)
    if rows.empty:
        return pd.DataFrame(), 0
    shares = rows.groupby(["epoch", "layer_index", "k"])["share"].mean().unstack("k")
    deepest = shares.xs(rows["layer_index"].max(), level="layer_index")
    return shares, int(deepest.notna().sum(axis=1).min())


def _seed_sigma_shares(t: Tables, model: query.Model, epoch: int) -> pd.DataFrame:
    """σ'_k of each seed at ``epoch``, a row per (run, layer index), a column per k: the values
    whose means :func:`_sigma_shares` gives, for their sd over the seeds."""
    rows = model.rows(t.spectra, split=None)
    rows = rows[rows["epoch"] == epoch]
    return rows.groupby(["run", "layer_index", "k"])["share"].mean().unstack("k")


def _top_c_shares(shares: pd.DataFrame, classes: int) -> pd.DataFrame:
    """Σ σ'_k over k ≤ C (eq. 2.24: → 1) per epoch (rows) and layer (columns), of the weights
    with more than C singular values (the classifier's has C: trivially 1)."""
    if shares.empty:
        return pd.DataFrame()
    wide = shares[shares.notna().sum(axis=1) > classes]
    return wide.iloc[:, :classes].sum(axis=1).unstack("layer_index")


# --- figures ---------------------------------------------------------------------------------

def fig4_1_nc_by_layer(t: Tables) -> Figure:
    """Figs. 4.1.1, 4.1.4, B.0.x: NC1 ratio (train) and NCC accuracy (train, test) per layer of
    each model's best run (sweep groups; its seeds' mean ± sd), a row per architecture, a line
    per dataset."""
    runs = query.runs(t, SWEEP)
    final = _final(t, runs["run"])
    if final.empty:
        return placeholder("lindegaard2023: no measured run of a sweep group (Figs. 4.1.x)")
    archs = list(dict.fromkeys(runs["arch"]))
    fig, axes = query.grid(2 * len(archs), 2, panel=(4.75, 3.0), margin=(0.0, 0.6))
    colours = _palette(list(dict.fromkeys(runs["dataset"])))
    for row, arch in zip(axes, archs, strict=True):
        for dataset, rows in final[final["arch"] == arch].groupby("dataset", sort=False):
            for ax, metric, split, marker, ls, label in (
                    (row[0], "nc1_ratio", "train", "o", "-", dataset),
                    (row[1], "ncc_accuracy", "train", "o", "-", f"{dataset} train"),
                    (row[1], "ncc_accuracy", "test", "s", "--", f"{dataset} test")):
                stats = query.by_layer(rows[rows["split"] == split], metric)
                if not stats.empty:  # the NC1 ratio on a log scale: a collapsed 0 at 1e-12
                    mean = stats["mean"].clip(lower=1e-12) if ax is row[0] else stats["mean"]
                    query.mean_line(ax, mean, stats["sd"], marker=marker, linestyle=ls,
                                    color=colours[dataset], label=label)
        row[0].axhline(t.thresholds.collapse_eps, color="green", lw=1, label="collapse ε")
        row[0].set(yscale="log", ylabel=f"{arch}\nNC1 ratio " + r"Tr $\Sigma_W$ / Tr $\Sigma_T$")
        row[1].set(ylabel="NCC accuracy", ylim=(-0.02, 1.02))
        for ax in row:
            ax.set_xlabel("layer (0 = input)")
            ax.legend(fontsize=7)
    fig.suptitle("Intermediate NC of the best runs (thesis Figs. 4.1.1, 4.1.4, B.0.x)")
    return fig


def _epoch_lines(ax: Axes, rows: pd.DataFrame, metric: str) -> None:
    """``metric`` per layer (seed mean ± sd), a line per measured epoch (light: late), as
    Figs. 4.1.1–4.1.7."""
    colours = _palette(sorted(rows["epoch"].unique()))
    for epoch, colour in colours.items():
        _layer_band(ax, rows[rows["epoch"] == epoch], metric, marker="o", ms=3, lw=1,
                    color=colour, label=f"epoch {epoch}")


def _row_figure(t: Tables, rows: list[tuple[str, list[query.Model]]], panels: list[Panel],
                title: str) -> Figure:
    """A row of ``panels`` per (name, models) of ``rows``; each draws each model (in its
    architecture's colour) and, per layer, marks its ℓ* (dotted; green where a row has one
    model, as the thesis' figures)."""
    fig, axes = query.grid(len(rows) * len(panels), len(panels), panel=(3.1, 2.5),
                           margin=(0.0, 0.9))
    colours = _palette(list(dict.fromkeys(m.arch for _, models in rows for m in models)))
    for row, (name, models) in zip(axes, rows, strict=True):
        for ax, (label, draw, per_layer) in zip(row, panels, strict=True):
            for model in models:
                draw(ax, model, colours[model.arch])
                lstar = _model_lstar(t, model) if per_layer else math.nan
                if not math.isnan(lstar):
                    ax.axvline(lstar, ls=":", lw=1.2, label="ℓ* (NC1 ratio < ε from here)",
                               color="green" if len(models) == 1 else colours[model.arch])
            ax.set_title(f"{name}: {label}", fontsize="small")
            ax.set_xlabel("layer (0 = input)" if per_layer else "epoch", fontsize="small")
    query.legend_below(fig, axes.flat)
    fig.suptitle(title, fontsize="medium")
    return fig


def _mlp_figure(t: Tables, panels: list[Panel], what: str) -> Figure:
    """Figs. 4.1.1–4.1.7: ``panels`` of the sweep's MLP, a row per dataset."""
    models = _sweep_models(t, mlp=True)
    if not models:
        return placeholder(f"lindegaard2023: no measured MLP in a sweep group ({what})")
    return _row_figure(t, [(m.label, [m]) for m in models], panels,
                       f"The MLP's best run per layer, a line per epoch (thesis {what})")


def _appendix_figure(t: Tables, panels: list[Panel], what: str) -> Figure:
    """Figs. B.0.x: ``panels`` of every sweep model at its last epoch, a row per dataset, a
    line per architecture."""
    models = _sweep_models(t)
    if not models:
        return placeholder(f"lindegaard2023: {NO_SWEEP} ({what})")
    datasets = list(dict.fromkeys(m.dataset for m in models))
    return _row_figure(t, [(d, [m for m in models if m.dataset == d]) for d in datasets], panels,
                       f"Every architecture's best run, a line each (thesis {what})")


def fig4_1_1_nc1_traces(t: Tables) -> Figure:
    """Figs. 4.1.1, 4.1.5: the MLP's NC1 ratio per layer through training, with ε, and the
    traces Tr Σ_W, Tr Σ_B, Tr Σ_T per layer at the last epoch."""
    def ratio(ax: Axes, model: query.Model, _colour: object) -> None:
        _epoch_lines(ax, model.rows(t.metrics), "nc1_ratio")
        ax.axhline(t.thresholds.collapse_eps, color="green", lw=1, label="collapse ε")
        ax.set_yscale("log")

    def traces(ax: Axes, model: query.Model, _colour: object) -> None:
        for metric, label in (("tr_sigma_w", r"Tr $\Sigma_W$"), ("tr_sigma_b", r"Tr $\Sigma_B$"),
                              ("tr_sigma_t", r"Tr $\Sigma_T$")):
            _layer_band(ax, model.last(t.metrics), metric, marker="s", ls="-", ms=3, lw=1,
                        label=label)
        ax.set_yscale("log")
    return _mlp_figure(t, [(r"NC1 ratio Tr $\Sigma_W$ / Tr $\Sigma_T$", ratio, True),
                           ("traces, last epoch", traces, True)], "Figs. 4.1.1, 4.1.5")


def fig4_1_2_nc2_by_layer(t: Tables) -> Figure:
    """Figs. 4.1.2, 4.1.6: the MLP's NC2 measures (eqs. 2.19–2.21) per layer through training."""
    return _mlp_figure(t, [(f"NC2 {name}", lambda ax, m, _c, metric=metric: _epoch_lines(
        ax, m.rows(t.metrics), metric), True) for metric, name in NC2.items()],
        "Figs. 4.1.2, 4.1.6")


def fig4_1_3_nc3_by_layer(t: Tables) -> Figure:
    """Figs. 4.1.3, 4.1.7: the MLP's NC3: AvCosPABS (eq. 2.25) per layer through training, and
    the relative singular values σ'_k (eq. 2.23) of each layer's weight at the last epoch, k ≤ 2C,
    against 1/C (eq. 2.24)."""
    def spectrum(ax: Axes, model: query.Model, _colour: object) -> None:
        shares, classes = _sigma_shares(t, model)
        if shares.empty:
            return
        epoch = shares.index.get_level_values("epoch").max()
        last = shares.xs(epoch, level="epoch")
        sd = _seed_sigma_shares(t, model, epoch).groupby(level="layer_index").std()
        for k in last.columns[:2 * classes]:
            query.mean_line(ax, last[k].clip(lower=1e-12), sd.get(k), lw=0.8,
                            color="tab:blue" if k < classes else "tab:orange",
                            label="σ'_k, k ≤ C" if k < classes else "σ'_k, k > C")
        ax.axhline(1 / classes, color="grey", ls="--", lw=1, label="1/C")
        ax.set_yscale("log")
    return _mlp_figure(t, [("NC3 AvCosPABS", lambda ax, m, _c: _epoch_lines(
        ax, m.rows(t.metrics), "nc3_pabs"), True),
        ("σ'_k of its weight, last epoch", spectrum, True)],
        "Figs. 4.1.3, 4.1.7")


def fig_b0_accuracy_nc2(t: Tables) -> Figure:
    """Figs. B.0.1, B.0.3, B.0.5, B.0.7 ("Accuracy and NC1-2"): accuracy through training (train
    solid, test dashed), and NC1 (the relative trace Tr Σ_W / Tr Σ_T) and the NC2 measures per
    layer at the last epoch of every model's best run."""
    def accuracy(ax: Axes, model: query.Model, colour: object) -> None:
        means = sds = pd.DataFrame()
        if not t.training.empty:
            seeds = t.training[t.training["run"].isin(model.runs)].groupby("epoch")[
                ["train_acc", "test_acc"]]
            means, sds = seeds.mean(), seeds.std()
        for column, style in (("train_acc", "-"), ("test_acc", "--")):
            if column in means:
                query.mean_line(ax, means[column], sds[column], linestyle=style, color=colour,
                                label=f"{model.arch} {column.split('_')[0]}")
        ax.set_ylim(-0.02, 1.02)

    def per_layer(ax: Axes, model: query.Model, colour: object, metric: str) -> None:
        _layer_band(ax, model.last(t.metrics), metric, marker="o", ms=3, lw=1, color=colour,
                    label=model.arch)
    return _appendix_figure(t, [("accuracy", accuracy, False), (
        "NC1 Tr Σ_W / Tr Σ_T", lambda ax, m, c: per_layer(ax, m, c, "nc1_ratio"), True), *[
        (f"NC2 {name}", lambda ax, m, c, metric=metric: per_layer(ax, m, c, metric), True)
        for metric, name in NC2.items()]], "Figs. B.0.1, B.0.3, B.0.5, B.0.7")


def fig_b0_nc3_nc4(t: Tables) -> Figure:
    """Figs. B.0.2, B.0.4, B.0.6, B.0.8: NC3 (AvCosPABS; the share of Σσ in the top C singular
    values) and NC4 (NCC accuracy, train solid, test dashed) per layer at the last epoch."""
    def pabs(ax: Axes, model: query.Model, colour: object) -> None:
        _layer_band(ax, model.last(t.metrics), "nc3_pabs", marker="o", ms=3, lw=1,
                    color=colour, label=model.arch)

    def top_c(ax: Axes, model: query.Model, colour: object) -> None:
        shares, classes = _sigma_shares(t, model)
        top = _top_c_shares(shares, classes)
        if not top.empty:  # the sd over the seeds of each one's own top-C share
            seeds = _top_c_shares(_seed_sigma_shares(t, model, top.index[-1]), classes)
            query.mean_line(ax, top.iloc[-1], seeds.std(), marker="o", ms=3, lw=1,
                            color=colour, label=model.arch)

    def ncc(ax: Axes, model: query.Model, colour: object) -> None:
        for split, marker, ls in (("train", "o", "-"), ("test", "s", "--")):
            _layer_band(ax, model.last(t.metrics, split), "ncc_accuracy", marker=marker,
                        ls=ls, ms=3, lw=1, color=colour, label=f"{model.arch} {split}")
    return _appendix_figure(t, [("NC3 AvCosPABS", pabs, True),
                                ("NC3 top-C share of Σσ", top_c, True),
                                ("NC4 NCC accuracy", ncc, True)],
                            "Figs. B.0.2, B.0.4, B.0.6, B.0.8")


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
    fig4_1_nc_by_layer, fig4_1_1_nc1_traces, fig4_1_2_nc2_by_layer, fig4_1_3_nc3_by_layer,
    fig_b0_accuracy_nc2, fig_b0_nc3_nc4, fig4_2_1_collapse_vs_accuracy, fig4_3_feature_shape)}


# --- claims ------------------------------------------------------------------------------------

NC2_TEXT = "|eq. 2.19|, eq. 2.20 and eq. 2.21"
# (claim, where, the thesis' value or words, measured where no case tells, criterion: {…} the
# thresholds and the constants above)
CLAIMS = (
    ("NC1 (Tr Σ_W / Tr Σ_T, train) falls with depth and collapses from a layer on",
     "Sec. 4.1.1, 4.1.2, Figs. 4.1.1, 4.1.5, B.0.x", "Tr Σ_W / Tr Σ_T < 0.2 from layer 5 "
     "(MLP-10, CIFAR10) and from about layer 3 (MNIST)", NO_SWEEP,
     "deepest < input, Spearman rho(depth, NC1) < 0, and NC1 < {eps:g} from some layer on"),
    ("from the collapse layer on, the NCC classifier has train accuracy 1 and the network's "
     "test accuracy", "Sec. 4.1.1, Fig. 4.1.4, B.0.x", "NCC train accuracy 1 and test accuracy "
     "'the same as' the network's from layer 5 (MLP-10, CIFAR10)", NO_SWEEP,
     "NCC train ≥ {ncc:g} and |NCC test − network test| ≤ {tol:g} at every layer from the "
     "collapse layer"),
    ("NC2 is met: its measures fall through training, most in the layers after the collapse",
     "Sec. 4.1.1, Figs. 4.1.2, B.0.x", "eqs. 2.19–2.21 'converge to a lower value through "
     "training', 'more pronounced' after the collapse at layer 5 (MLP-10, CIFAR10; no number)",
     NO_SWEEP, f"for each of {NC2_TEXT}: its mean over the layers from ℓ* on at the last epoch "
     "is below that at the first measured epoch and below its mean over the hidden layers "
     "before ℓ*"),
    ("NC3 is met: the weights reading the collapsed layers become self-dual",
     "Sec. 2.3.4, 4.1.1, Figs. 4.1.3, B.0.x", "AvCosPABS → 1 (eq. 2.25) and σ'_k → 1/C for "
     "k ≤ C, → 0 beyond (eq. 2.24) (MLP-10, CIFAR10; no number)", NO_SWEEP,
     "from ℓ* on, the mean AvCosPABS and the mean share of Σσ in the top C singular values "
     "(weights with more than C) are higher at the last epoch than at the first"),
    ("simpler data collapse earlier: the MLP's ℓ* is about 3 on MNIST and 5 on CIFAR10",
     "Sec. 4.1.1, 4.1.2, Figs. 4.1.1, 4.1.5", "ℓ* ≈ 3 (MNIST), 5 (CIFAR10), MLP-10",
     "the sweep's MLP was not trained on both MNIST and CIFAR10",
     "ℓ*(MNIST) < ℓ*(CIFAR10) and each within {around} layer of the thesis' (seed median)"),
    ("the earlier collapse on simpler data shows in NC3 too: stronger on MNIST than on CIFAR10",
     "Sec. 4.1.2, Figs. 4.1.3, 4.1.7", "NC3 on MNIST 'both earlier (around layer 2) and "
     "stronger', σ'_k 'extremely low' beyond the first 10 in layers 4–8",
     "the sweep's MLP was not trained on both MNIST and CIFAR10",
     "at the last epoch, averaged over the layers whose weight has more than C singular "
     "values, AvCosPABS and the top-C share of Σσ are both higher on MNIST"),
    ("but less perfectly in NC2: on MNIST NC2 is not stronger than on CIFAR10",
     "Sec. 4.1.2, Figs. 4.1.2, 4.1.6", "NC2 on MNIST: 'not stronger than in CIFAR10', strong "
     "only in later layers (layer 8); magnitudes 'as small as' CIFAR10's",
     "the sweep's MLP was not trained on both MNIST and CIFAR10",
     f"at the last epoch, averaged over the hidden layers, at least 2 of {NC2_TEXT} are not "
     "smaller on MNIST than on CIFAR10"),
    ("on MNIST the MLP's weights converge to rank C − 1 rather than C",
     "Sec. 4.1.2, 5.1.1, Fig. 4.1.7", "rank 9 = C − 1, 'especially in the intermediate layers'",
     "the sweep's MLP was not trained on MNIST",
     "from ℓ* on, in the weights with more than C singular values at the last epoch, the mean "
     "log(σ_(C−1) / σ_C) exceeds the mean log(σ_C / σ_(C+1)): σ_C sits with the tail"),
    ("NC3 is weaker in the ConvNet and ResNet than in the MLP",
     "Sec. 4.1.3, 5.1.3, Figs. B.0.2, B.0.4, B.0.6, B.0.8", "'somewhat weaker NC3' (CIFAR10); "
     "convergence 'often stronger' in the MLP (no number)",
     "no dataset with the MLP and another architecture in the sweep",
     "in most (dataset, other architecture) pairs, its mean AvCosPABS from its ℓ* on (every "
     "layer if none) at the last epoch is below the MLP's"),
    ("the best-generalising networks of the lr × wd grid collapse in the middle of the "
     "network", "Sec. 4.2, Fig. 4.2.1, C.1.x", "'somewhere in the middle of the network'; "
     "MLP-10, CIFAR10: ℓ* = 5 (Sec. 4.1.1), 4 in the Sec. 4.3 network, of 10",
     "no measured grid group", "every seed of each model's best setting (highest seed-mean "
     "test accuracy) has {lo:.3g}·L ≤ ℓ* ≤ {hi:.3g}·L, L its deepest layer"),
    ("runs with the same hyperparameters collapse at a similar layer",
     "Sec. 4.2, Fig. 4.2.1, C.1.x", "'a general trend' to 'a similar layer of collapse' over "
     "3 or 6 seeds (no number)", "no grid setting with 2 or more measured seeds",
     "in most grid settings with ≥ 2 seeds, the seeds' ℓ* span at most {spread} layer (no "
     "collapse counts as L + 1)"),
    ("the accuracy of the clusters' induced labels rises with depth",
     "Sec. 4.3.2, Tables 4.3.1, C.2.1", "45 % (input) → 99.9 % (layer 5), cosine clustering",
     NO_FEATURES, "deepest > input and Spearman rho(depth, accuracy) > 0"),
    ("points per cluster grow with depth (whole classes after the collapse)",
     "Sec. 4.3.2, Tables 4.3.1, C.2.1", "11, 4.4, 4.2, 5.0, 18, 543 (layers 0–5, cosine)",
     NO_FEATURES, "deepest > first hidden layer and rho(depth, points) > 0 (no cluster of ≥ 3 "
     "points counts 0)"),
    ("clusters are not kept whole from a layer to the next before the collapse (no "
     "hierarchical clustering)", "Sec. 4.3.3, eq. 4.1, Tables 4.3.2, C.2.2",
     "'significantly lower than 100 %': 19, 48, 50, 81 % (0 → 1 … 3 → 4, ℓ* = 4), then 99.8 %",
     NO_FEATURES, "every retention ℓ → ℓ+1 with ℓ < ℓ* (every one if none) is below "
     "{retention:.0%}, per clustering"),
    ("after the collapse layer the activations occupy a low-dimensional subspace",
     "Sec. 4.4.1, Figs. 4.4.1, C.2.7", "after the collapse (layer 4) 'a significantly smaller "
     "space than the full 1024-dimensional space' (Fig. 4.4.1b; no number)", NO_FEATURES,
     "mean share of units holding 99 % of the variance is smaller from the collapse layer on "
     "than in the hidden layers before it"),
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


def _nc2_nc3_through_training(t: Tables) -> list[Told]:
    """Claims 3-4 on each model's best run(s): NC2 and NC3 at the first and the last epoch,
    before and from ℓ*."""
    nc2, nc3 = ([], []), ([], [])
    for model in _sweep_models(t):
        rows, lstar = model.rows(t.metrics), _model_lstar(t, model)
        if rows.empty or rows["epoch"].nunique() < 2 or math.isnan(lstar):
            why = "no collapse layer" if math.isnan(lstar) else "one measured epoch"
            for told in (nc2, nc3):
                told[0].append(f"{model.label}: {why}")
            continue
        first, last, at = query.first_epoch(rows), last_epoch(rows), f"from ℓ* = {int(lstar)}"
        parts, outcomes = [], []
        for metric, name in NC2.items():
            before, now = _split_at_lstar(_layer_profile(last, metric), lstar)
            then = _split_at_lstar(_layer_profile(first, metric), lstar)[1]
            if len(before) and len(now) and len(then):
                parts.append(f"{name} {then.mean():.3g} → {now.mean():.3g} "
                             f"(before ℓ* {before.mean():.3g})")
                outcomes.append(now.mean() < then.mean() and now.mean() < before.mean())
        nc2[0].append(f"{model.label} {at}: {', '.join(parts) or 'no layer before ℓ*'}")
        nc2[1].extend([all(outcomes)] if outcomes else [])
        then, now = (_split_at_lstar(_layer_profile(r, "nc3_pabs"), lstar)[1]
                     for r in (first, last))
        top = _top_c_shares(*_sigma_shares(t, model))
        top = top.loc[:, top.columns >= lstar] if not top.empty else top
        if now.empty or then.empty:
            nc3[0].append(f"{model.label} {at}: no AvCosPABS")
            continue
        text = f"{model.label} {at}: AvCosPABS {then.mean():.3f} → {now.mean():.3f}"
        rises = now.mean() > then.mean()
        if not top.empty and len(top) > 1:
            text += f", top-C share {top.iloc[0].mean():.3f} → {top.iloc[-1].mean():.3f}"
            rises = rises and top.iloc[-1].mean() > top.iloc[0].mean()
        nc3[0].append(text)
        nc3[1].append(bool(rises))
    return [nc2, nc3]


def _mnist_against_cifar10(t: Tables) -> list[Told]:
    """Claims 5-8: the MLP on MNIST against CIFAR10 (§4.1.2), and MNIST's rank C − 1."""
    found = _by_dataset_name(t, _sweep_models(t, mlp=True))
    mnist, cifar = found.get("mnist"), found.get("cifar10")
    nc3 = {}  # dataset → (mean AvCosPABS, mean top-C share) over the layers of wide weights
    for name, model in (("mnist", mnist), ("cifar10", cifar)):
        top = _top_c_shares(*_sigma_shares(t, model)) if model else pd.DataFrame()
        if not top.empty:
            pabs = _layer_profile(model.last(t.metrics), "nc3_pabs")
            nc3[name] = (pabs[pabs.index.isin(top.columns)].mean(), top.iloc[-1].mean())
    rank = _rank_c_minus_1(t, mnist) if mnist else ([], [])
    depth = _collapse_depths(t, found)
    if mnist is None or cifar is None:
        return [depth] + [([], [])] * 2 + [rank]
    stronger = ([], [])
    if len(nc3) == 2:
        stronger = ([f"AvCosPABS MNIST {nc3['mnist'][0]:.3f}, CIFAR10 {nc3['cifar10'][0]:.3f}; "
                     f"top-C share MNIST {nc3['mnist'][1]:.3f}, CIFAR10 "
                     f"{nc3['cifar10'][1]:.3f}"],
                    [bool(nc3["mnist"][0] > nc3["cifar10"][0]
                          and nc3["mnist"][1] > nc3["cifar10"][1])])
    hidden = {name: {metric: (lambda c: c[c.index >= 1].mean())(
        _layer_profile(m.last(t.metrics), metric)) for metric in NC2}
        for name, m in (("mnist", mnist), ("cifar10", cifar))}
    told = [hidden["mnist"][m] >= hidden["cifar10"][m] for m in NC2
            if not math.isnan(hidden["mnist"][m] - hidden["cifar10"][m])]
    nc2 = ([", ".join(f"{NC2[m]} MNIST {hidden['mnist'][m]:.3g}, CIFAR10 "
                      f"{hidden['cifar10'][m]:.3g}" for m in NC2)], [sum(told) >= 2] if told
           else [])
    return [depth, stronger, nc2, rank]


def _collapse_depths(t: Tables, found: dict[str, query.Model]) -> Told:
    """Claim 5: ℓ* on MNIST below CIFAR10's, each near the thesis'; a dataset whose ℓ* is not
    near the thesis' decides it without the other, which otherwise must be there."""
    lstar = {name: _model_lstar(t, found[name]) for name in THESIS_LSTAR if name in found}
    if not lstar:
        return [], []
    near = {name: abs(value - THESIS_LSTAR[name]) <= AROUND for name, value in lstar.items()}
    text = "ℓ* " + ", ".join(f"{query.DATASET_NAMES[name]} {query.layer_text(value)} (thesis "
                            f"{THESIS_LSTAR[name]})" for name, value in lstar.items())
    if len(lstar) < len(THESIS_LSTAR):
        missing = " and ".join(query.DATASET_NAMES[d] for d in THESIS_LSTAR if d not in lstar)
        return [f"{text}; no {missing} model"], [] if all(near.values()) else [False]
    return [text], [bool(lstar["mnist"] < lstar["cifar10"] and all(near.values()))]


def _rank_c_minus_1(t: Tables, model: query.Model) -> Told:
    """Claim 8 on the MLP on MNIST: whether σ_C sits with the tail rather than with the top C−1
    (the log gaps to its neighbours) from ℓ* on, at the last epoch."""
    shares, classes = _sigma_shares(t, model)
    lstar = _model_lstar(t, model)
    if shares.empty or classes < 2 or math.isnan(lstar):
        return [f"{model.label}: " + ("no collapse layer" if shares.size else "no spectra")], []
    last = shares.xs(shares.index.get_level_values("epoch").max(), level="epoch")
    wide = last[(last.notna().sum(axis=1) > classes) & (last.index >= lstar)]
    if wide.empty:
        return [f"{model.label}: no weight with more than C singular values from ℓ*"], []
    sigma = np.log(wide.iloc[:, classes - 2:classes + 1].clip(lower=1e-30).to_numpy())
    above, below = (sigma[:, 0] - sigma[:, 1]).mean(), (sigma[:, 1] - sigma[:, 2]).mean()
    return ([f"{model.label}, C = {classes}, layers {' '.join(map(str, wide.index))}: "
             f"log σ_(C−1)/σ_C {above:.2f}, log σ_C/σ_(C+1) {below:.2f}"], [bool(above > below)])


def _nc3_by_architecture(t: Tables) -> Told:
    """Claim 9: each other architecture's AvCosPABS from its ℓ* on against the MLP's, per
    dataset; told by the majority of pairs."""
    def collapsed_pabs(model: query.Model) -> float:
        pabs, lstar = _layer_profile(model.last(t.metrics), "nc3_pabs"), _model_lstar(t, model)
        return float((pabs if math.isnan(lstar) else pabs[pabs.index >= lstar]).mean())
    mlps = {m.dataset: m for m in _sweep_models(t, mlp=True)}
    texts, flags = [], []
    for model in _sweep_models(t):
        mlp = mlps.get(model.dataset)
        if mlp is None or model.runs == mlp.runs:
            continue
        other, own = collapsed_pabs(model), collapsed_pabs(mlp)
        if not math.isnan(other - own):
            texts.append(f"{model.dataset}: {model.arch} {other:.3f}, {mlp.arch} {own:.3f}")
            flags.append(other < own)
    return texts, [] if not flags else [query.majority(flags)]


def _grid_settings(t: Tables) -> pd.DataFrame:
    """The grid's measured runs (:func:`_measured`) with their ``setting``: the values of the
    compared axes the design table names (seeds share it)."""
    runs = _measured(t, query.runs(t, GRID, selected=None))
    axes = [a for a in query.compared_axes(t, runs["run"]) if a in runs]
    return runs.assign(setting=[", ".join(f"{a} {shown_value(v)}" for a, v in zip(
        axes, values, strict=True)) for values in runs[axes].itertuples(index=False)])


def _middle_collapse(t: Tables) -> Told:
    """Claim 10 on each model of the grid: where the seeds of its best setting collapse."""
    texts, told = [], []
    for (dataset, arch), part in _grid_settings(t).groupby(["dataset", "arch"], sort=False):
        accuracy = part.groupby("setting", sort=False)["final_test_acc"].mean()
        best = part[part["setting"] == accuracy.idxmax()]
        deepest = int(best["depth"].max())
        low, high = MIDDLE[0] * deepest, MIDDLE[1] * deepest
        told.append(bool(best["collapse"].between(low, high).all()))  # NaN: not in the middle
        texts.append(f"{dataset}/{arch}: best {accuracy.idxmax() or 'setting'} (test acc "
                     f"{accuracy.max():.3f}, {len(best)} seed(s)) collapses at "
                     f"{' '.join(map(query.layer_text, best['collapse']))} of 0…{deepest} "
                     f"(middle: {low:.3g}–{high:.3g})")
    return texts, told


def _seed_consistency(t: Tables) -> Told:
    """Claim 11: the spread of ℓ* over the seeds of each grid setting; told by the majority."""
    texts, flags = [], []
    for (dataset, arch), part in _grid_settings(t).groupby(["dataset", "arch"], sort=False):
        spreads = []
        for _, runs in part.groupby("setting", sort=False):
            layers = runs["collapse"].fillna(runs["depth"] + 1)
            spreads += [layers.max() - layers.min()] if len(runs) > 1 else []
        if spreads:
            texts.append(f"{dataset}/{arch}: ℓ* spread over seeds "
                         f"{' '.join(query.fmt(s) for s in spreads)} in {len(spreads)} settings")
            flags += [s <= SEED_SPREAD for s in spreads]
    return texts, [] if not flags else [query.majority(flags)]


def _rises(table: pd.DataFrame, x: str, y: str, show: Callable, first: int = 0) -> Told:
    """Claims 12-13 per run × method of a feature table: whether ``y`` ends above its value at
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


def _retention_before_collapse(t: Tables, feats: dict[str, pd.DataFrame]) -> Told:
    """Claim 14 per run × method: the retentions ℓ → ℓ+1 from the layers before ℓ* (at the
    analysed epoch; every one where none collapses)."""
    texts, told = [], []
    table = feats["retention"].dropna(subset=["retention"])
    layers = collapse_layers(t, table["run"].unique(), feats["clusters"])
    for (run, method), part in table.groupby(["run", "method"], sort=False):
        part, layer = part.sort_values("index_from"), layers[run]
        early = part["index_from"] < (math.inf if math.isnan(layer) else layer)
        shown = [" ".join(f"{r:.0%}" for r in part.loc[rows, "retention"]) or "-"
                 for rows in (early, ~early)]
        texts.append(f"{method}, ℓ* = {query.layer_text(layer)}: before {shown[0]}; "
                     f"from it {shown[1]}")
        told.extend([bool((part.loc[early, "retention"] < RETENTION_BELOW).all())]
                    if early.any() else [])
    return texts, told


def _low_dimensional(t: Tables, feats: dict[str, pd.DataFrame]) -> Told:
    """Claim 15 per analysed run: the share of units holding 99 % of the variance from its
    collapse layer on against the hidden layers before it (the input where there are none)."""
    texts, told = [], []
    layers = collapse_layers(t, feats["pca_summary"]["run"].unique(), feats["clusters"])
    for run, part in feats["pca_summary"].groupby("run", sort=False):
        share = pd.Series((part["n_components_99"] / part["units"]).to_numpy(dtype=float),
                          index=part["layer_index"].to_numpy())
        layer = layers[run]
        before, after = _split_at_lstar(share, layer)
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
    told = [*_best_runs(t), *_nc2_nc3_through_training(t), *_mnist_against_cifar10(t),
            _nc3_by_architecture(t), _middle_collapse(t), _seed_consistency(t),
            *([([], [])] * 4 if feats is None else [
                _rises(feats["clusters"], "layer_index", "accuracy",
                       lambda v: f"{query.fmt(v[0], 2)} → {query.fmt(v[-1], 2)}"),
                _rises(feats["clusters"].fillna({"avg_points": 0}), "layer_index", "avg_points",
                       lambda v: " ".join(query.fmt(p) for p in v), first=1),  # no cluster: 0
                _retention_before_collapse(t, feats), _low_dimensional(t, feats)])]
    fill = {"eps": t.thresholds.collapse_eps, "ncc": t.thresholds.ncc, "tol": NCC_TOLERANCE,
            "around": AROUND, "lo": MIDDLE[0], "hi": MIDDLE[1], "spread": SEED_SPREAD,
            "retention": RETENTION_BELOW}
    return claims_frame([query.claim(text, where, f"thesis: {thesis}; measured: "
                                     f"{'; '.join(texts) or missing}; criterion: "
                                     f"{criterion.format(**fill)}", query.all_told(outcomes))
                         for (text, where, thesis, missing, criterion), (texts, outcomes)
                         in zip(CLAIMS, told, strict=True)])


TABLES: dict[str, Callable[[Tables], pd.DataFrame]] = {"claims": claims}
