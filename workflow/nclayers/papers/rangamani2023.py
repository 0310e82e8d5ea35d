"""Rangamani et al. (2023), "Feature learning in deep classifiers through intermediate neural
collapse": its Figs. 2–8 (with the appendix's Figs. 9–15, the same plots on more datasets)
and its claims, from the experiment's tidy tables.

Which runs each figure reads:

- the *free* models (Figs. 2–6, the claims of §4–5.2): the selected run of every model that
  fixes no layer to an ETF (``etf_layers`` 0 or not an option of its architecture);
- the ETF experiments (Fig. 7, §5.3): a group × dataset × architecture whose ``etf_layers``
  takes several values (a compared axis), the selected run of each value; its free model is
  the one with ``etf_layers = 0``, which is also among the free models above (so an ETF
  experiment belongs in the group of its free model, not in a group of its own, or that
  model appears twice);
- the solutions without intermediate collapse (Fig. 8, §5.4 and App. B): every run, selected
  or not, whose collapse layer at its last epoch is missing or is its last layer (NC at most
  in the final hidden layer), as the paper found them in its hyperparameter search.

Diverged runs are left out of everything. Values are means over seeds (a band of ± one
standard deviation where there are several). The collapse layer ℓ* is recomputed here from
the NC1 ratios at ``Tables.thresholds.collapse_eps`` (the derived ``collapse_layer`` rows use
the same rule), so that the figures and the claims agree with the report's ε.

Layer index 0 is the input; a tapped ``classifier`` (the logits) is left out. For a model
whose last hidden layer has index L, the weights that read the layers ℓ* … L are the
L − ℓ* + 1 linear maps above ℓ* (the classifier included), so fixing the top
k ≤ L − ℓ* + 1 linear layers to ETFs (``etf_layers = k``, see ``nclayers.models.MLP``) fixes
only weights that read collapsed layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from nclayers import vocabulary
from nclayers.derived import collapse_layer, last_epoch
from nclayers.papers import Tables, claims_frame
from nclayers.plots import placeholder

ETF_AXIS = "etf_layers"
# The criteria of the claims (the paper gives ε only; the others are ours, stated in the
# claims table and the report).
NCC_TOL = 0.01  # NCC train accuracy within this of the network's own, from ℓ* on
PABS_GAIN = 0.2  # mean PABS in the collapsed layers at least this far above its initial value
TOP_C_SHARE = 0.9  # share of Σσ the top C singular values carry in the collapsed layers
SPECTRUM_SHARE = 0.99  # a weight's rank estimate: singular values carrying this share of Σσ
ETF_TOL = 0.01  # test accuracy kept: within this of the free model's (etf_layers = 0)
COLLAPSE_COLOR = "green"  # the paper's vertical line at ℓ*
MAX_NO_COLLAPSE = 6  # Fig. 8 shows at most this many runs
# A tapped layer of this name is the network's output (ResNets' taps "stages" and "convs"):
# not a feature layer, and trivially collapsed under MSE; the paper's figures end at the last
# hidden layer, so the figures and claims leave it out.
LOGITS = "classifier"

Models = list[tuple[str, list[str]]]  # (model label, its runs: one per seed)


# --- which runs ---------------------------------------------------------------------------------

def _runs(t: Tables) -> pd.DataFrame:
    """runs.csv without the diverged runs."""
    runs = t.runs
    return runs[~runs["diverged"].astype(bool)] if "diverged" in runs else runs


# Columns of runs.csv that are no axis (sweeps.run_records writes them around the axes).
NOT_AXES = {*vocabulary.RUN_COLUMNS, "group", "diverged", "final_epoch", "final_train_acc",
            "final_test_acc", "device", "train_seconds", "selected"}


def _axes(runs: pd.DataFrame) -> list[str]:
    """The axis columns of a runs table."""
    return [c for c in vocabulary.axis_columns(runs) if c not in NOT_AXES]


def _etf(runs: pd.DataFrame) -> pd.Series:
    """Each run's number of ETF-fixed layers (0 where the axis is absent)."""
    if ETF_AXIS not in runs:
        return pd.Series(0.0, index=runs.index)
    return pd.to_numeric(runs[ETF_AXIS], errors="coerce").fillna(0.0)


def _etf_models(runs: pd.DataFrame) -> pd.Series:
    """Whether each run belongs to an ETF experiment: a (group, dataset, arch) whose
    ``etf_layers`` takes several values."""
    etf = _etf(runs)
    several = etf.groupby([runs["group"], runs["dataset"], runs["arch"]]).transform("nunique")
    return several > 1


def _free(t: Tables) -> pd.DataFrame:
    """The selected runs of the free models (no layer fixed to an ETF)."""
    runs = _runs(t)
    return runs[runs["selected"].astype(bool) & (_etf(runs) == 0)]


def _model_frame(runs: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """The columns that name a model: dataset, arch, group (only where a dataset ×
    architecture occurs in several groups) and ``axes``, in the order
    :func:`vocabulary.model_keys` reads them."""
    frame = runs[["run", "dataset", "arch", "group", *axes]].copy()
    if not frame.groupby(["dataset", "arch"])["group"].nunique().gt(1).any():
        frame["group"] = ""
    return frame


def _varying(runs: pd.DataFrame, axes: Sequence[str]) -> list[str]:
    """The ``axes`` whose value differs between runs of the same group, dataset and arch."""
    keys = ["group", "dataset", "arch"]
    return [a for a in axes
            if runs.groupby(keys)[a].nunique(dropna=True).gt(1).any()]


def _compared(runs: pd.DataFrame) -> list[str]:
    """The compared axes of selected ``runs``. The tables do not say which axes were selected
    over, but a selected axis's value is a function of the compared ones (the best per
    setting), within a group, dataset, arch and seed: drop, one at a time, each axis that the
    remaining ones fix there, the usual selected ones (lr, weight_decay) first and the ETF
    axis last."""
    keys = ["group", "dataset", "arch", "seed"]
    kept = _axes(runs)
    order = sorted(kept, key=lambda a: (a not in vocabulary.DEFAULT_SELECT, a == ETF_AXIS))
    frame = runs[keys + kept].astype(object).where(runs[keys + kept].notna(), "∅")
    for axis in order:
        others = [a for a in kept if a != axis]
        if frame.groupby(keys + others)[axis].nunique().le(1).all():
            kept.remove(axis)
    return kept


def _models(runs: pd.DataFrame, axes: Sequence[str] | None = None) -> Models:
    """``[(label, runs)]``: the runs of each model (one per seed), labelled by
    :func:`vocabulary.model_labels`; ``axes`` default: the compared ones of the selected
    ``runs`` (:func:`_compared`) but the ETF axis."""
    if runs.empty:
        return []
    if axes is None:
        axes = [a for a in _compared(runs) if a != ETF_AXIS]
    labelled = runs.assign(_label=vocabulary.model_labels(_model_frame(runs, axes)))
    return [(label, list(part["run"])) for label, part in
            labelled.groupby("_label", sort=False)]


def _named(runs: pd.DataFrame, axes: Sequence[str]) -> Models:
    """``[(label, runs)]`` per setting of ``axes`` (all of them in every label, where the run
    has a value): runs from different points of a sweep, told apart."""
    out: dict[str, list[str]] = {}
    several = runs.groupby(["dataset", "arch"])["group"].nunique().gt(1)
    for row in runs.itertuples(index=False):
        values = [f"{a}={vocabulary.shown_value(getattr(row, a))}" for a in axes
                  if pd.notna(getattr(row, a))]
        group = [row.group] if several[(row.dataset, row.arch)] else []
        out.setdefault(vocabulary.model_label(row.dataset, row.arch, *group, *values),
                       []).append(row.run)
    return list(out.items())


def _rows(table: pd.DataFrame, runs: Sequence[str], split: str | None = "train"
          ) -> pd.DataFrame:
    """The per-layer rows of ``runs`` (one split; None keeps both), without the logits."""
    rows = table[table["run"].isin(runs) & table["layer_index"].notna()
                 & (table["layer"] != LOGITS)]
    if split is not None and "split" in rows:
        rows = rows[rows["split"] == split]
    return rows


def _by_layer(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean, sd and name of ``metric`` per layer index (over seeds), sorted by depth."""
    part = rows[rows["metric"] == metric]
    out = part.groupby("layer_index").agg(mean=("value", "mean"), sd=("value", "std"),
                                          layer=("layer", "first"))
    return out.sort_index()


def _lstar(metrics: pd.DataFrame, runs: Sequence[str], eps: float) -> float:
    """ℓ*: the collapse layer of the seed-mean NC1 ratios at the runs' last epoch (train)."""
    ratios = _by_layer(last_epoch(_rows(metrics, runs)), "nc1_ratio")["mean"]
    return collapse_layer(ratios, eps) if len(ratios) else math.nan


def _last_index(metrics: pd.DataFrame, runs: Sequence[str]) -> float:
    rows = _rows(metrics, runs)
    return float(rows["layer_index"].max()) if len(rows) else math.nan


def _no_collapse(t: Tables) -> pd.DataFrame:
    """The runs without intermediate collapse (ℓ* missing or the last layer), not ETF-fixed,
    in one pass over the table (a sweep has hundreds of runs)."""
    runs = _runs(t)
    runs = runs[_etf(runs) == 0]
    rows = last_epoch(_rows(t.metrics, list(runs["run"])))
    ratios = rows[rows["metric"] == "nc1_ratio"]
    lstar = pd.Series({run: collapse_layer(part.set_index("layer_index")["value"],
                                           t.thresholds.collapse_eps)
                       for run, part in ratios.groupby("run")}, dtype=float)
    last = ratios.groupby("run")["layer_index"].max()
    flat = lstar.isna() | (lstar >= last)
    return runs[runs["run"].map(flat).fillna(False).astype(bool)]


def _classes(spectra: pd.DataFrame, runs: Sequence[str]) -> int | None:
    """C: the number of singular values of the classifier, the weight reading the last
    layer."""
    rows = _rows(spectra, runs, split=None)
    if rows.empty:
        return None
    top = rows[rows["layer_index"] == rows["layer_index"].max()]
    top = top[(top["run"] == top["run"].iloc[0]) & (top["epoch"] == top["epoch"].iloc[0])]
    return int(len(top))


def _spectrum_stats(spectra: pd.DataFrame, runs: Sequence[str], classes: int) -> pd.DataFrame:
    """Per layer index at the last epoch (seed means): ``top_c``, the share of Σσ the top C
    singular values of the weight reading the layer carry; ``rank``, how many carry
    :data:`SPECTRUM_SHARE`; ``n``, how many there are."""
    rows = last_epoch(_rows(spectra, runs, split=None)).sort_values("k")
    out = []
    for (run, index), part in rows.groupby(["run", "layer_index"]):
        share = part["share"].to_numpy() / part["share"].sum()
        cumulative = np.cumsum(share)
        out.append({"run": run, "layer_index": index, "n": len(share),
                    "top_c": float(share[:classes].sum()),
                    "rank": int(np.searchsorted(cumulative, SPECTRUM_SHARE - 1e-12) + 1)})
    if not out:
        return pd.DataFrame(columns=["top_c", "rank", "n"])
    return pd.DataFrame(out).groupby("layer_index")[["top_c", "rank", "n"]].mean()


# --- drawing ------------------------------------------------------------------------------------

def _panels(count: int, per_model: int, title: str, panel_height: float = 2.5
            ) -> tuple[Figure, list[list[Axes]]]:
    """A figure with ``per_model`` panels for each of ``count`` models, wrapped into rows so
    that it stays within 9.5 × 11 in (the report shows it at the text width)."""
    per_row = min(count, max(1, 3 // per_model))
    while math.ceil(count / per_row) > 4 and (per_row + 1) * per_model <= 4:
        per_row += 1
    rows, cols = math.ceil(count / per_row), per_row * per_model
    width = min(9.5, 0.5 + cols * (3.6 if cols <= 2 else 9.0 / cols))
    height = min(11.0, 0.7 + rows * min(panel_height, 10.0 / rows))
    fig = Figure(figsize=(width, height), layout="constrained")
    grid = fig.subplots(rows, cols, squeeze=False)
    axes = [list(grid[i // per_row, (i % per_row) * per_model:(i % per_row + 1) * per_model])
            for i in range(count)]
    for ax in grid.flat[count * per_model:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize="medium")
    return fig, axes


def _line(ax: Axes, stats: pd.DataFrame, label: str | None = None, **style) -> None:
    """A seed-mean line against the layer index, with a ± sd band where there are seeds."""
    (line,) = ax.plot(stats.index, stats["mean"], label=label, marker=".", **style)
    if "sd" in stats and stats["sd"].notna().any():
        ax.fill_between(stats.index, stats["mean"] - stats["sd"], stats["mean"] + stats["sd"],
                        color=line.get_color(), alpha=0.2, linewidth=0)


def _layer_ticks(ax: Axes, rows: pd.DataFrame) -> None:
    """Layer names under the x axis (every k-th one where there are many)."""
    ticks = rows.dropna(subset=["layer_index"]).drop_duplicates("layer_index")
    ticks = ticks.sort_values("layer_index")
    step = max(1, math.ceil(len(ticks) / 12))
    shown = ticks.iloc[sorted({*range(0, len(ticks), step), len(ticks) - 1})]
    ax.set_xticks(shown["layer_index"], shown["layer"], rotation=90, fontsize="x-small")
    ax.set_xlabel("")


def _collapse_line(ax: Axes, lstar: float) -> None:
    if not math.isnan(lstar):
        ax.axvline(lstar, color=COLLAPSE_COLOR, linewidth=1.3, label="collapse layer ℓ*")


def _title(ax: Axes, model: str, what: str) -> None:
    ax.set_title(f"{model}: {what}", fontsize="small")


def _figure_legend(fig: Figure, axes: Sequence[Axes]) -> None:
    """One legend under the figure, from the labelled lines of ``axes`` (deduplicated)."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center",
                   ncol=min(4, len(seen)), fontsize="small")


NO_FREE = ("no selected run of a model without fixed ETF layers: the figure needs at least one "
           "group of free models (etf_layers 0 or unset)")


# --- the figures --------------------------------------------------------------------------------

def fig2_traces(t: Tables) -> Figure:
    """Figs. 2 and 9 (NC1, feature variability suppression): Tr Σ_W (dotted), Tr Σ_B (dashed)
    and Tr Σ_T (solid) per layer at the last epoch, and the first two normalised by Tr Σ_T
    with the threshold ε and the collapse layer ℓ* (green)."""
    models = _models(_free(t))
    if not models:
        return placeholder(NO_FREE)
    fig, axes = _panels(len(models), 2, "Feature variability suppression (NC1), train split, "
                                        "last epoch (Rangamani et al. Figs. 2, 9)")
    styles = {"tr_sigma_w": ":", "tr_sigma_b": "--", "tr_sigma_t": "-"}
    names = {"tr_sigma_w": "Tr Σ_W", "tr_sigma_b": "Tr Σ_B", "tr_sigma_t": "Tr Σ_T"}
    for (raw, norm), (model, runs) in zip(axes, models, strict=True):
        rows = last_epoch(_rows(t.metrics, runs))
        for metric, style in styles.items():
            _line(raw, _by_layer(rows, metric), names[metric], color="k", linestyle=style)
        raw.set_yscale("log")
        total = _by_layer(rows, "tr_sigma_t")["mean"]
        for metric in ("tr_sigma_w", "tr_sigma_b"):
            stats = _by_layer(rows, metric)
            ratio = pd.DataFrame({"mean": stats["mean"] / total})
            _line(norm, ratio, f"{names[metric]} / Tr Σ_T", color="k",
                  linestyle=styles[metric])
        norm.axhline(t.thresholds.collapse_eps, color="crimson", linewidth=1,
                     label=f"ε = {t.thresholds.collapse_eps:g}")
        norm.set_ylim(0, 1.02)
        lstar = _lstar(t.metrics, runs, t.thresholds.collapse_eps)
        for ax in (raw, norm):
            _collapse_line(ax, lstar)
            _layer_ticks(ax, rows)
        _title(raw, model, "traces")
        _title(norm, model, "normalised by Tr Σ_T")
    _figure_legend(fig, [ax for pair in axes for ax in pair])
    return fig


def _epoch_colors(epochs: Sequence[int]) -> dict[int, object]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    last = max(epochs) or 1
    return {e: cmap(0.9 * e / last) for e in epochs}


def fig3_nc2(t: Tables) -> Figure:
    """Figs. 3 and 10 (NC2): equinorm (std/mean of the centred class-mean norms) and
    equiangularity (std/|mean| of their pairwise cosines, the paper's normalisation) per layer,
    a line per checkpoint epoch."""
    models = _models(_free(t))
    if not models:
        return placeholder(NO_FREE)
    fig, axes = _panels(len(models), 2, "Class means approach a simplex ETF (NC2), train split "
                                        "(Rangamani et al. Figs. 3, 10)")
    metrics = {"nc2_equinorm": "equinorm: std/mean of ‖μ_c − μ_G‖",
               "nc2_equiangle_ratio": "equiangularity: std/|mean| of cosines"}
    for pair, (model, runs) in zip(axes, models, strict=True):
        rows = _rows(t.metrics, runs)
        colors = _epoch_colors(sorted(rows["epoch"].unique()))
        lstar = _lstar(t.metrics, runs, t.thresholds.collapse_eps)
        for ax, (metric, what) in zip(pair, metrics.items(), strict=True):
            for epoch, part in rows.groupby("epoch"):
                _line(ax, _by_layer(part, metric), f"epoch {epoch}", color=colors[epoch])
            ax.set_yscale("log")
            _collapse_line(ax, lstar)
            _layer_ticks(ax, rows)
            _title(ax, model, what)
        pair[-1].legend(fontsize="x-small", loc="best")
    return fig


def fig4_pabs(t: Tables) -> Figure:
    """Figs. 4 and 11 (NC3): mean cosine of the principal angles between the centred class
    means and the top-C input space of the weight that reads each layer, at initialisation
    and at the last epoch."""
    models = _models(_free(t))
    if not models:
        return placeholder(NO_FREE)
    fig, axes = _panels(len(models), 1, "Feature–weight alignment (NC3, PABS) "
                                        "(Rangamani et al. Figs. 4, 11)", panel_height=3.2)
    for (ax,), (model, runs) in zip(axes, models, strict=True):
        rows = _rows(t.metrics, runs)
        first = rows[rows["epoch"] == rows.groupby("run")["epoch"].transform("min")]
        _line(ax, _by_layer(first, "nc3_pabs"), f"initialisation (epoch {first['epoch'].min()})",
              color="grey", linestyle="--")
        last = last_epoch(rows)
        _line(ax, _by_layer(last, "nc3_pabs"), "last epoch", color="tab:blue")
        _collapse_line(ax, _lstar(t.metrics, runs, t.thresholds.collapse_eps))
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("mean cos of principal angles", fontsize="small")
        _layer_ticks(ax, rows)
        _title(ax, model, "PABS")
    _figure_legend(fig, [pair[0] for pair in axes])
    return fig


def fig5_ncc(t: Tables) -> Figure:
    """Figs. 5 and 12 (NC4): the nearest-class-centre accuracy of each layer's features,
    train and test, against the network's own final accuracies (horizontal lines)."""
    runs = _free(t)
    models = _models(runs)
    if not models:
        return placeholder(NO_FREE)
    fig, axes = _panels(len(models), 1, "NCC accuracy per layer vs the network's "
                                        "(Rangamani et al. Figs. 5, 12)", panel_height=3.2)
    colors = {"train": "tab:blue", "test": "tab:orange"}
    for (ax,), (model, ids) in zip(axes, models, strict=True):
        own = runs[runs["run"].isin(ids)]
        rows = last_epoch(_rows(t.metrics, ids, split=None))
        for split, color in colors.items():
            _line(ax, _by_layer(rows[rows["split"] == split], "ncc_accuracy"),
                  f"NCC, {split}", color=color)
            ax.axhline(own[f"final_{split}_acc"].mean(), color=color, linestyle="--",
                       linewidth=1, label=f"network, {split}")
        _collapse_line(ax, _lstar(t.metrics, ids, t.thresholds.collapse_eps))
        _layer_ticks(ax, rows)
        _title(ax, model, "accuracy")
    _figure_legend(fig, [pair[0] for pair in axes])
    return fig


def fig6_ranks(t: Tables) -> Figure:
    """Figs. 6 and 13–15: the normalised singular values σ_k/σ_1 of the weight that reads
    each layer (top row of the paper's figure), and two rank estimates per layer: the
    number of singular values carrying 99 % of Σσ of that weight, and the stable rank of the
    within-class-centred features (bottom row)."""
    models = _models(_free(t))
    if not models:
        return placeholder(NO_FREE)
    fig, axes = _panels(len(models), 2, "Ranks of weights and within-class features, last epoch "
                                        "(Rangamani et al. Figs. 6, 13–15)")
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    for (spec_ax, rank_ax), (model, runs) in zip(axes, models, strict=True):
        spectra = last_epoch(_rows(t.spectra, runs, split=None))
        classes = _classes(t.spectra, runs) or 1
        shown = spectra[spectra["k"] < 3 * classes]
        top = shown["layer_index"].max()
        for index, part in shown.groupby("layer_index"):
            mean = part.groupby("k")["sigma"].mean().sort_index()
            spec_ax.plot(mean.index + 1, mean / mean.iloc[0], color=cmap(index / max(top, 1)),
                         linewidth=1)
        spec_ax.axvline(classes, color="k", linestyle=":", linewidth=1, label="k = C")
        spec_ax.set_yscale("log")
        spec_ax.set_xlabel("k", fontsize="small")
        spec_ax.set_ylabel("σ_k / σ_1 (colour: depth)", fontsize="small")
        _title(spec_ax, model, "weight spectra")
        stats = _spectrum_stats(t.spectra, runs, classes)
        if len(stats):
            _line(rank_ax, pd.DataFrame({"mean": stats["rank"]}),
                  f"weight: σ's carrying {SPECTRUM_SHARE:.0%} of Σσ", color="tab:red")
        rows = last_epoch(_rows(t.metrics, runs))
        _line(rank_ax, _by_layer(rows, "stable_rank"), "features: within-class stable rank",
              color="tab:blue")
        rank_ax.axhline(classes, color="k", linestyle=":", linewidth=1)
        rank_ax.set_yscale("log")
        _collapse_line(rank_ax, _lstar(t.metrics, runs, t.thresholds.collapse_eps))
        _layer_ticks(rank_ax, rows)
        _title(rank_ax, model, "rank estimates")
    _figure_legend(fig, [ax for pair in axes for ax in pair])
    return fig


def _etf_experiments(t: Tables) -> list[tuple[str, pd.DataFrame, list[str]]]:
    """``[(label, selected runs of each etf_layers value, runs of the free model)]`` per
    ETF experiment (group × dataset × arch with several ``etf_layers`` values)."""
    runs = _runs(t)
    if ETF_AXIS not in runs:
        return []
    runs = runs[_etf_models(runs)]
    chosen = runs[runs["selected"].astype(bool)]
    out = []
    for label, ids in _models(chosen):
        rows = chosen[chosen["run"].isin(ids)].assign(_k=lambda r: _etf(r))
        out.append((label, rows, list(rows.loc[rows["_k"] == 0, "run"])))
    return out


NO_ETF = ("no ETF experiment: Fig. 7 needs an architecture whose etf_layers is an axis "
          "(e.g. etf_layers: [0, 3, 7] on an mlp), as in workflow/presets/rangamani2023/")


def fig7_etf(t: Tables) -> Figure:
    """Fig. 7 (§5.3): final accuracy against the number of top linear layers fixed to simplex
    ETFs, with the number of weights that read collapsed layers of the free model
    (etf_layers = 0) marked green."""
    experiments = _etf_experiments(t)
    if not experiments:
        return placeholder(NO_ETF)
    fig, axes = _panels(len(experiments), 1, "Fixing the top layers to simplex ETFs "
                                             "(Rangamani et al. Fig. 7)", panel_height=2.8)
    for (ax,), (label, rows, free) in zip(axes, experiments, strict=True):
        for split, style in (("test", "-"), ("train", "--")):
            acc = rows.groupby("_k")[f"final_{split}_acc"].agg(["mean", "std"])
            _line(ax, acc.rename(columns={"std": "sd"}), f"final {split} accuracy",
                  color="tab:blue" if split == "test" else "tab:grey", linestyle=style)
        kstar = _fixable(t, free)
        if not math.isnan(kstar):
            ax.axvline(kstar, color=COLLAPSE_COLOR, linewidth=1.3,
                       label="weights reading collapsed layers of the free model")
        ax.set_xlabel("top linear layers fixed to ETFs (classifier included)", fontsize="small")
        ax.set_ylabel("accuracy", fontsize="small")
        _title(ax, label, "accuracy")
    _figure_legend(fig, [pair[0] for pair in axes])
    return fig


def _fixable(t: Tables, free: Sequence[str]) -> float:
    """How many top linear layers read collapsed layers of the free model: L − ℓ* + 1."""
    if not free:
        return math.nan
    lstar = _lstar(t.metrics, free, t.thresholds.collapse_eps)
    return _last_index(t.metrics, free) - lstar + 1


def fig8_no_collapse(t: Tables) -> Figure:
    """Fig. 8 (§5.4, App. B): runs without intermediate collapse: NC1 ratio and NCC accuracy
    per layer at the last epoch."""
    runs = _no_collapse(t)
    if runs.empty:
        return placeholder("every run collapses in an intermediate layer: no solution "
                           "without intermediate NC to show (Fig. 8)")
    models = _named(runs, _varying(_runs(t), _axes(runs)))
    more = len(models) - MAX_NO_COLLAPSE
    models = models[:MAX_NO_COLLAPSE]
    hidden = f", {more} more not shown" if more > 0 else ""
    fig, axes = _panels(len(models), 2, "Solutions without intermediate collapse "
                        f"(Rangamani et al. Fig. 8){hidden}")
    for (ratio_ax, ncc_ax), (model, ids) in zip(axes, models, strict=True):
        rows = last_epoch(_rows(t.metrics, ids, split=None))
        train = rows[rows["split"] == "train"]
        _line(ratio_ax, _by_layer(train, "nc1_ratio"), "Tr Σ_W / Tr Σ_T", color="k",
              linestyle=":")
        ratio_ax.axhline(t.thresholds.collapse_eps, color="crimson", linewidth=1,
                         label=f"ε = {t.thresholds.collapse_eps:g}")
        ratio_ax.set_ylim(0, 1.02)
        for split, color in (("train", "tab:blue"), ("test", "tab:orange")):
            _line(ncc_ax, _by_layer(rows[rows["split"] == split], "ncc_accuracy"),
                  f"NCC, {split}", color=color)
        ncc_ax.set_ylim(0, 1.02)
        for ax in (ratio_ax, ncc_ax):
            _layer_ticks(ax, rows)
        _title(ratio_ax, model, "NC1 ratio")
        _title(ncc_ax, model, "NCC accuracy")
    _figure_legend(fig, [ax for pair in axes for ax in pair])
    return fig


FIGURES: dict[str, Callable[[Tables], Figure]] = {
    "fig2_traces": fig2_traces,
    "fig3_nc2": fig3_nc2,
    "fig4_pabs": fig4_pabs,
    "fig5_ncc": fig5_ncc,
    "fig6_ranks": fig6_ranks,
    "fig7_etf": fig7_etf,
    "fig8_no_collapse": fig8_no_collapse,
}


# --- the claims ---------------------------------------------------------------------------------

def _name(rows: pd.DataFrame, index: float) -> str:
    names = rows.drop_duplicates("layer_index").set_index("layer_index")["layer"]
    return f"{names.get(index, '?')} (index {int(index)})"


def _claim(claim: str, model: str, where: str, measured: str, holds: bool | None) -> dict:
    return {"claim": f"{claim} [{model}]", "where": where, "measured": measured,
            "holds": None if holds is None else bool(holds)}


def _texts(eps: float) -> dict[str, tuple[str, str]]:
    """Each claim of §4–5.2 in words (with our criterion) and where the paper makes it."""
    return {
        "nc1": (f"there is a layer ℓ* after which every layer has Tr Σ_W/Tr Σ_T < ε = {eps:g} "
                "(and ℓ* is not the last layer)", "Sec. 4, 5.1; Fig. 2"),
        "ncc": (f"from ℓ* on, NCC accuracy equals the network's (train split, within "
                f"{NCC_TOL:g})", "Sec. 5.1; Fig. 5"),
        "nc2": ("NC2 (equinorm and equiangularity) is best in the deepest layers (the smallest "
                "value lies in the last third of the hidden layers)", "Sec. 5.1; Fig. 3"),
        "pabs": ("PABS alignment in the collapsed layers far above its value at initialisation "
                 f"(mean gain ≥ {PABS_GAIN:g})", "Sec. 5.1; Fig. 4"),
        "rank": ("in collapsed layers the top C singular values dominate the weight spectrum "
                 f"(their mean share of the sum of the singular values ≥ {TOP_C_SHARE:g}; "
                 "weights with more than C singular values)", "Sec. 5.2; Fig. 6"),
    }


def _model_claims(t: Tables, model: str, runs: Sequence[str], own: pd.DataFrame) -> list[dict]:
    """The claims of §4–5.2 for one free model, at its last epoch, train split."""
    texts = _texts(t.thresholds.collapse_eps)

    def claim(key: str, measured: str, holds: bool | None) -> dict:
        return _claim(texts[key][0], model, texts[key][1], measured, holds)

    rows = last_epoch(_rows(t.metrics, runs))
    ratios = _by_layer(rows, "nc1_ratio")["mean"]
    if ratios.empty:
        return [claim(key, "no measurements of this model", None) for key in texts]
    lstar = collapse_layer(ratios, t.thresholds.collapse_eps)
    collapsed = not math.isnan(lstar)
    out = [claim("nc1", *_nc1(rows, ratios, lstar, t.thresholds.collapse_eps))]
    # NCC accuracy of the collapsed layers against the network's own.
    ncc = _by_layer(rows, "ncc_accuracy")["mean"]
    network = float(own["final_train_acc"].mean())
    if collapsed:
        gap = (ncc.loc[lstar:] - network).abs()
        out.append(claim("ncc", f"network {network:.3f}; NCC from ℓ* on "
                                f"{ncc.loc[lstar:].min():.3f}–{ncc.loc[lstar:].max():.3f} "
                                f"(largest gap {gap.max():.3f})", bool(gap.max() <= NCC_TOL)))
    else:
        out.append(claim("ncc", f"no collapsed layers; network {network:.3f}, last layer's "
                                f"NCC {ncc.iloc[-1]:.3f}", None))
    out.append(claim("nc2", *_nc2(rows, ratios.index)))
    if not collapsed:
        out += [claim(key, "no collapsed layers", None) for key in ("pabs", "rank")]
        return out
    out.append(claim("pabs", *_pabs(t.metrics, runs, rows, lstar)))
    out.append(claim("rank", *_low_rank(t.spectra, runs, lstar)))
    return out


def _nc1(rows: pd.DataFrame, ratios: pd.Series, lstar: float, eps: float
         ) -> tuple[str, bool]:
    """ℓ* exists and is an intermediate layer (not the last one)."""
    top = float(ratios.index.max())
    if math.isnan(lstar):
        return f"no layer ℓ* (last layer's ratio {ratios.iloc[-1]:.3g} ≥ ε = {eps:g})", False
    measured = (f"ℓ* = {_name(rows, lstar)} of {int(top)}; Tr Σ_W/Tr Σ_T ≤ "
                f"{ratios.loc[lstar:].max():.3g} from ℓ* on")
    if lstar > ratios.index.min():
        measured += f", {ratios.loc[:lstar].iloc[-2]:.3g} just before"
    if lstar >= top:
        return measured + "; only the last layer is collapsed", False
    return measured, True


def _nc2(rows: pd.DataFrame, layers: pd.Index) -> tuple[str, bool | None]:
    """The smallest equinorm and equiangularity lie in the last third of the hidden layers."""
    hidden = layers[layers > layers.min()]  # without the input
    if hidden.empty:
        return "no hidden layer", None
    deep = hidden[-math.ceil(len(hidden) / 3):]
    parts, best = [], []
    for metric, what in (("nc2_equinorm", "equinorm"), ("nc2_equiangle_ratio", "equiangle")):
        values = _by_layer(rows, metric)["mean"].reindex(hidden).dropna()
        if values.empty:
            continue
        at = values.idxmin()
        parts.append(f"{what} smallest at {_name(rows, at)} ({values.min():.3g})")
        best.append(at in deep)
    if not parts:
        return "no NC2 measurements", None
    return ("; ".join(parts) + f"; last third: indices {int(deep[0])}–{int(deep[-1])}",
            all(best))


def _pabs(metrics: pd.DataFrame, runs: Sequence[str], rows: pd.DataFrame, lstar: float
          ) -> tuple[str, bool | None]:
    """Mean PABS over the collapsed layers, last epoch against the first (initialisation)."""
    every = _rows(metrics, runs)
    first = every[every["epoch"] == every.groupby("run")["epoch"].transform("min")]
    now = _by_layer(rows, "nc3_pabs")["mean"].loc[lstar:].dropna()
    init = _by_layer(first, "nc3_pabs")["mean"].reindex(now.index).dropna()
    now = now.reindex(init.index)
    if now.empty:
        return "no PABS in the collapsed layers (or no epoch-0 checkpoint)", None
    gain = float((now - init).mean())
    return (f"collapsed layers: mean {now.mean():.3f} vs {init.mean():.3f} at initialisation "
            f"(gain {gain:.3f})", gain >= PABS_GAIN)


def _low_rank(spectra: pd.DataFrame, runs: Sequence[str], lstar: float
              ) -> tuple[str, bool | None]:
    """The share of Σσ in the top C singular values of the weights reading collapsed layers
    (the classifier, with only C, left out)."""
    classes = _classes(spectra, runs)
    if classes is None:
        return "no spectra", None
    stats = _spectrum_stats(spectra, runs, classes)
    stats = stats[stats["n"] > classes]
    inside = stats.loc[stats.index >= lstar, "top_c"]
    outside = stats.loc[stats.index < lstar, "top_c"]
    if inside.empty:
        return f"C = {classes}; only the classifier reads collapsed layers", None
    before = f", {outside.mean():.3f} in the layers before ℓ*" if len(outside) else ""
    return (f"C = {classes}; top-C share {inside.mean():.3f} (min {inside.min():.3f}) in the "
            f"collapsed layers{before}", bool(inside.mean() >= TOP_C_SHARE))


def _etf_claims(t: Tables) -> list[dict]:
    """§5.3, Fig. 7: fixing weights that read collapsed layers keeps the accuracy; fixing
    more (reaching non-collapsed layers) lowers it."""
    keep_claim = (f"fixing the top layers that read collapsed layers to simplex ETFs keeps the "
                  f"test accuracy (within {ETF_TOL:g} of the free model)")
    hurt_claim = (f"fixing layers that read non-collapsed layers to ETFs lowers the test "
                  f"accuracy (by more than {ETF_TOL:g})")
    experiments = _etf_experiments(t)
    if not experiments:
        return [_claim(c, "no ETF experiment", "Sec. 5.3; Fig. 7",
                       "the config has no etf_layers axis", None)
                for c in (keep_claim, hurt_claim)]
    out = []
    for label, rows, free in experiments:
        acc = rows.groupby("_k")["final_test_acc"].mean()
        if 0 not in acc.index:
            out += [_claim(c, label, "Sec. 5.3; Fig. 7", "no free run (etf_layers = 0)", None)
                    for c in (keep_claim, hurt_claim)]
            continue
        base, kstar = float(acc.loc[0]), _fixable(t, free)
        if math.isnan(kstar):
            out += [_claim(c, label, "Sec. 5.3; Fig. 7",
                           f"the free model (test {base:.3f}) has no collapsed layer", None)
                    for c in (keep_claim, hurt_claim)]
            continue
        fixed = acc.drop(index=0)
        inside, outside = fixed[fixed.index <= kstar], fixed[fixed.index > kstar]
        lstar = _lstar(t.metrics, free, t.thresholds.collapse_eps)
        head = (f"free model {base:.3f}, ℓ* = {int(lstar)}: "
                f"the top k* = {int(kstar)} linear layers read collapsed layers; ")
        for claim, part, test in ((keep_claim, inside, lambda d: (d >= -ETF_TOL).all()),
                                  (hurt_claim, outside, lambda d: (d < -ETF_TOL).all())):
            if part.empty:
                out.append(_claim(claim, label, "Sec. 5.3; Fig. 7",
                                  head + "no etf_layers value on this side of k*", None))
                continue
            values = ", ".join(f"k={int(k)}: {v:.3f}" for k, v in part.items())
            out.append(_claim(claim, label, "Sec. 5.3; Fig. 7", head + values,
                              bool(test(part - base))))
    return out


def claims(t: Tables) -> pd.DataFrame:
    """Each claim of §4–5.3 per free model (and per ETF experiment), checked against the
    measured numbers at the last epoch, train split unless said."""
    free = _free(t)
    rows: list[dict] = []
    for model, runs in _models(free):
        rows += _model_claims(t, model, runs, free[free["run"].isin(runs)])
    rows += _etf_claims(t)
    return claims_frame(rows)


TABLES: dict[str, Callable[[Tables], pd.DataFrame]] = {"claims": claims}
