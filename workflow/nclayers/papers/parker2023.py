"""Parker, Onal, Stengel & Intrater (2023), "Neural collapse in the intermediate hidden layers
of classification neural networks": Figs. 1-12 and the paper's claims, from the tidy tables.

What the paper measures (§2.2, App. A): on the *training* set, after every hidden layer (each
fully-connected layer of MLP6, each convolution of VGG11 and ResNet18, post-activation), NC1
``Tr(Σ_B⁺ Σ_W)/C``, NC2 "equal norms" and "maximal angles", and NC4 (the share of samples where
the network disagrees with the layer's nearest class mean), at several points of training.
Figs. 1-4 (ReLU), 5-8 (Tanh, App. B) and 9-12 (LeakyReLU, App. C) draw each quantity against
the layer, one panel per architecture × dataset, one curve per checkpoint, "the blue dotted
line [...] at initialization and the red solid line [...] after TPT".

Here:

- the runs are the selected runs (``Tables.selected``) with the figure's ``activation`` axis
  value; seeds are averaged;
- the layers are the input (layer 0, the reference the depth claims start from) and the hidden
  layers, i.e. every tapped layer but the pooled features and the logits (:data:`NOT_HIDDEN`:
  VGG11's and ResNet18's ``avgpool`` and ResNet18's ``classifier`` are no convolution);
- "after TPT" is the first checkpoint at or after the run's interpolation epoch, the first
  epoch whose train accuracy reaches ``Tables.thresholds.interpolation`` (every seed of the
  model); a model that never gets there has no red curve and takes no part in the claims that
  read the post-TPT curve.

The claims (:func:`claims`), each per activation, hold when their criterion holds in more than
half of the models (the paper speaks of "most" architectures and datasets):

1. NC1 after TPT is below NC1 at initialisation in every hidden layer (§3, Figs. 1/5/9).
2. NC1 falls with depth, then plateaus (§3, Conclusion (1): "almost all of the reduction in
   intra-class variance [...] occurs in the shallower layers"): the post-TPT NC1 of the last
   hidden layer is below the input's, and at least :data:`SHALLOW_SHARE` of that fall has
   happened by the middle hidden layer (:func:`fall_share_by_middle`).
3. and 4. NC2 equinorm and max-angle keep falling to the last hidden layer (§3, Conclusion
   (2)): after TPT the last hidden layer's value is at most ``1 +`` :data:`NEAR_MIN` times the
   smallest over the hidden layers (:func:`last_near_min`).
5. NC4 plateaus later than NC1 (§3): the plateau layer (:func:`plateau_layer`: the first layer
   from which on the curve stays within :data:`PLATEAU_TOL` of its range of the last hidden
   layer's value) of the post-TPT NC4 curve lies deeper than NC1's.
6. The three activations behave alike (App. B and C: "largely [...] the same characteristics
   as the ReLU experiments"): claims 1-5 have the same outcome for every activation measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from nclayers import vocabulary
from nclayers.derived import interpolation_epoch
from nclayers.papers import Tables, claims_frame
from nclayers.plots import placeholder

SPLIT = "train"  # the paper passes "all the training samples" through the frozen network
ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "leaky_relu": "LeakyReLU"}
# figure name prefix → (metric of metrics.csv, the paper's title of the quantity)
METRICS = {
    "nc1": ("nc1", "Intra-class variance collapse (NC1)"),
    "equinorm": ("nc2_equinorm", "Equal norms (NC2)"),
    "maxangle": ("nc2_maxangle", "Maximal angles (NC2)"),
    "nc4": ("nc4_mismatch", "Simplification to NCC (NC4)"),
}
LOG_Y = {"nc1"}
# Where the paper shows each activation: its section and its first figure (NC1; then equal
# norms, maximal angles, NC4).
WHERE = {"relu": ("§3", 1), "tanh": ("App. B", 5), "leaky_relu": ("App. C", 9)}
DATASET_ORDER = ("mnist", "fashion_mnist", "svhn", "cifar10", "cifar100")  # the paper's
# Tapped layers that are no hidden layer of the paper: the globally pooled features (VGG11,
# ResNet18) and ResNet18's logits.
NOT_HIDDEN = ("avgpool", "classifier")

SHALLOW_SHARE = 0.75  # claim 2: share of the fall reached by the middle hidden layer
NEAR_MIN = 0.10  # claims 3-4: the last layer within 10 % of the smallest value
PLATEAU_TOL = 0.10  # claim 5: within 10 % of the curve's range of the last value
LISTED = 3  # models named in a claim's measured text (all of them up to this many)

INIT_STYLE = {"color": "tab:blue", "linestyle": ":", "linewidth": 1.8}
TPT_STYLE = {"color": "tab:red", "linestyle": "-", "linewidth": 1.8}
CMAP = "viridis"


def figure_number(metric: str, activation: str) -> int:
    """The paper's figure number of ``{metric}_{activation}`` (Figs. 1-4 ReLU, 5-8 Tanh,
    9-12 LeakyReLU)."""
    return WHERE[activation][1] + list(METRICS).index(metric)


# --- the models of one activation ---------------------------------------------------------

@dataclass(frozen=True)
class Model:
    """One trained model (seeds averaged) of one activation: its train-split curves."""

    label: str
    dataset: str
    arch: str
    curves: pd.DataFrame  # epoch, layer_index, layer, metric, value (input + hidden layers)
    tpt: int | None  # the first checkpoint at or after TPT; None if never reached

    @property
    def short(self) -> str:
        """The label as the claims name it: ``mnist/mlp6``."""
        return self.label.replace(" / ", "/")

    @property
    def epochs(self) -> list[int]:
        return sorted(int(e) for e in self.curves["epoch"].unique())

    def curve(self, metric: str, epoch: int | None) -> pd.Series | None:
        """``metric`` by layer index (input and hidden layers) at ``epoch``; None if absent."""
        if epoch is None:
            return None
        rows = self.curves[(self.curves["metric"] == metric) & (self.curves["epoch"] == epoch)]
        if rows.empty:
            return None
        return rows.set_index("layer_index")["value"].sort_index()


def tpt_epochs(tables: Tables) -> dict[str, float]:
    """Each run's interpolation epoch (first epoch with train accuracy ≥ the threshold; NaN if
    never), from the train log."""
    training = tables.training
    if training.empty or "train_acc" not in training.columns:
        return {}
    return {run: interpolation_epoch(part.set_index("epoch")["train_acc"],
                                     tables.thresholds.interpolation)
            for run, part in training.groupby("run")}


def activation_rows(tables: Tables, activation: str) -> pd.DataFrame:
    """The selected runs' train-split rows of ``activation``, input and hidden layers only;
    empty if no run has that activation, or the tables have no ``activation`` axis."""
    metrics = tables.metrics
    if metrics.empty or "activation" not in metrics.columns:
        return metrics.iloc[0:0]
    rows = tables.selected(metrics)
    rows = rows[(rows["activation"] == activation) & (rows["split"] == SPLIT)
                & rows["layer_index"].notna() & ~rows["layer"].isin(NOT_HIDDEN)]
    return rows.assign(layer_index=rows["layer_index"].astype(int))


def _other_keys(rows: pd.DataFrame) -> list[str]:
    """Axis columns besides the activation that tell models of one dataset × architecture
    apart, and the group where it does."""
    keys = [k for k in vocabulary.axis_columns(rows)
            if k != "activation" and rows[k].nunique(dropna=True) > 1]
    if "group" in rows.columns and (rows.groupby(["dataset", "arch", *keys], dropna=False)
                                    ["group"].nunique() > 1).any():
        keys.append("group")
    return keys


def models(tables: Tables, activation: str) -> list[Model]:
    """The models of ``activation`` (seeds averaged), in the paper's order."""
    rows = activation_rows(tables, activation)
    if rows.empty:
        return []
    interpolated = tpt_epochs(tables)
    keys = _other_keys(rows)
    found = []
    for key, part in rows.groupby(["dataset", "arch", *keys], sort=False, dropna=False):
        dataset, arch, *more = key
        extra = [str(v) if k == "group" else f"{k}={v:g}" if isinstance(v, float)
                 else f"{k}={v}" for k, v in zip(keys, more, strict=True)]
        curves = (part.groupby(["epoch", "layer_index", "layer", "metric"], as_index=False)
                  ["value"].mean())
        reached = [interpolated.get(run, math.nan) for run in part["run"].unique()]
        tpt = None
        if reached and not any(math.isnan(e) for e in reached):
            after = [e for e in sorted(curves["epoch"].unique()) if e >= max(reached)]
            tpt = int(after[0]) if after else None
        found.append(Model(vocabulary.model_label(dataset, arch, *extra), dataset, arch,
                           curves, tpt))
    return _in_paper_order(found)


def _in_paper_order(found: list[Model]) -> list[Model]:
    """The paper's order: architectures by depth (MLP6, VGG11, ResNet18), datasets as in
    :data:`DATASET_ORDER` (others after them, in the tables' order)."""
    depth = {m.arch: int(m.curves["layer_index"].max()) for m in found}
    archs = list(dict.fromkeys(m.arch for m in found))
    datasets = list(dict.fromkeys(m.dataset for m in found))

    def rank(model: Model) -> tuple[int, int, int, int]:
        known = DATASET_ORDER.index(model.dataset) if model.dataset in DATASET_ORDER else None
        return (depth[model.arch], archs.index(model.arch),
                known if known is not None else len(DATASET_ORDER),
                datasets.index(model.dataset))

    return sorted(found, key=rank)


# --- figures -----------------------------------------------------------------------------

def _grid(shown: list[Model]) -> tuple[int, int, list[tuple[int, int]]]:
    """Rows: architectures; columns: datasets where every architecture has every dataset (the
    paper's grid), else each architecture's models packed to the left."""
    archs = list(dict.fromkeys(m.arch for m in shown))
    datasets = list(dict.fromkeys(m.dataset for m in shown))
    pairs = [(m.arch, m.dataset) for m in shown]
    if len(set(pairs)) == len(pairs) == len(archs) * len(datasets):
        return len(archs), len(datasets), [(archs.index(a), datasets.index(d))
                                           for a, d in pairs]
    places, used = [], dict.fromkeys(archs, 0)
    for m in shown:
        places.append((archs.index(m.arch), used[m.arch]))
        used[m.arch] += 1
    return len(archs), max(used.values()), places


def _draw(ax, model: Model, metric: str, cmap, norm: Normalize) -> None:
    for epoch in model.epochs:
        curve = model.curve(metric, epoch)
        if curve is None:
            continue
        if epoch == 0:
            style, z = INIT_STYLE, 3
        elif epoch == model.tpt:
            style, z = TPT_STYLE, 4
        else:
            style, z = {"color": cmap(norm(epoch)), "linestyle": "-", "linewidth": 1.0}, 2
        ax.plot(curve.index, curve.to_numpy(), marker="o", markersize=2.2, zorder=z, **style)


def paper_figure(tables: Tables, metric: str, activation: str) -> Figure:
    """Parker et al.'s figure of ``metric`` (nc1, equinorm, maxangle, nc4) for
    ``activation``: an architecture × dataset grid, the metric against the layer (0 = input),
    one curve per checkpoint coloured by epoch, initialisation blue dotted, the first
    checkpoint after TPT red solid; a placeholder where no run has that activation."""
    column, title = METRICS[metric]
    number = figure_number(metric, activation)
    shown = [m for m in models(tables, activation) if (m.curves["metric"] == column).any()]
    if not shown:
        return placeholder(f"Parker et al. Fig. {number} needs selected runs with "
                           f"activation: {activation} (an activation axis) and {column} "
                           f"measured")
    rows, cols, places = _grid(shown)
    fig = Figure(figsize=(min(9.5, max(6.4, 1.6 + 2.0 * cols)), min(11.0, 1.5 + 2.1 * rows)),
                 layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    cmap = colormaps[CMAP]
    norm = Normalize(0, max(max(m.epochs) for m in shown) or 1)
    used = set(places)
    for model, (r, c) in zip(shown, places, strict=True):
        ax = axes[r, c]
        _draw(ax, model, column, cmap, norm)
        if metric in LOG_Y:
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        ax.set_title(model.label + ("" if model.tpt is not None else " (no TPT)"),
                     fontsize="small")
        ax.tick_params(labelsize="x-small")
        if r == rows - 1 or (r + 1, c) not in used:
            ax.set_xlabel("layer (0 = input)", fontsize="small")
        if c == 0:
            ax.set_ylabel(vocabulary.METRIC_LABELS.get(column, column), fontsize="small")
    for r in range(rows):
        for c in range(cols):
            if (r, c) not in used:
                axes[r, c].set_visible(False)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, label="checkpoint epoch",
                 shrink=min(1.0, 0.4 + 0.2 * rows), aspect=25)
    handles = [Line2D([], [], **INIT_STYLE, label="initialisation"),
               Line2D([], [], **TPT_STYLE, label="first checkpoint after TPT"),
               Line2D([], [], color=cmap(0.6), linewidth=1.0, label="other checkpoints")]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize="small")
    fig.suptitle(f"{title} in the {ACTIVATIONS[activation]} classifiers' hidden layers\n"
                 f"(Parker et al. Fig. {number}; train split)", fontsize="medium")
    return fig


def _figure_function(metric: str, activation: str) -> Callable[[Tables], Figure]:
    def draw(tables: Tables) -> Figure:
        return paper_figure(tables, metric, activation)

    draw.__name__ = f"{metric}_{activation}"
    draw.__doc__ = (f"Parker et al. Fig. {figure_number(metric, activation)}: "
                    f"{METRICS[metric][1]}, {ACTIVATIONS[activation]}.")
    return draw


FIGURES: dict[str, Callable[[Tables], Figure]] = {
    f"{metric}_{activation}": _figure_function(metric, activation)
    for activation in ACTIVATIONS for metric in METRICS
}


# --- criteria on one curve (indexed by layer index, the input at 0 where present) -----------

def hidden(curve: pd.Series) -> pd.Series:
    """The curve without the input (layer index 0)."""
    return curve[curve.index > 0]


def below_everywhere(init: pd.Series, after: pd.Series) -> tuple[bool, int, int]:
    """Whether ``after`` is below ``init`` in every hidden layer: (holds, layers below, layers
    compared)."""
    a, b = hidden(init).align(hidden(after), join="inner")
    below = int((b < a).sum())
    return below == len(a) and len(a) > 0, below, len(a)


def fall_share_by_middle(curve: pd.Series) -> float:
    """The share of the fall from the first point (the input) to the last hidden layer that
    has happened by the middle hidden layer (layer ⌈L/2⌉ of L); NaN if the curve does not
    fall."""
    curve = curve.sort_index()
    layers = list(hidden(curve).index)
    if len(layers) < 2:
        return math.nan
    start, last = curve.iloc[0], curve.iloc[-1]
    fall = start - last
    if not fall > 0:
        return math.nan
    middle = curve[layers[math.ceil(len(layers) / 2) - 1]]
    return float((start - middle) / fall)


def last_near_min(curve: pd.Series, tol: float = NEAR_MIN) -> tuple[bool, float]:
    """Whether the last hidden layer's value is at most (1 + tol) × the smallest over the
    hidden layers: (holds, last / smallest)."""
    values = hidden(curve).sort_index()
    smallest, last = float(values.min()), float(values.iloc[-1])
    if smallest <= 0:
        return last <= 0, 1.0 if last <= 0 else math.inf
    return last <= (1 + tol) * smallest, last / smallest


def plateau_layer(curve: pd.Series, tol: float = PLATEAU_TOL) -> int:
    """The first layer index from which on every value (input and hidden layers) stays within
    ``tol`` × the curve's range of the last hidden layer's value."""
    curve = curve.sort_index()
    values = curve.to_numpy(dtype=float)
    band = tol * (np.nanmax(values) - np.nanmin(values))
    near = np.abs(values - values[-1]) <= band
    first = len(values) - 1
    while first > 0 and near[first - 1]:
        first -= 1
    return int(curve.index[first])


# --- claims -------------------------------------------------------------------------------

Verdict = tuple[bool | None, str]  # per model: holds (None: cannot tell) and its numbers


def _nc1_below_init(model: Model) -> Verdict:
    init, after = model.curve("nc1", 0), model.curve("nc1", model.tpt)
    if init is None or after is None:
        return None, "no " + ("initialisation" if init is None else "post-TPT") + " checkpoint"
    ok, below, n = below_everywhere(init, after)
    ratio = float((hidden(after) / hidden(init)).max())
    return ok, f"{below}/{n} layers, max ratio {ratio:.2g}"


def _nc1_plateau(model: Model) -> Verdict:
    after = model.curve("nc1", model.tpt)
    if after is None:
        return None, "no post-TPT checkpoint"
    share = fall_share_by_middle(after)
    if math.isnan(share):
        return False, "no fall"
    return share >= SHALLOW_SHARE, f"{share:.0%}"


def _keeps_falling(metric: str) -> Callable[[Model], Verdict]:
    def verdict(model: Model) -> Verdict:
        after = model.curve(metric, model.tpt)
        if after is None:
            return None, "no post-TPT checkpoint"
        ok, ratio = last_near_min(after)
        return ok, f"last/min {ratio:.2f}"

    return verdict


def _nc4_later(model: Model) -> Verdict:
    nc1, nc4 = model.curve("nc1", model.tpt), model.curve("nc4_mismatch", model.tpt)
    if nc1 is None or nc4 is None:
        return None, "no post-TPT checkpoint"
    p1, p4 = plateau_layer(nc1), plateau_layer(nc4)
    n = len(hidden(nc1))
    return p4 > p1, f"NC1 {p1}, NC4 {p4} of {n}"


@dataclass(frozen=True)
class Claim:
    key: str  # short name, in the "alike" claim's measured text
    text: str
    where: str  # "{section}, Fig. {n}" with the figure offset into that activation's four
    figure: int  # 0 NC1, 1 equal norms, 2 maximal angles, 3 NC4
    verdict: Callable[[Model], Verdict]


# The texts are short (the report's table holds 16 rows on a page); the criteria in full are
# in the module docstring and the report's section. Measured: per model, the numbers named.
CLAIMS = (
    Claim("NC1<init", "NC1 after TPT below its initial value in every hidden layer "
          "(layers below; largest after/initial)", "{section}, Fig. {n}", 0, _nc1_below_init),
    Claim("NC1 plateau", "NC1 falls with depth, then plateaus: "
          f"≥ {SHALLOW_SHARE:.0%} of the fall from the input to the last layer happens by "
          "the middle layer (share)", "{section}, Fig. {n}; §4 (1)", 0, _nc1_plateau),
    Claim("equinorm", "NC2 equal norms keep falling to the last layer: there within "
          f"{NEAR_MIN:.0%} of the minimum (last/min)", "{section}, Fig. {n}", 1,
          _keeps_falling("nc2_equinorm")),
    Claim("max-angle", "NC2 maximal angles keep falling to the last layer: there within "
          f"{NEAR_MIN:.0%} of the minimum (last/min)", "{section}, Fig. {n}; §4 (2)", 2,
          _keeps_falling("nc2_maxangle")),
    Claim("NC4 later", "NC4 plateaus at a deeper layer than NC1 (plateau layers; plateau: "
          f"within {PLATEAU_TOL:.0%} of the range of the last value)",
          "{section}, Fig. {n} vs {n0}", 3, _nc4_later),
)


def _summary(verdicts: list[tuple[Model, Verdict]],
             no_tpt: list[Model]) -> tuple[bool | None, str]:
    """Holds when the criterion holds in more than half of the models it can be read on; the
    text names every model's numbers (only the failing ones' beyond LISTED models)."""
    told = [(m, v) for m, v in verdicts if v[0] is not None]
    passed = sum(bool(v[0]) for _, v in told)
    holds = passed > len(told) / 2 if told else None
    listed, prefix, suffix = told, "", ""
    if len(told) > LISTED:
        failing = [(m, v) for m, v in told if not v[0]]
        listed, prefix = failing[:LISTED], "failing: "
        suffix = " …" if len(failing) > LISTED else ""
    text = f"{passed}/{len(told)}"
    if listed:
        text += f" ({prefix}{'; '.join(f'{m.short}: {v[1]}' for m, v in listed)}{suffix})"
    if no_tpt:
        text += f"; left out, no TPT: {', '.join(m.short for m in no_tpt)}"
    return holds, text


def claims_rows(tables: Tables) -> list[dict]:
    """One row per claim × activation, then the "activations alike" claim."""
    by_activation = {a: models(tables, a) for a in ACTIVATIONS}
    outcomes: dict[str, dict[str, bool | None]] = {c.key: {} for c in CLAIMS}
    rows = []
    for claim in CLAIMS:
        for activation, found in by_activation.items():
            section, first = WHERE[activation]
            where = claim.where.format(section=section, n=first + claim.figure, n0=first)
            text = f"{ACTIVATIONS[activation]}: {claim.text}"
            if not found:
                holds, measured = None, f"no selected run with activation {activation}"
            else:
                reached = [m for m in found if m.tpt is not None]
                verdicts = [(m, claim.verdict(m)) for m in reached]
                holds, measured = _summary(verdicts, [m for m in found if m.tpt is None])
            outcomes[claim.key][activation] = holds
            rows.append({"claim": text, "where": where, "measured": measured,
                         "holds": holds})
    rows.append(alike_row(outcomes))
    return rows


def alike_row(outcomes: dict[str, dict[str, bool | None]]) -> dict:
    """The claim that the activations behave alike: every claim has the same outcome for
    each activation it could be told for (None: fewer than two such activations)."""
    def mark(value: bool | None) -> str:
        return "-" if value is None else ("T" if value else "F")

    parts, agree, compared = [], 0, 0
    for key, by_activation in outcomes.items():
        told = {v for v in by_activation.values() if v is not None}
        if sum(v is not None for v in by_activation.values()) >= 2:
            compared += 1
            agree += len(told) == 1
        parts.append(f"{key} {'/'.join(mark(v) for v in by_activation.values())}")
    holds = agree == compared if compared else None
    measured = (f"{agree}/{compared} claims alike; " + ", ".join(parts)
                + f" ({'/'.join(ACTIVATIONS.values())})")
    return {"claim": "ReLU, Tanh and LeakyReLU networks behave alike: each claim above has "
                     "the same outcome for every activation",
            "where": "§3; App. B, C", "measured": measured, "holds": holds}


def claims(tables: Tables) -> pd.DataFrame:
    """The paper's claims checked against the measured numbers (see the module docstring)."""
    return claims_frame(claims_rows(tables))


TABLES: dict[str, Callable[[Tables], pd.DataFrame]] = {"claims": claims}
