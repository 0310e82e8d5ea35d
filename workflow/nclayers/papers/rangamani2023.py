"""Rangamani et al. (2023), "Feature learning in deep classifiers through intermediate neural
collapse": its Figs. 2–8 (with the appendix's Figs. 9–15, the same plots on more datasets)
and its claims, from the experiment's tidy tables. Which runs each figure reads:

- the *free* models (Figs. 2–6, the claims of §4–5.2): the selected run of every model that
  fixes no layer to an ETF (``etf_layers`` 0 or not an option of its architecture);
- the ETF experiments (Fig. 7, §5.3): a model whose ``etf_layers`` is a compared axis (the
  design table's), the selected run of each value; its free model (``etf_layers = 0``) is
  also among the free models above, so an ETF experiment belongs in the group of its free
  model (in a group of its own, that model would appear twice);
- the solutions without intermediate collapse (Fig. 8, §5.4, App. B): every run, selected or
  not, whose collapse layer at its last epoch is missing or its last layer (NC at most in the
  final hidden layer), as the paper found them in its hyperparameter search.

Diverged runs are left out; values are seed means (a ± sd band where there are several).
ℓ* is the collapse layer of the seed-mean NC1 ratios at ``Tables.thresholds.collapse_eps``
(the rule of the derived ``collapse_layer`` rows, which are per run and count the logits, so
it is computed here). Layer index 0 is the input; a tapped ``classifier`` (the logits,
trivially collapsed under MSE) is left out: the paper's figures end at the last hidden layer.
For a last hidden layer of index L, the weights that read the layers ℓ* … L are the
L − ℓ* + 1 linear maps above ℓ* (the classifier included), so fixing the top
k ≤ L − ℓ* + 1 linear layers to ETFs (``etf_layers = k``, see ``nclayers.models.MLP``) fixes
only weights that read collapsed layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from nclayers import vocabulary
from nclayers.derived import collapse_layer, last_epoch
from nclayers.papers import Tables, claims_frame, query
from nclayers.papers.query import ETF_AXIS
from nclayers.plots import placeholder

# The criteria of the claims (the paper gives ε only; the others are ours, stated in the
# claims table and the report).
NCC_TOL = 0.01  # NCC train accuracy within this of the network's own, from ℓ* on
PABS_GAIN = 0.2  # mean PABS in the collapsed layers at least this far above its initial value
TOP_C_SHARE = 0.9  # share of Σσ the top C singular values carry in the collapsed layers
SPECTRUM_SHARE = 0.99  # a weight's rank estimate: singular values carrying this share of Σσ
ETF_TOL = 0.01  # test accuracy kept: within this of the free model's (etf_layers = 0)
COLLAPSE_COLOR = "green"  # the paper's vertical line at ℓ*
MAX_NO_COLLAPSE = 6  # Fig. 8 shows at most this many runs
NO_FREE = ("no selected run of a model without fixed ETF layers: the figure needs at least one "
           "group of free models (etf_layers 0 or unset)")
NO_ETF = ("no ETF experiment: Fig. 7 needs an architecture whose etf_layers is an axis "
          "(e.g. etf_layers: [0, 3, 7] on an mlp), as in workflow/presets/rangamani2023/")


# --- which runs ---------------------------------------------------------------------------------

def _free(t: Tables) -> pd.DataFrame:
    """The selected runs of the free models (no layer fixed to an ETF)."""
    runs = query.runs(t)
    return runs[query.etf_layers(runs) == 0]


def _models(t: Tables, runs: pd.DataFrame) -> list[query.Model]:
    """The models of ``runs`` named by :func:`vocabulary.model_labels`: the group where a
    dataset × architecture occurs in several, and the compared axes but the ETF axis."""
    axes = [a for a in query.compared_axes(t, runs["run"]) if a != ETF_AXIS]
    frame = runs[["run", "dataset", "arch", "group", *axes]].copy()
    if not frame.groupby(["dataset", "arch"])["group"].nunique().gt(1).any():
        frame["group"] = ""
    return query.models(runs.assign(label=vocabulary.model_labels(frame)),
                        by=["label", "dataset", "arch"], label=lambda key: key["label"])


def _points(t: Tables, runs: pd.DataFrame) -> list[query.Model]:
    """The runs of each point of a sweep, named by every axis swept in the experiment (the
    design's; where the run has a value) and its group where a dataset × architecture
    occurs in several."""
    axes = query.compared_axes(t, query.runs(t, selected=None)["run"], selected=True)
    several = runs.groupby(["dataset", "arch"])["group"].transform("nunique") > 1
    labels = [vocabulary.model_label(
        row.dataset, row.arch, *([row.group] if many else []),
        *(f"{a}={vocabulary.shown_value(getattr(row, a))}" for a in axes
          if pd.notna(getattr(row, a))))
        for row, many in zip(runs.itertuples(index=False), several, strict=True)]
    return query.models(runs.assign(label=labels), by=["label", "dataset", "arch"],
                        label=lambda key: key["label"])


def _lstar(t: Tables, runs: Sequence[str]) -> float:
    """ℓ*: the collapse layer of the seed-mean NC1 ratios at the runs' last epoch (train)."""
    rows = last_epoch(query.layer_rows(t.metrics, runs, logits=False))
    ratios = query.by_layer(rows, "nc1_ratio")["mean"]
    return collapse_layer(ratios, t.thresholds.collapse_eps) if len(ratios) else math.nan


def _no_collapse(t: Tables) -> pd.DataFrame:
    """The runs without intermediate collapse (ℓ* missing or the last layer), not ETF-fixed,
    in one pass over the table (a sweep has hundreds of runs). Computed here, not read from the
    derived collapse_layer rows: those count the logits."""
    runs = query.runs(t, selected=None)
    runs = runs[query.etf_layers(runs) == 0]
    rows = last_epoch(query.layer_rows(t.metrics, runs["run"], logits=False))
    ratios = rows[rows["metric"] == "nc1_ratio"]
    lstar = pd.Series({run: collapse_layer(part.set_index("layer_index")["value"],
                                           t.thresholds.collapse_eps)
                       for run, part in ratios.groupby("run")}, dtype=float)
    flat = lstar.isna() | (lstar >= ratios.groupby("run")["layer_index"].max())
    return runs[runs["run"].map(flat).fillna(False).astype(bool)]


def _etf_experiments(t: Tables) -> list[tuple[query.Model, pd.DataFrame, float, float]]:
    """``[(model, its selected runs with their etf_layers as _k, ℓ* of its free model
    (etf_layers = 0), k* = L − ℓ* + 1: how many top linear layers read collapsed layers)]``
    per ETF experiment (NaN without a free model)."""
    chosen = query.runs(t)
    chosen = chosen[chosen["run"].isin([run for run in chosen["run"]
                                        if ETF_AXIS in query.compared_axes(t, [run])])]
    out = []
    for model in _models(t, chosen):
        rows = chosen[chosen["run"].isin(model.runs)].assign(_k=query.etf_layers)
        free = list(rows.loc[rows["_k"] == 0, "run"])
        lstar = _lstar(t, free)
        last = query.layer_rows(t.metrics, free, logits=False)["layer_index"].max()
        out.append((model, rows, lstar, float(last) - lstar + 1))
    return out


def _spectra(t: Tables, runs: Sequence[str]) -> tuple[pd.DataFrame, int | None, pd.DataFrame]:
    """The runs' weight spectra at the last epoch; C, the number of singular values of the
    classifier (the weight reading the last layer; None without spectra); per layer index
    (seed means) ``top_c``, the share of Σσ the top C singular values carry, ``rank``, how
    many carry :data:`SPECTRUM_SHARE`, and ``n``, how many there are."""
    rows = query.layer_rows(t.spectra, runs, None, logits=False)
    if rows.empty:
        return rows, None, pd.DataFrame(columns=["top_c", "rank", "n"])
    top = rows[rows["layer_index"] == rows["layer_index"].max()]
    classes = int(((top["run"] == top["run"].iloc[0])
                   & (top["epoch"] == top["epoch"].iloc[0])).sum())
    last, out = last_epoch(rows), []
    for (_, index), part in last.sort_values("k").groupby(["run", "layer_index"]):
        share = part["share"].to_numpy() / part["share"].sum()
        out.append({"layer_index": index, "n": len(share), "top_c": float(share[:classes].sum()),
                    "rank": int(np.searchsorted(np.cumsum(share), SPECTRUM_SHARE - 1e-12) + 1)})
    return last, classes, pd.DataFrame(out).groupby("layer_index")[["top_c", "rank", "n"]].mean()


# --- drawing ------------------------------------------------------------------------------------

def _panels(count: int, per_model: int, title: str, panel_height: float = 2.5
            ) -> tuple[Figure, list[list[Axes]]]:
    """A figure with ``per_model`` panels for each of ``count`` models, wrapped into rows of
    at most 4 panels (more where a model has fewer) and at most 4 rows where possible."""
    per_row = min(count, max(1, 3 // per_model))
    while math.ceil(count / per_row) > 4 and (per_row + 1) * per_model <= 4:
        per_row += 1
    rows, cols = math.ceil(count / per_row), per_row * per_model
    fig, grid = query.grid(count * per_model, cols, title, margin=(0.5, 0.7),
                           panel=(3.6 if cols <= 2 else 9.0 / cols, min(panel_height, 10.0 / rows)))
    return fig, [list(grid[i // per_row, (i % per_row) * per_model:(i % per_row + 1) * per_model])
                 for i in range(count)]


def _free_panels(t: Tables, per_model: int, title: str, panel_height: float = 2.5
                 ) -> tuple[Figure, list[list[Axes]], list[query.Model]]:
    """The free models and their :func:`_panels`; a placeholder and none where there are none."""
    models = _models(t, _free(t))
    if not models:
        return placeholder(NO_FREE), [], []
    return (*_panels(len(models), per_model, title, panel_height), models)


def _line(ax: Axes, stats: pd.DataFrame, label: str | None = None, **style) -> None:
    """A seed-mean line against the layer index, with a ± sd band where there are seeds."""
    (line,) = ax.plot(stats.index, stats["mean"], label=label, marker=".", **style)
    if "sd" in stats and stats["sd"].notna().any():
        ax.fill_between(stats.index, stats["mean"] - stats["sd"], stats["mean"] + stats["sd"],
                        color=line.get_color(), alpha=0.2, linewidth=0)


def _layer_axis(ax: Axes, rows: pd.DataFrame, title: str, lstar: float = math.nan) -> None:
    """The collapse layer ℓ* (where there is one), layer names under the x axis (every k-th
    one where there are many) and a title."""
    if not math.isnan(lstar):
        ax.axvline(lstar, color=COLLAPSE_COLOR, linewidth=1.3, label="collapse layer ℓ*")
    ticks = rows.dropna(subset=["layer_index"]).drop_duplicates("layer_index")
    ticks = ticks.sort_values("layer_index")
    step = max(1, math.ceil(len(ticks) / 12))
    shown = ticks.iloc[sorted({*range(0, len(ticks), step), len(ticks) - 1})]
    ax.set_xticks(shown["layer_index"], shown["layer"], rotation=90, fontsize="x-small")
    ax.set_xlabel("")
    ax.set_title(title, fontsize="small")


def _epsilon(ax: Axes, t: Tables) -> None:
    ax.axhline(t.thresholds.collapse_eps, color="crimson", linewidth=1,
               label=f"ε = {t.thresholds.collapse_eps:g}")
    ax.set_ylim(0, 1.02)


# --- the figures --------------------------------------------------------------------------------

def fig2_traces(t: Tables) -> Figure:
    """Figs. 2 and 9 (NC1, feature variability suppression): Tr Σ_W (dotted), Tr Σ_B (dashed)
    and Tr Σ_T (solid) per layer at the last epoch, and the first two normalised by Tr Σ_T
    with the threshold ε and the collapse layer ℓ* (green)."""
    fig, axes, models = _free_panels(t, 2, "Feature variability suppression (NC1), train "
                                           "split, last epoch (Rangamani et al. Figs. 2, 9)")
    traces = {"tr_sigma_w": ("Tr Σ_W", ":"), "tr_sigma_b": ("Tr Σ_B", "--"),
              "tr_sigma_t": ("Tr Σ_T", "-")}
    for (raw, norm), model in zip(axes, models, strict=True):
        rows = last_epoch(model.rows(t.metrics, logits=False))
        total = query.by_layer(rows, "tr_sigma_t")["mean"]
        for metric, (name, style) in traces.items():
            stats = query.by_layer(rows, metric)
            _line(raw, stats, name, color="k", linestyle=style)
            if metric != "tr_sigma_t":
                _line(norm, pd.DataFrame({"mean": stats["mean"] / total}), f"{name} / Tr Σ_T",
                      color="k", linestyle=style)
        raw.set_yscale("log")
        _epsilon(norm, t)
        lstar = _lstar(t, model.runs)
        for ax, what in ((raw, "traces"), (norm, "normalised by Tr Σ_T")):
            _layer_axis(ax, rows, f"{model.label}: {what}", lstar)
    query.legend_below(fig, fig.axes)
    return fig


def fig3_nc2(t: Tables) -> Figure:
    """Figs. 3 and 10 (NC2): equinorm (std/mean of the centred class-mean norms) and
    equiangularity (std/|mean| of their pairwise cosines, the paper's normalisation) per layer,
    a line per checkpoint epoch."""
    fig, axes, models = _free_panels(t, 2, "Class means approach a simplex ETF (NC2), train "
                                           "split (Rangamani et al. Figs. 3, 10)")
    metrics = {"nc2_equinorm": "equinorm: std/mean of ‖μ_c − μ_G‖",
               "nc2_equiangle_ratio": "equiangularity: std/|mean| of cosines"}
    for pair, model in zip(axes, models, strict=True):
        rows = model.rows(t.metrics, logits=False)
        epochs = sorted(rows["epoch"].unique())
        colors = {e: colormaps["viridis"](0.9 * e / (max(epochs) or 1)) for e in epochs}
        lstar = _lstar(t, model.runs)
        for ax, (metric, what) in zip(pair, metrics.items(), strict=True):
            for epoch, part in rows.groupby("epoch"):
                _line(ax, query.by_layer(part, metric), f"epoch {epoch}", color=colors[epoch])
            ax.set_yscale("log")
            _layer_axis(ax, rows, f"{model.label}: {what}", lstar)
        pair[-1].legend(fontsize="x-small", loc="best")
    return fig


def fig4_pabs(t: Tables) -> Figure:
    """Figs. 4 and 11 (NC3): mean cosine of the principal angles between the centred class
    means and the top-C input space of the weight that reads each layer, at initialisation
    and at the last epoch."""
    fig, axes, models = _free_panels(t, 1, "Feature–weight alignment (NC3, PABS) "
                                           "(Rangamani et al. Figs. 4, 11)", panel_height=3.2)
    for (ax,), model in zip(axes, models, strict=True):
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
    fig, axes, models = _free_panels(t, 1, "NCC accuracy per layer vs the network's "
                                           "(Rangamani et al. Figs. 5, 12)", panel_height=3.2)
    for (ax,), model in zip(axes, models, strict=True):
        rows = last_epoch(model.rows(t.metrics, None, logits=False))
        for split, color in (("train", "tab:blue"), ("test", "tab:orange")):
            _line(ax, query.by_layer(rows[rows["split"] == split], "ncc_accuracy"),
                  f"NCC, {split}", color=color)
            ax.axhline(model.final(t, f"final_{split}_acc"), color=color, linestyle="--",
                       linewidth=1, label=f"network, {split}")
        _layer_axis(ax, rows, f"{model.label}: accuracy", _lstar(t, model.runs))
    query.legend_below(fig, fig.axes)
    return fig


def fig6_ranks(t: Tables) -> Figure:
    """Figs. 6 and 13–15: the normalised singular values σ_k/σ_1 of the weight that reads
    each layer (top row of the paper's figure), and two rank estimates per layer: the
    number of singular values carrying 99 % of Σσ of that weight, and the stable rank of the
    within-class-centred features (bottom row)."""
    fig, axes, models = _free_panels(t, 2, "Ranks of weights and within-class features, last "
                                           "epoch (Rangamani et al. Figs. 6, 13–15)")
    cmap = colormaps["viridis"]
    for (spec_ax, rank_ax), model in zip(axes, models, strict=True):
        spectra, classes, stats = _spectra(t, model.runs)
        classes = classes or 1
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
        spec_ax.set_title(f"{model.label}: weight spectra", fontsize="small")
        if len(stats):
            _line(rank_ax, pd.DataFrame({"mean": stats["rank"]}),
                  f"weight: σ's carrying {SPECTRUM_SHARE:.0%} of Σσ", color="tab:red")
        rows = last_epoch(model.rows(t.metrics, logits=False))
        _line(rank_ax, query.by_layer(rows, "stable_rank"), "features: within-class stable rank",
              color="tab:blue")
        rank_ax.axhline(classes, color="k", linestyle=":", linewidth=1)
        rank_ax.set_yscale("log")
        _layer_axis(rank_ax, rows, f"{model.label}: rank estimates", _lstar(t, model.runs))
    query.legend_below(fig, fig.axes)
    return fig


def fig7_etf(t: Tables) -> Figure:
    """Fig. 7 (§5.3): final accuracy against the number of top linear layers fixed to simplex
    ETFs, with the number of weights that read collapsed layers of the free model
    (etf_layers = 0) marked green."""
    experiments = _etf_experiments(t)
    if not experiments:
        return placeholder(NO_ETF)
    fig, axes = _panels(len(experiments), 1, "Fixing the top layers to simplex ETFs "
                                             "(Rangamani et al. Fig. 7)", panel_height=2.8)
    for (ax,), (model, rows, _, kstar) in zip(axes, experiments, strict=True):
        for split, style, color in (("test", "-", "tab:blue"), ("train", "--", "tab:grey")):
            acc = rows.groupby("_k")[f"final_{split}_acc"].agg(["mean", "std"])
            _line(ax, acc.rename(columns={"std": "sd"}), f"final {split} accuracy",
                  color=color, linestyle=style)
        if not math.isnan(kstar):
            ax.axvline(kstar, color=COLLAPSE_COLOR, linewidth=1.3,
                       label="weights reading collapsed layers of the free model")
        ax.set_xlabel("top linear layers fixed to ETFs (classifier included)", fontsize="small")
        ax.set_ylabel("accuracy", fontsize="small")
        ax.set_title(f"{model.label}: accuracy", fontsize="small")
    query.legend_below(fig, fig.axes)
    return fig


def fig8_no_collapse(t: Tables) -> Figure:
    """Fig. 8 (§5.4, App. B): runs without intermediate collapse: NC1 ratio and NCC accuracy
    per layer at the last epoch."""
    runs = _no_collapse(t)
    if runs.empty:
        return placeholder("every run collapses in an intermediate layer: no solution "
                           "without intermediate NC to show (Fig. 8)")
    models = _points(t, runs)
    more = len(models) - MAX_NO_COLLAPSE
    models = models[:MAX_NO_COLLAPSE]
    hidden = f", {more} more not shown" if more > 0 else ""
    fig, axes = _panels(len(models), 2, "Solutions without intermediate collapse "
                        f"(Rangamani et al. Fig. 8){hidden}")
    for (ratio_ax, ncc_ax), model in zip(axes, models, strict=True):
        rows = last_epoch(model.rows(t.metrics, None, logits=False))
        _line(ratio_ax, query.by_layer(rows[rows["split"] == "train"], "nc1_ratio"),
              "Tr Σ_W / Tr Σ_T", color="k", linestyle=":")
        _epsilon(ratio_ax, t)
        for split, color in (("train", "tab:blue"), ("test", "tab:orange")):
            _line(ncc_ax, query.by_layer(rows[rows["split"] == split], "ncc_accuracy"),
                  f"NCC, {split}", color=color)
        ncc_ax.set_ylim(0, 1.02)
        _layer_axis(ratio_ax, rows, f"{model.label}: NC1 ratio")
        _layer_axis(ncc_ax, rows, f"{model.label}: NCC accuracy")
    query.legend_below(fig, fig.axes)
    return fig


FIGURES: dict[str, Callable[[Tables], Figure]] = {
    f.__name__: f for f in (fig2_traces, fig3_nc2, fig4_pabs, fig5_ncc, fig6_ranks, fig7_etf,
                            fig8_no_collapse)}


# --- the claims ---------------------------------------------------------------------------------

def _name(rows: pd.DataFrame, index: float) -> str:
    names = rows.drop_duplicates("layer_index").set_index("layer_index")["layer"]
    return f"{names.get(index, '?')} (index {int(index)})"


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


def _model_claims(t: Tables, model: query.Model) -> list[dict]:
    """The claims of §4–5.2 for one free model, at its last epoch, train split."""
    texts = _texts(t.thresholds.collapse_eps)

    def claim(key: str, measured: str, holds: bool | None) -> dict:
        return query.claim(f"{texts[key][0]} [{model.label}]", texts[key][1], measured, holds)

    rows = last_epoch(model.rows(t.metrics, logits=False))
    ratios = query.by_layer(rows, "nc1_ratio")["mean"]
    if ratios.empty:
        return [claim(key, "no measurements of this model", None) for key in texts]
    lstar = collapse_layer(ratios, t.thresholds.collapse_eps)  # _lstar of the rows at hand
    collapsed = not math.isnan(lstar)
    out = [claim("nc1", *_nc1(rows, ratios, lstar, t.thresholds.collapse_eps))]
    # NCC accuracy of the collapsed layers against the network's own.
    ncc = query.by_layer(rows, "ncc_accuracy")["mean"]
    network = model.final(t, "final_train_acc")
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
        return out + [claim(key, "no collapsed layers", None) for key in ("pabs", "rank")]
    return out + [claim("pabs", *_pabs(t, model.runs, rows, lstar)),
                  claim("rank", *_low_rank(t, model.runs, lstar))]


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
        values = query.by_layer(rows, metric)["mean"].reindex(hidden).dropna()
        if values.empty:
            continue
        at = values.idxmin()
        parts.append(f"{what} smallest at {_name(rows, at)} ({values.min():.3g})")
        best.append(at in deep)
    if not parts:
        return "no NC2 measurements", None
    return ("; ".join(parts) + f"; last third: indices {int(deep[0])}–{int(deep[-1])}",
            all(best))


def _pabs(t: Tables, runs: Sequence[str], rows: pd.DataFrame, lstar: float
          ) -> tuple[str, bool | None]:
    """Mean PABS over the collapsed layers, last epoch against the first (initialisation)."""
    first = query.first_epoch(query.layer_rows(t.metrics, runs, logits=False))
    now = query.by_layer(rows, "nc3_pabs")["mean"].loc[lstar:].dropna()
    init = query.by_layer(first, "nc3_pabs")["mean"].reindex(now.index).dropna()
    now = now.reindex(init.index)
    if now.empty:
        return "no PABS in the collapsed layers (or no epoch-0 checkpoint)", None
    gain = float((now - init).mean())
    return (f"collapsed layers: mean {now.mean():.3f} vs {init.mean():.3f} at initialisation "
            f"(gain {gain:.3f})", gain >= PABS_GAIN)


def _low_rank(t: Tables, runs: Sequence[str], lstar: float) -> tuple[str, bool | None]:
    """The share of Σσ in the top C singular values of the weights reading collapsed layers
    (the classifier, with only C, left out)."""
    _, classes, stats = _spectra(t, runs)
    if classes is None:
        return "no spectra", None
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
    keep = (f"fixing the top layers that read collapsed layers to simplex ETFs keeps the "
            f"test accuracy (within {ETF_TOL:g} of the free model)")
    hurt = (f"fixing layers that read non-collapsed layers to ETFs lowers the test "
            f"accuracy (by more than {ETF_TOL:g})")
    where = "Sec. 5.3; Fig. 7"
    experiments = _etf_experiments(t)
    if not experiments:
        return [query.claim(f"{c} [no ETF experiment]", where,
                            "the config has no etf_layers axis", None) for c in (keep, hurt)]
    out = []
    for model, rows, lstar, kstar in experiments:
        acc = rows.groupby("_k")["final_test_acc"].mean()
        if 0 not in acc.index or math.isnan(kstar):
            why = ("no free run (etf_layers = 0)" if 0 not in acc.index else
                   f"the free model (test {acc.loc[0]:.3f}) has no collapsed layer")
            out += [query.claim(f"{c} [{model.label}]", where, why, None) for c in (keep, hurt)]
            continue
        base, fixed = float(acc.loc[0]), acc.drop(index=0)
        head = (f"free model {base:.3f}, ℓ* = {int(lstar)}: "
                f"the top k* = {int(kstar)} linear layers read collapsed layers; ")
        for text, part, test in ((keep, fixed[fixed.index <= kstar], lambda d: d >= -ETF_TOL),
                                 (hurt, fixed[fixed.index > kstar], lambda d: d < -ETF_TOL)):
            values = ", ".join(f"k={int(k)}: {v:.3f}" for k, v in part.items())
            out.append(query.claim(f"{text} [{model.label}]", where,
                                   head + (values or "no etf_layers value on this side of k*"),
                                   None if part.empty else bool(test(part - base).all())))
    return out


def claims(t: Tables) -> pd.DataFrame:
    """Each claim of §4–5.3 per free model (and per ETF experiment), checked against the
    measured numbers at the last epoch, train split unless said."""
    return claims_frame([row for model in _models(t, _free(t))
                         for row in _model_claims(t, model)] + _etf_claims(t))


TABLES: dict[str, Callable[[Tables], pd.DataFrame]] = {"claims": claims}
