"""Parker, Onal, Stengel & Intrater (2023), "Neural collapse in the intermediate hidden layers
of classification neural networks": Figs. 1-12 and the paper's claims, from the tidy tables.

The paper measures NC1 ``Tr(Σ_B⁺ Σ_W)/C``, NC2 "equal norms" and "maximal angles", and NC4
(the share of samples where the network disagrees with the layer's nearest class mean) on the
*training* set after every hidden layer (MLP6's fully-connected layers, VGG11's and ResNet18's
convolutions, post-activation; §2.2, App. A) and draws each against the layer (Figs. 1-4 ReLU,
5-8 Tanh, 9-12 LeakyReLU), a panel per architecture × dataset, a curve per checkpoint: "the
blue dotted line [...] at initialization and the red solid line [...] after TPT".

Here a model is the selected, non-diverged runs of one ``activation``, seeds averaged, its
layers the input (layer 0) and the hidden ones (all tapped but :data:`NOT_HIDDEN`); "after TPT"
is the first checkpoint at or after every seed's ``interpolation_epoch`` (``aggregate``'s). A
model that never gets there has no red curve and no part in the claims, which read the post-TPT
curve and hold, per activation, in more than half of the models (the paper's "most"):

1. NC1 after TPT is below NC1 at initialisation in every hidden layer (§3, Figs. 1/5/9).
2. NC1 falls with depth, then plateaus (Conclusion (1)): the last hidden layer's NC1 is below
   the input's, and ≥ :data:`SHALLOW_SHARE` of that fall happens by the middle hidden layer.
3. and 4. NC2 equinorm and max-angle keep falling to the last hidden layer (Conclusion (2)):
   there at most ``1 +`` :data:`NEAR_MIN` times their smallest hidden-layer value.
5. NC4 plateaus (:func:`plateau_layer`) at a deeper layer than NC1 (§3).
6. The activations behave alike (App. B, C): claims 1-5 have one outcome over the activations.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from nclayers import vocabulary
from nclayers.papers import Tables, claims_frame, query
from nclayers.plots import placeholder

(AXIS,) = vocabulary.PAPER_AXES["parker2023"]  # "activation": the axis every output reads
ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "leaky_relu": "LeakyReLU"}
# figure name prefix → (metric of metrics.csv, the paper's title of the quantity)
METRICS = {
    "nc1": ("nc1", "Intra-class variance collapse (NC1)"),
    "equinorm": ("nc2_equinorm", "Equal norms (NC2)"),
    "maxangle": ("nc2_maxangle", "Maximal angles (NC2)"),
    "nc4": ("nc4_mismatch", "Simplification to NCC (NC4)"),
}
# Where the paper shows each activation: its section, its first figure (of METRICS' four)
WHERE = {"relu": ("§3", 1), "tanh": ("App. B", 5), "leaky_relu": ("App. C", 9)}
DATASET_ORDER = ("mnist", "fashion_mnist", "svhn", "cifar10", "cifar100")  # the paper's
# Tapped layers that are no hidden layer (convolution): the pooled features, ResNet18's logits
NOT_HIDDEN = ("avgpool", query.LOGITS)

SHALLOW_SHARE = 0.75  # claim 2: share of the fall reached by the middle hidden layer
NEAR_MIN = 0.10  # claims 3-4: the last layer within 10 % of the smallest value
PLATEAU_TOL = 0.10  # claim 5: within 10 % of the curve's range of the last value
LISTED = 3  # models named in a claim's measured text (all of them up to this many)

INIT_STYLE = {"color": "tab:blue", "linestyle": ":", "linewidth": 1.8}
TPT_STYLE = {"color": "tab:red", "linestyle": "-", "linewidth": 1.8}


def figure_number(metric: str, activation: str) -> int:
    """The paper's figure number of ``{metric}_{activation}``."""
    return WHERE[activation][1] + list(METRICS).index(metric)


# --- the models of one activation ---------------------------------------------------------

def activation_models(t: Tables, activation: str
                      ) -> list[tuple[query.Model, pd.DataFrame, int | None]]:
    """The models of ``activation``, each with its rows of the input and hidden layers (train
    split, every seed) and first checkpoint after TPT (None: never), in the paper's order
    (architectures by depth, datasets as in :data:`DATASET_ORDER`); none without the axis."""
    runs = query.runs(t)
    if AXIS not in runs or t.metrics.empty:
        return []
    runs = runs[runs[AXIS] == activation]
    # the other compared axes, and the group, where they tell models of a dataset × arch apart
    by = ["dataset", "arch", *(a for a in query.compared_axes(t, runs["run"])
                               if a != AXIS and a in runs and runs[a].nunique() > 1)]
    if (runs.groupby(by, dropna=False)["group"].nunique() > 1).any():
        by.append("group")
    interpolated = query.derived(t, "interpolation_epoch")
    found = []
    for model in query.models(runs, by, label=lambda key: vocabulary.model_label(
            key["dataset"], key["arch"], *(str(v) if k == "group" else
                                           f"{k}={vocabulary.shown_value(v)}"
                                           for k, v in key.items() if k in by[2:]))):
        rows = model.rows(t.metrics, "train")  # the paper passes "all the training samples"
        rows = rows[~rows["layer"].isin(NOT_HIDDEN)].astype({"layer_index": int})
        epochs = interpolated.reindex(list(model.runs))
        after = rows.loc[rows["epoch"] >= epochs.max(), "epoch"]
        found.append((model, rows, int(after.min()) if epochs.notna().all() and len(after)
                      else None))
    depth = {m.arch: int(c["layer_index"].max()) for m, c, _ in found}
    datasets = [*DATASET_ORDER, *dict.fromkeys(m.dataset for m, _, _ in found)]
    return sorted(found, key=lambda f: (depth[f[0].arch], list(depth).index(f[0].arch),
                                        datasets.index(f[0].dataset)))


def curve(rows: pd.DataFrame, metric: str, epoch: int) -> pd.Series:
    """The seed mean of ``metric`` by layer index (sorted) at ``epoch``; LookupError if none."""
    means = query.by_layer(rows[rows["epoch"] == epoch], metric)["mean"]
    if means.empty:
        raise LookupError(f"no {metric} at epoch {epoch}")
    return means


# --- figures -----------------------------------------------------------------------------

def paper_figure(t: Tables, metric: str, activation: str) -> Figure:
    """Parker et al.'s figure of ``metric`` (of METRICS) for ``activation``: one panel per model,
    one curve per checkpoint (the paper's blue and red ones as there); a placeholder if none."""
    column, title = METRICS[metric]
    number = figure_number(metric, activation)
    shown = [f for f in activation_models(t, activation) if (f[1]["metric"] == column).any()]
    if not shown:
        return placeholder(f"Parker et al. Fig. {number} needs selected runs with activation: "
                           f"{activation} (an activation axis) and {column} measured")
    # Rows: architectures, each one's models packed to the left in the paper's order: where
    # every architecture has every dataset, the paper's grid with a column per dataset.
    archs = [m.arch for m, _, _ in shown]
    places = [(list(dict.fromkeys(archs)).index(a), archs[:i].count(a))
              for i, a in enumerate(archs)]
    rows, cols, used = len(set(archs)), 1 + max(c for _, c in places), set(places)
    fig, axes = query.grid(rows * cols, cols, f"{title} in the {ACTIVATIONS[activation]} "
                           f"classifiers' hidden layers\n(Parker et al. Fig. {number}; train "
                           "split)", panel=(2.0, 2.1), margin=(max(1.6, 6.4 - 2.0 * cols), 1.5))
    cmap = colormaps["viridis"]
    norm = Normalize(0, max(int(c["epoch"].max()) for _, c, _ in shown) or 1)
    for (model, frame, tpt), (r, c) in zip(shown, places, strict=True):
        ax = axes[r, c]
        for epoch in sorted(frame.loc[frame["metric"] == column, "epoch"].unique()):
            line = curve(frame, column, epoch)
            style, z = ((INIT_STYLE, 3) if epoch == 0 else (TPT_STYLE, 4) if epoch == tpt else
                        ({"color": cmap(norm(epoch)), "linestyle": "-", "linewidth": 1.0}, 2))
            ax.plot(line.index, line.to_numpy(), marker="o", markersize=2.2, zorder=z, **style)
        ax.set_yscale("log" if metric == "nc1" else "linear")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        ax.set_title(model.label + ("" if tpt is not None else " (no TPT)"), fontsize="small")
        ax.tick_params(labelsize="x-small")
        if r == rows - 1 or (r + 1, c) not in used:
            ax.set_xlabel("layer (0 = input)", fontsize="small")
        if c == 0:
            ax.set_ylabel(vocabulary.METRIC_LABELS.get(column, column), fontsize="small")
    for (r, c), ax in np.ndenumerate(axes):
        ax.set_visible((r, c) in used)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, label="checkpoint epoch",
                 shrink=min(1.0, 0.4 + 0.2 * rows), aspect=25)
    handles = [Line2D([], [], **INIT_STYLE, label="initialisation"),
               Line2D([], [], **TPT_STYLE, label="first checkpoint after TPT"),
               Line2D([], [], color=cmap(0.6), linewidth=1.0, label="other checkpoints")]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize="small")
    return fig


def _figure_function(metric: str, activation: str) -> Callable[[Tables], Figure]:
    def draw(t: Tables) -> Figure:
        return paper_figure(t, metric, activation)

    draw.__name__, draw.__doc__ = f"{metric}_{activation}", (
        f"Parker et al. Fig. {figure_number(metric, activation)}: {METRICS[metric][1]}, "
        f"{ACTIVATIONS[activation]}.")
    return draw


FIGURES: dict[str, Callable[[Tables], Figure]] = {
    f"{m}_{a}": _figure_function(m, a) for a in ACTIVATIONS for m in METRICS}


# --- criteria on one curve (by layer index, sorted as :func:`curve` gives it; input at 0) ----

def hidden(curve: pd.Series) -> pd.Series:
    """The curve without the input (layer index 0)."""
    return curve[curve.index > 0]


def below_everywhere(init: pd.Series, after: pd.Series) -> tuple[bool, int, int]:
    """Whether ``after`` < ``init`` in every hidden layer: (holds, layers below, compared)."""
    a, b = hidden(init).align(hidden(after), join="inner")
    below = int((b < a).sum())
    return below == len(a) and len(a) > 0, below, len(a)


def fall_share_by_middle(curve: pd.Series) -> float:
    """The share of the fall from the input to the last hidden layer that has happened by the
    middle hidden layer (layer ⌈L/2⌉ of L); NaN if the curve does not fall."""
    layers = list(hidden(curve).index)
    fall = curve.iloc[0] - curve.iloc[-1]
    if len(layers) < 2 or not fall > 0:
        return math.nan
    return float((curve.iloc[0] - curve[layers[math.ceil(len(layers) / 2) - 1]]) / fall)


def last_near_min(curve: pd.Series, tol: float = NEAR_MIN) -> tuple[bool, float]:
    """Whether the last hidden layer's value is at most (1 + tol) × the smallest over the
    hidden layers: (holds, last / smallest)."""
    smallest, last = float(hidden(curve).min()), float(hidden(curve).iloc[-1])
    if smallest <= 0:
        return last <= 0, 1.0 if last <= 0 else math.inf
    return last <= (1 + tol) * smallest, last / smallest


def plateau_layer(curve: pd.Series, tol: float = PLATEAU_TOL) -> int:
    """The first layer index from which on every value (input and hidden layers) stays within
    ``tol`` × the curve's range of the last hidden layer's value."""
    values = curve.to_numpy(dtype=float)
    near = np.abs(values - values[-1]) <= tol * (np.nanmax(values) - np.nanmin(values))
    far = np.flatnonzero(~near[:-1])  # the last value is the plateau's, whatever it is
    return int(curve.index[far[-1] + 1 if len(far) else 0])


# --- claims: each reads one model's curves at its first checkpoint after TPT ---------------

def _verdict(key: str, frame: pd.DataFrame, tpt: int, metric: str) -> query.Verdict:
    """The numbers and outcome of claim ``key`` (of :data:`CLAIMS`) on a model's rows."""
    after = curve(frame, metric, tpt)
    if key == "NC1<init":
        init = curve(frame, metric, 0)
        ok, below, n = below_everywhere(init, after)
        ratio = float((hidden(after) / hidden(init)).max())
        return f"{below}/{n} layers, max ratio {ratio:.2g}", ok
    if key == "NC1 plateau":
        share = fall_share_by_middle(after)
        return "no fall" if math.isnan(share) else f"{share:.0%}", share >= SHALLOW_SHARE
    if key == "NC4 later":
        nc1 = curve(frame, "nc1", tpt)
        p1, p4 = plateau_layer(nc1), plateau_layer(after)
        return f"NC1 {p1}, NC4 {p4} of {len(hidden(nc1))}", p4 > p1
    ok, ratio = last_near_min(after)  # equinorm, max-angle
    return f"last/min {ratio:.2f}", ok


# (key, claim, where: {n} the figure of the claim's metric, {n0} the activation's first, metric
# (of METRICS)). Short texts: the report's table holds 16 rows on a page.
CLAIMS = (
    ("NC1<init", "NC1 after TPT below its initial value in every hidden layer "
     "(layers below; largest after/initial)", "{section}, Fig. {n}", "nc1"),
    ("NC1 plateau", "NC1 falls with depth, then plateaus: "
     f"≥ {SHALLOW_SHARE:.0%} of the fall from the input to the last layer happens by "
     "the middle layer (share)", "{section}, Fig. {n}; §4 (1)", "nc1"),
    ("equinorm", "NC2 equal norms keep falling to the last layer: there within "
     f"{NEAR_MIN:.0%} of the minimum (last/min)", "{section}, Fig. {n}", "equinorm"),
    ("max-angle", "NC2 maximal angles keep falling to the last layer: there within "
     f"{NEAR_MIN:.0%} of the minimum (last/min)", "{section}, Fig. {n}; §4 (2)", "maxangle"),
    ("NC4 later", "NC4 plateaus at a deeper layer than NC1 (plateau layers; plateau: within "
     f"{PLATEAU_TOL:.0%} of the range of the last value)", "{section}, Fig. {n} vs {n0}", "nc4"),
)


def _summary(found: list[tuple], key: str, metric: str) -> query.Verdict:
    """Holds when the criterion holds in more than half of the models it can be read on; the
    text names every model's numbers (only the failing ones' beyond LISTED models)."""
    name = {m: m.label.replace(" / ", "/") for m, _, _ in found}  # as claims name it: mnist/mlp6
    told = []  # (name, numbers, holds) where the criterion can be read
    for model, frame, tpt in found:
        if tpt is not None:
            with contextlib.suppress(LookupError):  # a curve not measured at a checkpoint
                told.append((name[model], *_verdict(key, frame, tpt, METRICS[metric][0])))
    failing = [v for v in told if not v[2]]
    many = len(told) > LISTED
    named = "; ".join(f"{n}: {x}" for n, x, _ in (failing[:LISTED] if many else told))
    text = f"{len(told) - len(failing)}/{len(told)}"
    if named:
        text += f" ({'failing: ' if many else ''}{named}{' …' if len(failing) > LISTED else ''})"
    no_tpt = ", ".join(name[m] for m, _, tpt in found if tpt is None)
    text += f"; left out, no TPT: {no_tpt}" if no_tpt else ""
    return text, query.majority([bool(v[2]) for v in told])


def claims(t: Tables) -> pd.DataFrame:
    """The paper's claims checked against the measured numbers (see the module docstring):
    one row per claim × activation, then the "activations alike" claim."""
    by_activation = {a: activation_models(t, a) for a in ACTIVATIONS}
    outcomes: dict[str, dict[str, bool | None]] = {key: {} for key, *_ in CLAIMS}
    rows = []
    for key, text, where, metric in CLAIMS:
        for activation, found in by_activation.items():
            measured, holds = (_summary(found, key, metric) if found else
                               (f"no selected run with activation {activation}", None))
            outcomes[key][activation] = holds
            rows.append(query.claim(f"{ACTIVATIONS[activation]}: {text}", where.format(
                section=WHERE[activation][0], n=figure_number(metric, activation),
                n0=WHERE[activation][1]), measured, holds))
    # The activations behave alike: each claim has one outcome over the activations it could
    # be told for (told for none where no claim could be told for two).
    same = [len({v for v in o.values() if v is not None}) == 1 for o in outcomes.values()
            if sum(v is not None for v in o.values()) >= 2]
    marks = ", ".join(f"{key} " + "/".join("-" if v is None else "T" if v else "F"
                                           for v in o.values()) for key, o in outcomes.items())
    rows.append(query.claim(
        "ReLU, Tanh and LeakyReLU networks behave alike: each claim above has the same outcome "
        "for every activation", "§3; App. B, C", f"{sum(same)}/{len(same)} claims alike; "
        f"{marks} ({'/'.join(ACTIVATIONS.values())})", query.all_told(same)))
    return claims_frame(rows)


TABLES: dict[str, Callable[[Tables], pd.DataFrame]] = {"claims": claims}
