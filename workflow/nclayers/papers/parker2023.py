"""Parker, Onal, Stengel & Intrater (2023), "Neural collapse in the intermediate hidden layers
of classification neural networks": Figs. 1-12 and the paper's claims, from the tidy tables.

The paper measures NC1 ``Tr(Σ_B⁺ Σ_W)/C``, NC2 "equal norms" and "maximal angles", and NC4
(the share of samples where the network disagrees with the layer's nearest class mean) on the
*training* set after every hidden layer (MLP6's fully-connected layers, VGG11's and ResNet18's
convolutions, post-activation; §2.2, App. A) and draws each against the layer (Figs. 1-4 ReLU,
5-8 Tanh, 9-12 LeakyReLU), a panel per architecture × dataset, a curve per checkpoint: "the
blue dotted line [...] at initialization and the red solid line [...] after TPT".

Here a model is the selected, non-diverged runs of one ``activation``, seeds averaged, its
layers the input (layer 0) and the hidden ones (all tapped but :data:`NOT_HIDDEN`). "After TPT"
is, as in the paper, the end of training: the last checkpoint, where it is at or after every
seed's ``interpolation_epoch`` (``aggregate``'s); ``after="first"`` gives the first checkpoint
there instead. A model that never gets there has no red curve and no part in the claims, which
read the post-TPT curve and hold, per activation, in more than half of the models (the paper's
"most"); the "middle" hidden layer is layer ⌈L/2⌉ of L, the shallower half up to it:

1. NC1 after TPT is below NC1 at initialisation in every hidden layer (§3, Figs. 1/5/9).
2. NC1 falls with depth, then plateaus (Conclusion (1): "almost all of the reduction [...] in
   the shallower layers"): the last hidden layer's NC1 is below the input's, and ≥
   :data:`SHALLOW_SHARE` of that fall *in decades* (log scale, as the figures) happens by the
   middle hidden layer.
3. and 4. NC2 equinorm and max-angle keep falling to the last hidden layer (§3; Conclusion (2):
   "increased consistently [...] through the entire network"): the last hidden layer holds the
   strict minimum of the hidden layers, and ≥ :data:`DEEP_SHARE` of the fall from the input
   (linear scale, as the figures) happens after the middle hidden layer (no plateau).
5. NC4 plateaus (:func:`plateau_layer`) at a deeper layer than NC1 (§3).
6. NC4 reaches zero (≤ :data:`NC4_ZERO`) by the middle hidden layer on MNIST and SVHN, but on
   CIFAR100 only after it (§3, after Fig. 4; Conclusion (3)); both sides in most of their
   models; a side that fails decides it, one missing (and none failing) leaves it untold.
7. The activations behave alike (App. B, C): claims 1-6 have one outcome over the activations.
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

SHALLOW_SHARE = 0.75  # claim 2: share of the log-scale fall reached by the middle layer
DEEP_SHARE = 1 - SHALLOW_SHARE  # claims 3-4: share of the fall after it (not NC1's plateau)
NC4_ZERO = 0.01  # claim 6: NC4 "reaches zero": at most 1 % of the samples mismatched
SIMPLE, HARD = ("mnist", "svhn"), ("cifar100",)  # claim 6: the paper's datasets of each kind
AFTER_TPT = "last"  # the red curve: the "last" checkpoint after TPT (the paper's) or "first"
PLATEAU_TOL = 0.10  # claim 5: within 10 % of the curve's range of the last value
LISTED = 3  # models named in a claim's measured text (all of them up to this many)

INIT_STYLE = {"color": "tab:blue", "linestyle": ":", "linewidth": 1.8}
TPT_STYLE = {"color": "tab:red", "linestyle": "-", "linewidth": 1.8}


def figure_number(metric: str, activation: str) -> int:
    """The paper's figure number of ``{metric}_{activation}``."""
    return WHERE[activation][1] + list(METRICS).index(metric)


# --- the models of one activation ---------------------------------------------------------

def activation_models(t: Tables, activation: str, after: str = AFTER_TPT
                      ) -> list[tuple[query.Model, pd.DataFrame, int | None]]:
    """The models of ``activation``, each with its rows of the input and hidden layers (train
    split, every seed) and its checkpoint after TPT (None: none is), the ``after``: "last" or
    "first" one, in the paper's order (architectures by depth, datasets as in
    :data:`DATASET_ORDER`); none without the axis."""
    if after not in ("last", "first"):
        raise ValueError(f"after must be 'last' or 'first', not {after!r}")
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
        past = rows.loc[rows["epoch"] >= epochs.max(), "epoch"]
        found.append((model, rows, int(past.max() if after == "last" else past.min())
                      if epochs.notna().all() and len(past) else None))
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

def paper_figure(t: Tables, metric: str, activation: str, after: str = AFTER_TPT) -> Figure:
    """Parker et al.'s figure of ``metric`` (of METRICS) for ``activation``: one panel per model,
    one curve per checkpoint, the seeds' mean in a ± sd band (the paper's blue and red ones as
    there, the red one the ``after`` checkpoint after TPT); a placeholder if none."""
    column, title = METRICS[metric]
    number = figure_number(metric, activation)
    shown = [f for f in activation_models(t, activation, after)
             if (f[1]["metric"] == column).any()]
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
            stats = query.by_layer(frame[frame["epoch"] == epoch], column)  # as curve()'s
            style, z = ((INIT_STYLE, 3) if epoch == 0 else (TPT_STYLE, 4) if epoch == tpt else
                        ({"color": cmap(norm(epoch)), "linestyle": "-", "linewidth": 1.0}, 2))
            query.mean_line(ax, stats["mean"], stats["sd"], marker="o", markersize=2.2,
                            zorder=z, **style)
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
               Line2D([], [], **TPT_STYLE, label=f"after TPT ({after} checkpoint)"),
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


def middle_layer(curve: pd.Series) -> int | None:
    """The middle hidden layer, ⌈L/2⌉ of L: the deepest of the shallower half; None if L < 2."""
    layers = list(hidden(curve).index)
    return int(layers[math.ceil(len(layers) / 2) - 1]) if len(layers) >= 2 else None


def below_everywhere(init: pd.Series, after: pd.Series) -> tuple[bool, int, int]:
    """Whether ``after`` < ``init`` in every hidden layer: (holds, layers below, compared)."""
    a, b = hidden(init).align(hidden(after), join="inner")
    below = int((b < a).sum())
    return below == len(a) and len(a) > 0, below, len(a)


def fall_share_by_middle(curve: pd.Series, log: bool = False) -> float:
    """The share of the fall from the input to the last hidden layer that has happened by the
    middle hidden layer, in decades where ``log`` (as the NC1 figures show it); NaN if the
    curve does not fall (or, on the log scale, is not positive there)."""
    middle = middle_layer(curve)
    if middle is None:
        return math.nan
    ends = curve.loc[[curve.index[0], middle, curve.index[-1]]].to_numpy(dtype=float)
    if log:
        if not (ends > 0).all():
            return math.nan
        ends = np.log10(ends)
    fall = ends[0] - ends[2]
    return float((ends[0] - ends[1]) / fall) if fall > 0 else math.nan


def keeps_falling(curve: pd.Series, share: float = DEEP_SHARE) -> tuple[bool, float, bool]:
    """Whether the curve still falls at its end: the last hidden layer holds the strict minimum
    of the hidden layers and ≥ ``share`` of the (linear) fall from the input comes after the
    middle hidden layer: (holds, that share (NaN: no fall), last strictly lowest)."""
    values = hidden(curve)
    lowest = bool((values.iloc[-1] < values.iloc[:-1]).all())
    after = 1 - fall_share_by_middle(curve)
    return lowest and after >= share, after, lowest


def zero_layer(curve: pd.Series, tol: float = NC4_ZERO) -> int | None:
    """The first hidden layer whose value is at most ``tol`` (NC4 "reaches zero"); None: none."""
    reached = hidden(curve)[hidden(curve) <= tol]
    return int(reached.index[0]) if len(reached) else None


def plateau_layer(curve: pd.Series, tol: float = PLATEAU_TOL) -> int:
    """The first layer index from which on every value (input and hidden layers) stays within
    ``tol`` × the curve's range of the last hidden layer's value."""
    values = curve.to_numpy(dtype=float)
    near = np.abs(values - values[-1]) <= tol * (np.nanmax(values) - np.nanmin(values))
    far = np.flatnonzero(~near[:-1])  # the last value is the plateau's, whatever it is
    return int(curve.index[far[-1] + 1 if len(far) else 0])


# --- claims: each reads one model's curves at its checkpoint after TPT ----------------------

def _verdict(key: str, dataset: str, frame: pd.DataFrame, tpt: int, metric: str
             ) -> query.Verdict | None:
    """The numbers and outcome of claim ``key`` (of :data:`CLAIMS`) on a model's rows; None
    where the claim says nothing of the model's dataset."""
    if key == "NC4 zero" and dataset not in SIMPLE + HARD:
        return None
    after = curve(frame, metric, tpt)
    if key == "NC1<init":
        init = curve(frame, metric, 0)
        ok, below, n = below_everywhere(init, after)
        ratio = float((hidden(after) / hidden(init)).max())
        return f"{below}/{n} layers, max ratio {ratio:.2g}", ok
    if key == "NC1 plateau":
        share = fall_share_by_middle(after, log=True)
        return "no fall" if math.isnan(share) else f"{share:.0%}", share >= SHALLOW_SHARE
    if key == "NC4 later":
        nc1 = curve(frame, "nc1", tpt)
        p1, p4 = plateau_layer(nc1), plateau_layer(after)
        return f"NC1 {p1}, NC4 {p4} of {len(hidden(nc1))}", p4 > p1
    if key == "NC4 zero":
        zero, middle = zero_layer(after), middle_layer(after)
        early = zero is not None and middle is not None and zero <= middle
        return (f"from layer {query.layer_text(zero)}, middle {middle}",
                early if dataset in SIMPLE else zero is not None and not early)
    ok, share, lowest = keeps_falling(after)  # equinorm, max-angle
    return (f"{'no fall' if math.isnan(share) else f'{share:.0%}'} after the middle, last "
            f"{'' if lowest else 'not '}lowest"), ok


# (key, claim, where: {n} the figure of the claim's metric, {n0} the activation's first, metric
# (of METRICS), the paper's value or threshold (and its source where "where" does not give it)).
CLAIMS = (
    ("NC1<init", "NC1 after TPT below its initial value in every hidden layer "
     "(layers below; largest after/initial)", "{section}, Fig. {n}", "nc1",
     "after TPT below initialisation in the hidden layers (red under blue), most models"),
    ("NC1 plateau", "NC1 falls with depth, then plateaus: "
     f"≥ {SHALLOW_SHARE:.0%} of the fall in decades (log scale) from the input to the last "
     "layer happens by the middle layer (share)", "{section}, Fig. {n}; §4 (1)", "nc1",
     "'almost all of the reduction in intra-class variance' in the shallower layers (§4 (1)), "
     "then a plateau (§3), most models"),
    ("equinorm", "NC2 equal norms keep falling to the last layer: lowest there, and "
     f"≥ {DEEP_SHARE:.0%} of the fall from the input after the middle layer (share after "
     "it)", "{section}, Fig. {n}", "equinorm",
     "'continues to strengthen even in the deeper layers [...] rather than plateauing', "
     "less than the angles, most models (§3)"),
    ("max-angle", "NC2 maximal angles keep falling to the last layer: lowest there, and "
     f"≥ {DEEP_SHARE:.0%} of the fall from the input after the middle layer (share after "
     "it)", "{section}, Fig. {n}; §4 (2)", "maxangle",
     "'increased consistently as samples propagate through the entire network' (§4 (2)), "
     "most models (§3)"),
    ("NC4 later", "NC4 plateaus at a deeper layer than NC1 (plateau layers; plateau: within "
     f"{PLATEAU_TOL:.0%} of the range of the last value)", "{section}, Fig. {n} vs {n0}",
     "nc4", "'the plateauing occurs later than NC1', most experiments (§3)"),
    ("NC4 zero", f"NC4 reaches zero (≤ {NC4_ZERO:.0%}) by the middle layer on MNIST and SVHN, "
     "on CIFAR100 only after it (first layer at zero; middle layer)",
     "{section}, Fig. {n}; §4 (3)", "nc4",
     "MNIST, SVHN: 'reaches zero' between shallower layers and the output; CIFAR100: 'only "
     "[...] in the final layers' (§3, after Fig. 4)"),
)
ALIKE_PAPER = "Figs. 5-12 (App. B, C) as Figs. 1-4 (§3), without a claim of their own"


def _summary(found: list[tuple], key: str, metric: str) -> query.Verdict:
    """Holds when the criterion holds in more than half of the models it can be read on (for
    "NC4 zero": of the simple datasets' models and of CIFAR100's, each; None without both);
    the text names every model's numbers (only the failing ones' beyond LISTED models)."""
    name = {m: m.label.replace(" / ", "/") for m, _, _ in found}  # as claims name it: mnist/mlp6
    told = []  # (name, dataset, numbers, holds) where the criterion can be read
    for model, frame, tpt in found:
        if tpt is not None:
            with contextlib.suppress(LookupError):  # a curve not measured at a checkpoint
                verdict = _verdict(key, model.dataset, frame, tpt, METRICS[metric][0])
                if verdict is not None:
                    told.append((name[model], model.dataset, *verdict))
    failing = [v for v in told if not v[3]]
    many = len(told) > LISTED
    named = "; ".join(f"{n}: {x}" for n, _, x, _ in (failing[:LISTED] if many else told))
    text = f"{len(told) - len(failing)}/{len(told)}"
    if named:
        text += f" ({'failing: ' if many else ''}{named}{' …' if len(failing) > LISTED else ''})"
    no_tpt = ", ".join(name[m] for m, _, tpt in found if tpt is None)
    text += f"; left out, no TPT: {no_tpt}" if no_tpt else ""
    if key != "NC4 zero":
        return text, query.majority([bool(v[3]) for v in told])
    # both sides must hold: one that fails decides the claim even where the other is missing
    sides = [[bool(v[3]) for v in told if v[1] in kind] for kind in (SIMPLE, HARD)]
    held = [bool(query.majority(side)) if side else None for side in sides]
    missing = [kind for kind, side in zip(("MNIST or SVHN", "CIFAR100"), sides, strict=True)
               if not side]
    if missing:
        missing_text = f"no {' and no '.join(missing)} model after TPT"
        text = f"{text}; {missing_text}" if told else text.replace("0/0", missing_text)
    return text, False if False in held else None if missing else True


def claims(t: Tables) -> pd.DataFrame:
    """The paper's claims checked against the measured numbers (see the module docstring):
    one row per claim × activation, then the "activations alike" claim; each measured text
    ends with the paper's value or threshold."""
    by_activation = {a: activation_models(t, a) for a in ACTIVATIONS}
    outcomes: dict[str, dict[str, bool | None]] = {key: {} for key, *_ in CLAIMS}
    rows = []
    for key, text, where, metric, paper in CLAIMS:
        for activation, found in by_activation.items():
            measured, holds = (_summary(found, key, metric) if found else
                               (f"no selected run with activation {activation}", None))
            outcomes[key][activation] = holds
            rows.append(query.claim(f"{ACTIVATIONS[activation]}: {text}", where.format(
                section=WHERE[activation][0], n=figure_number(metric, activation),
                n0=WHERE[activation][1]), f"{measured} — paper: {paper}", holds))
    # The activations behave alike: each claim has one outcome over the activations it could
    # be told for (told for none where no claim could be told for two).
    same = [len({v for v in o.values() if v is not None}) == 1 for o in outcomes.values()
            if sum(v is not None for v in o.values()) >= 2]
    marks = ", ".join(f"{key} " + "/".join("-" if v is None else "T" if v else "F"
                                           for v in o.values()) for key, o in outcomes.items())
    rows.append(query.claim(
        "ReLU, Tanh and LeakyReLU networks behave alike: each claim above has the same outcome "
        "for every activation", "§3; App. B, C", f"{sum(same)}/{len(same)} claims alike; "
        f"{marks} ({'/'.join(ACTIVATIONS.values())}) — paper: {ALIKE_PAPER}",
        query.all_told(same)))
    return claims_frame(rows)


TABLES: dict[str, Callable[[Tables], pd.DataFrame]] = {"claims": claims}
