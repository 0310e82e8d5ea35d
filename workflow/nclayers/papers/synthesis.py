"""The cross-paper synthesis: one set of models and datasets trained under each paper's recipe,
every metric of every layer measured in every run, and four questions the papers cannot answer
alone, each answered from the measured numbers (never written in advance).

The recipes are the experiment's groups (workflow/presets/synthesis/); the design table gives
each one's loss, schedule and augmentation (:func:`factors`), whatever the group is called.
The papers' (:data:`RECIPES`): MSE with one-cycle (Parker et al. 2023), MSE with step decay
(Rangamani et al. 2023, with its ETF experiment), CE with step decay and augmentation (Galanti
et al. 2022), CE and SVSL with step decay (Ben-Shaul & Dekel 2022). A *model* is a dataset ×
architecture; a *recipe model* its selected run(s) under one recipe with no layer fixed to an
ETF (``etf_layers`` 0 or unset), seeds averaged. Diverged runs are left out. Layer index 0 is
the input; a tapped ``classifier`` (the logits) is left out.

Three depths per recipe model, from the train split's seed-mean curves (the last epoch, or each
epoch of ``train.epoch_metrics``), each a layer index (NaN: never reached):

- the collapse layer ℓ* (Rangamani et al.): the first layer from which on every NC1 ratio
  Tr Σ_W / Tr Σ_T is below ε = ``Tables.thresholds.collapse_eps``;
- the NCC depth ℓ_NCC (Ben-Shaul & Dekel's NCC mismatch): the first layer from which on every
  NC4 mismatch (share of samples whose nearest class mean is not the network's prediction) is
  below δ = 1 − ``Tables.thresholds.ncc``;
- the effective depth ℓ_eff (Galanti et al. Def. 1): the first layer whose NCC train accuracy
  reaches ``Tables.thresholds.ncc``.

The questions (the claims table: each as a statement, its measured answer in words, and
whether it holds); a statement holds when its criterion holds in more than half of the cases
that can tell, and the answer's first word, "Yes" or "No", says so:

Q1. Does the collapse layer depend on the loss and the schedule? For each factor (loss,
    schedule, augmentation), each pair of recipes that differ in that factor only, on each
    model: ℓ* *moves* when the two differ by at least :data:`MOVE` layers, or only one of
    them collapses (both without ℓ*: cannot tell).
Q2. Does NCC separability reach the same depth as variability collapse and the effective
    depth? Per recipe model at the last epoch: |ℓ_NCC − ℓ*| ≤ :data:`SAME` (and likewise with
    ℓ_eff; one of the two missing: not the same). Through training (per-epoch metrics): the
    NCC depth *settles* (the first epoch from which on it keeps its final value) no later
    than ℓ* does.
Q3. Do top layers fixed to simplex ETFs move the collapse layer? Each ETF run (``etf_layers``
    k > 0, each k at its selected learning rate) against its free model: the recipe model of
    the same group and dataset with the same tapped layers. Moves as in Q1; and, separately,
    whether fixing only the k ≤ k* = L − ℓ*(free) + 1 linear layers that read collapsed
    layers leaves ℓ* in place.
Q4. How does hierarchy retention (Lindegaard, eq. 4.1) relate to the collapse layer? From the
    feature analysis of the recipe models' runs (``features.runs``), at its last epoch, per
    clustering method: the mean retention of the transitions ℓ → ℓ+1 with ℓ ≥ ℓ* against
    those with ℓ < ℓ* (higher after: holds); and across models, the Spearman correlation of
    ℓ*/L with the mean retention over all transitions (negative: a deeper collapse goes with
    less retention; needs three models with ℓ*).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations, groupby

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from nclayers import vocabulary
from nclayers.derived import collapse_layer, effective_depth, last_epoch
from nclayers.papers import Tables, claims_frame, query
from nclayers.papers.query import Model, layer_text
from nclayers.plots import placeholder

DEPTH_METRICS = ("nc1_ratio", "ncc_accuracy", "nc4_mismatch")
MOVE = 1  # layers by which ℓ* must differ to count as moved (Q1, Q3)
SAME = 1  # layers within which two depths count as the same (Q2)
MAX_ROWS = 6  # models shown in a figure with a row per model

# The papers' recipes as (loss, schedule, augmented), in the order the figures and tables show
# them (any other recipe after them), with the paper each one comes from.
RECIPES = {("mse", "onecycle", False): "Parker et al.",
           ("mse", "multistep", False): "Rangamani et al.",
           ("ce", "multistep", True): "Galanti et al.",
           ("ce", "multistep", False): "Ben-Shaul & Dekel (CE)",
           ("svsl", "multistep", False): "Ben-Shaul & Dekel (SVSL)"}
SCHEDULES = {"onecycle": "one-cycle", "multistep": "step decay"}
FACTORS = {"loss": "the loss", "schedule": "the schedule", "augment": "augmentation"}
DEPTHS = {"collapse": ("ℓ*", "green", "o"), "ncc": ("ℓ_NCC", "tab:orange", "^"),
          "effective": ("ℓ_eff", "tab:blue", "s")}
RETENTION_METHODS = ("cosine", "ward")


# --- recipes ---------------------------------------------------------------------------------

def factors(t: Tables) -> dict[str, dict[str, object]]:
    """Group → its loss, schedule and augmentation (whether any ``train.augment.*`` is on), as
    the design table says; a group whose runs differ in one of them is no recipe (left out)."""
    design = t.design
    if design.empty or not {"group", "train.loss", "train.schedule"} <= set(design):
        return {}
    augment = design[[c for c in design if c.startswith("train.augment.")]].map(
        lambda v: str(v).strip().lower() not in ("", "nan", "none", "0", "0.0", "false"))
    found = pd.DataFrame({"loss": design["train.loss"], "schedule": design["train.schedule"],
                          "augment": augment.any(axis=1)})
    out = {}
    for group, part in found.groupby(design["group"].astype(str), sort=False):
        if len(part := part.drop_duplicates()) == 1 and part.notna().all(axis=None):
            out[group] = {"loss": str(part["loss"].iloc[0]),
                          "schedule": str(part["schedule"].iloc[0]),
                          "augment": bool(part["augment"].iloc[0])}
    return out


def contrasts(t: Tables, recipes: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """Per factor, the pairs of ``recipes`` that differ in that factor only."""
    known = factors(t)
    out: dict[str, list[tuple[str, str]]] = {f: [] for f in FACTORS}
    for a, b in combinations([r for r in recipes if r in known], 2):
        if len(differ := [f for f in FACTORS if known[a][f] != known[b][f]]) == 1:
            out[differ[0]].append((a, b))
    return out


def _order(t: Tables) -> Callable[[str], tuple[int, str]]:
    """A recipe's sort key: its factors' place in :data:`RECIPES`, then its name."""
    known, order = factors(t), list(RECIPES)

    def rank(recipe: str) -> tuple[int, str]:
        key = tuple(known.get(recipe, {}).values())
        return (order.index(key) if key in order else len(order), recipe)
    return rank


# --- models, their curves and depths ---------------------------------------------------------
# A model (query.Model) of (group, dataset, arch, etf_layers): its recipe is the group, and k
# its top linear layers fixed to ETFs.

def _recipe(model: Model) -> str:
    return str(model.key["group"])


def _k(model: Model) -> int:
    return int(model.key["etf_layers"])


def _short(model: Model) -> str:
    """Its name as the claims' texts give it: ``digits/mlp``."""
    return f"{model.dataset}/{model.arch}"


def recipe_models(t: Tables, etf: bool = False) -> list[Model]:
    """The recipe models (``etf``: the models with k > 0 instead), by name, then in the
    recipes' order, then by k."""
    runs = query.runs(t)
    if runs.empty:
        return []
    runs, rank = runs.assign(etf_layers=query.etf_layers(runs)), _order(t)
    found = query.models(runs[(runs["etf_layers"] > 0) == etf],
                         by=("group", "dataset", "arch", "etf_layers"),
                         label=lambda k: vocabulary.model_label(str(k["dataset"]), str(k["arch"])))
    return sorted(found, key=lambda m: (m.label, rank(_recipe(m)), _k(m)))


def curves(table: pd.DataFrame, model: Model) -> pd.DataFrame:
    """Seed means per layer index (rows) of each metric (columns) of ``model``'s train rows of
    ``table`` without the logits, at each run's last epoch there."""
    rows = model.rows(table, logits=False)
    if rows.empty:
        return pd.DataFrame()
    return last_epoch(rows).astype({"layer_index": int}).pivot_table(
        index="layer_index", columns="metric", values="value", aggfunc="mean").sort_index()


# The depths are of seed-mean curves without the logits, so computed here (nclayers.derived's
# functions), not read from query.derived's per-run rows of every layer.
@dataclass(frozen=True)
class Depths:
    collapse: float  # ℓ*
    ncc: float  # ℓ_NCC
    effective: float  # ℓ_eff
    last: float  # the deepest layer measured


def depths(curve: pd.DataFrame, eps: float, ncc_threshold: float) -> Depths:
    """ℓ*, ℓ_NCC and ℓ_eff of one model's per-layer curves (see the module docstring)."""
    ratio, accuracy, mismatch = (curve[m].dropna() if m in curve else pd.Series(dtype=float)
                                 for m in DEPTH_METRICS)
    return Depths(
        collapse=collapse_layer(ratio, eps) if len(ratio) else math.nan,
        ncc=collapse_layer(mismatch, 1 - ncc_threshold) if len(mismatch) else math.nan,
        effective=effective_depth(accuracy, ncc_threshold) if len(accuracy) else math.nan,
        last=float(curve.index.max()) if len(curve) else math.nan)


def model_depths(t: Tables, model: Model, table: pd.DataFrame | None = None) -> Depths:
    """The depths of ``model`` at its last epoch (of ``table``; default: the metrics)."""
    return depths(curves(t.metrics if table is None else table, model),
                  t.thresholds.collapse_eps, t.thresholds.ncc)


def depths_by_epoch(t: Tables, model: Model) -> pd.DataFrame:
    """The depths of ``model`` at each epoch of its per-epoch metrics: epoch, collapse, ncc,
    effective (empty without ``train.epoch_metrics``)."""
    rows = model.rows(t.epoch_metrics, logits=False)
    out = [] if rows.empty else [{"epoch": int(epoch), **asdict(model_depths(t, model, part))}
                                 for epoch, part in rows.groupby("epoch")]
    return pd.DataFrame(out, columns=["epoch", "collapse", "ncc", "effective"])


def settle_epoch(series: pd.Series) -> float:
    """The first epoch (index) from which on ``series`` keeps its last value (NaN counts as
    a value: "not reached"); NaN for an empty series."""
    if series.empty:
        return math.nan
    values = series.sort_index()
    same = values.isna() if pd.isna(values.iloc[-1]) else values == values.iloc[-1]
    first = len(values) - 1
    while first > 0 and same.iloc[first - 1]:
        first -= 1
    return float(values.index[first])


def _interpolation(t: Tables, model: Model) -> float:
    """The mean interpolation epoch of ``model``'s runs (NaN if any never interpolates)."""
    epochs = query.derived(t, "interpolation_epoch").reindex(list(model.runs)).to_numpy()
    return float(np.mean(epochs)) if len(epochs) and not np.isnan(epochs).any() else math.nan


# --- words -----------------------------------------------------------------------------------

def _moved(a: float, b: float) -> bool | None:
    """Whether a depth moved from ``a`` to ``b``: by :data:`MOVE` layers, or only one exists
    (None: neither exists)."""
    missing = math.isnan(a) + math.isnan(b)
    return None if missing == 2 else bool(missing or abs(b - a) >= MOVE)


def _same(a: float, b: float) -> bool | None:
    """Whether two depths are the same within :data:`SAME` layers (one missing: not; None:
    neither exists)."""
    missing = math.isnan(a) + math.isnan(b)
    return None if missing == 2 else bool(not missing and abs(a - b) <= SAME)


def _tell(told: Sequence[bool], yes: str, no: str, cases: str, none: str,
          more: str = "") -> tuple[bool | None, str]:
    """Whether more than half of ``told`` hold, and the answer in words: ``yes`` or ``no`` in
    "k of n" ``cases`` (those that side with it), then ``more``; ``none`` without a case."""
    holds = query.majority(told)
    if not told:
        return holds, none
    return holds, (f"{yes if holds else no} in {sum(told) if holds else len(told) - sum(told)}"
                   f" of {len(told)} {cases}{more}")


def _row(text: str, where: str, holds: bool | None, answer: str, details: Sequence[str],
         criterion: str) -> dict:
    """A claims row whose measured text gives the answer ("Yes"/"No"), the numbers, then the
    criterion."""
    yes = "Cannot tell" if holds is None else ("Yes" if holds else "No")
    numbers = " (" + "; ".join(details) + ")" if details else ""
    return query.claim(text, where, f"{yes}: {answer}{numbers}. Criterion: {criterion}", holds)


# --- tables ----------------------------------------------------------------------------------

def measured_depths(t: Tables) -> list[tuple[Model, Depths]]:
    """Each recipe model with its depths at the last epoch."""
    return [(model, model_depths(t, model)) for model in recipe_models(t)]


def depths_table(t: Tables) -> pd.DataFrame:
    """Q1, Q2: per recipe model at the last epoch, its recipe, its deepest layer L, the three
    depths, when it interpolates and its final accuracies."""
    known, rows = factors(t), []
    for m, d in measured_depths(t):
        f = known.get(_recipe(m), {})
        schedule = str(f.get("schedule", ""))
        rows.append((m.dataset, m.arch, _recipe(m), RECIPES.get(tuple(f.values()), ""),
                     f.get("loss", ""), SCHEDULES.get(schedule, schedule), d.last, d.collapse,
                     d.ncc, d.effective, _interpolation(t, m), m.final(t, "final_train_acc"),
                     m.final(t, "final_test_acc")))
    return pd.DataFrame(rows, columns=["dataset", "arch", "recipe", "paper", "loss",
                                       "schedule", "L", "ℓ*", "ℓ_NCC", "ℓ_eff",
                                       "interpolation epoch", "train acc", "test acc"])


@dataclass(frozen=True)
class EtfCase:
    """An ETF model against its free model."""

    model: Model
    free: Model | None
    lstar: float  # ℓ* with k layers fixed
    free_lstar: float
    kstar: float  # L − ℓ*(free) + 1: the linear layers that read collapsed layers


def free_model(t: Tables, model: Model, free: Sequence[Model]) -> Model | None:
    """The recipe model of ``model``'s group and dataset with the same tapped layers (the
    same architecture without fixed layers); None unless exactly one fits (the same
    architecture label first)."""
    def names(m: Model) -> dict:
        rows = m.rows(t.metrics, logits=False).drop_duplicates("layer_index")
        return dict(zip(rows["layer_index"], rows["layer"], strict=True))

    fits = [f for f in free if _recipe(f) == _recipe(model) and f.dataset == model.dataset
            and names(f) == names(model)]
    chosen = [f for f in fits if f.arch == model.arch] or fits
    return chosen[0] if len(chosen) == 1 else None


def etf_cases(t: Tables) -> list[EtfCase]:
    """Each ETF model against its free model (:func:`free_model`)."""
    free, out = recipe_models(t), []
    for model in recipe_models(t, etf=True):
        ref = free_model(t, model, free)
        ref_d = model_depths(t, ref) if ref else Depths(*[math.nan] * 4)
        out.append(EtfCase(model, ref, model_depths(t, model).collapse, ref_d.collapse,
                           ref_d.last - ref_d.collapse + 1))
    return out


def etf_table(t: Tables) -> pd.DataFrame:
    """Q3: per ETF run, ℓ* with k top layers fixed against the free model's, and the final
    accuracies of both."""
    rows = [(c.model.dataset, c.model.arch, _recipe(c.model), c.free.arch if c.free else
             "(none)", _k(c.model), c.kstar, c.free_lstar, c.lstar,
             c.free.final(t, "final_test_acc") if c.free else math.nan,
             c.model.final(t, "final_train_acc"), c.model.final(t, "final_test_acc"))
            for c in etf_cases(t)]
    return pd.DataFrame(rows, columns=["dataset", "arch", "recipe", "free model", "k", "k*",
                                       "ℓ* free", "ℓ* fixed", "test acc free",
                                       "train acc fixed", "test acc fixed"])


@dataclass(frozen=True)
class Retention:
    """One analysed recipe model's retention under one clustering method."""

    model: Model
    method: str
    depths: Depths
    curve: pd.Series  # seed-mean retention ℓ → ℓ+1 by ℓ, the last analysed epoch
    before: float  # mean over ℓ < ℓ*
    after: float  # mean over ℓ ≥ ℓ*


def measured_retention(t: Tables) -> list[Retention]:
    """Each analysed recipe model's seed-mean retention ℓ → ℓ+1 by ℓ (the layer index it
    starts from) at the last analysed epoch, per method, and its means before ℓ* and from it."""
    table, out = query.feature_table(t, "retention"), []
    if table.empty:
        return []
    for model, d in measured_depths(t):
        for method in RETENTION_METHODS:
            rows = table[table["run"].isin(model.runs) & (table["method"] == method)]
            curve = rows.groupby("index_from")["retention"].mean().sort_index().astype(float)
            if curve.empty:
                continue
            known = curve.dropna()  # ℓ* NaN: no transition on either side
            parts = (known[known.index < d.collapse], known[known.index >= d.collapse])
            out.append(Retention(model, method, d, curve, *(
                float(part.mean()) if len(part) else math.nan for part in parts)))
    return out


def retention_table(t: Tables) -> pd.DataFrame:
    """Q4: per analysed recipe model and clustering method, ℓ*, the mean retention before
    it, from it on and over all transitions."""
    rows = [(r.model.dataset, r.model.arch, _recipe(r.model), r.method, r.depths.last,
             r.depths.collapse, r.before, r.after, float(r.curve.mean()))
            for r in measured_retention(t)]
    return pd.DataFrame(rows, columns=["dataset", "arch", "recipe", "method", "L", "ℓ*",
                                       "retention before ℓ*", "retention from ℓ*",
                                       "retention, all"])


# --- the questions ---------------------------------------------------------------------------

def q1_rows(t: Tables) -> list[dict]:
    """Q1: per factor, does ℓ* move between recipes that differ in it only?"""
    found = measured_depths(t)
    lstar = {(_recipe(m), _short(m)): d.collapse for m, d in found}
    names = list(dict.fromkeys(_short(m) for m, _ in found))
    pairs = contrasts(t, list(dict.fromkeys(_recipe(m) for m, _ in found)))
    rows = []
    for factor, words in FACTORS.items():
        told, details = [], []
        for (a, b), name in ((pair, name) for pair in pairs[factor] for name in names):
            if (a, name) in lstar and (b, name) in lstar:
                la, lb = lstar[(a, name)], lstar[(b, name)]
                if (moved := _moved(la, lb)) is not None:
                    told.append(moved)
                details.append(f"{name}: {a} {layer_text(la)} vs {b} {layer_text(lb)}")
        rows.append(_row(f"The collapse layer ℓ* depends on {words}",
                         "Q1; Parker §3, Rangamani §5, Galanti §4, Ben-Shaul §6",
                         *_tell(told, f"ℓ* moves with {words}", f"ℓ* does not move with {words}",
                                "comparisons", f"no two recipes differ in {words} only"
                                if not pairs[factor] else
                                "no recipe of these pairs has a collapse layer"),
                         details, f"ℓ* differs by ≥ {MOVE} layer (or exists in one only) in "
                         "more than half of the comparisons of recipes that differ in this "
                         "factor only"))
    return rows


def _depth_row(t: Tables, other: str, label: str, claim: str, where: str,
               criterion: str) -> dict:
    """ℓ_NCC against another depth (``other``: a field of :class:`Depths`) per recipe
    model."""
    told, diffs, details = [], [], []
    for model, d in measured_depths(t):
        a, b = d.ncc, getattr(d, other)
        if (same := _same(a, b)) is not None:
            told.append(same)
        if not (math.isnan(a) or math.isnan(b)):
            diffs.append(a - b)
        details.append(f"{_recipe(model)} {_short(model)}: ℓ_NCC {layer_text(a)}, {label} "
                       f"{layer_text(b)}")
    diff = float(np.mean(diffs)) if diffs else math.nan
    more = "" if not diffs else "; on average NCC separability is reached " + (
        "at about the same layer" if abs(diff) < 0.5 else
        f"{abs(diff):.1f} layers {'deeper' if diff > 0 else 'shallower'} than {label}")
    return _row(claim, where, *_tell(told, f"ℓ_NCC is within {SAME} layer of {label}",
                                     f"ℓ_NCC is not within {SAME} layer of {label}",
                                     "recipe models", f"no recipe model has ℓ_NCC or {label}",
                                     more), details, criterion)


def q2_rows(t: Tables) -> list[dict]:
    """Q2: ℓ_NCC against ℓ* and ℓ_eff at the last epoch, and which settles first."""
    eps, delta = t.thresholds.collapse_eps, 1 - t.thresholds.ncc
    return [
        _depth_row(t, "collapse", "ℓ*", "NCC separability (ℓ_NCC) is reached at the same "
                   "depth as variability collapse (ℓ*)", "Q2; Ben-Shaul Def. 5, Rangamani §4",
                   f"ℓ_NCC (NC4 mismatch < {delta:g} from here on) and ℓ* (NC1 ratio < "
                   f"{eps:g} from here on) within {SAME} layer in more than half of the "
                   "recipe models; one of them missing: not the same"),
        _depth_row(t, "effective", "ℓ_eff", "NCC separability (ℓ_NCC) is reached at the same "
                   "depth as the effective depth (ℓ_eff)", "Q2; Ben-Shaul Def. 5, Galanti "
                   "Def. 1", f"ℓ_NCC and ℓ_eff (first layer with NCC train accuracy ≥ "
                   f"{t.thresholds.ncc:g}) within {SAME} layer in more than half of the recipe "
                   "models; one of them missing: not the same"),
        _settle_row(t),
    ]


def _settle_row(t: Tables) -> dict:
    told, details = [], []
    for model in recipe_models(t):
        by_epoch = depths_by_epoch(t, model).set_index("epoch")
        head = f"{_recipe(model)} {_short(model)}"
        if by_epoch.empty:
            continue
        if by_epoch[["ncc", "collapse"]].iloc[-1].isna().all():
            details.append(f"{head}: neither reached")
            continue
        ncc, col = settle_epoch(by_epoch["ncc"]), settle_epoch(by_epoch["collapse"])
        told.append(bool(ncc <= col))
        details.append(f"{head}: ℓ_NCC settles at epoch {int(ncc)}, ℓ* at {int(col)}")
    return _row("During training, NCC separability settles at its final depth no later than "
                "variability collapse does", "Q2; Ben-Shaul Conj. 8, Fig. 2",
                *_tell(told, "ℓ_NCC reaches its final layer no later than ℓ*",
                       "ℓ_NCC reaches its final layer later than ℓ*", "recipe models",
                       "no per-epoch metrics of a recipe model that reaches a depth"),
                details, "the first epoch from which ℓ_NCC keeps its final value is ≤ that "
                "of ℓ* (per-epoch metrics), in more than half of the recipe models")


def q3_rows(t: Tables) -> list[dict]:
    """Q3: does fixing the top k layers to ETFs move ℓ*; does fixing only layers that read
    collapsed layers (k ≤ k*) leave it in place?"""
    cases = [c for c in etf_cases(t) if c.free is not None]
    where = "Q3; Rangamani §5.3, Fig. 7"

    def text(c: EtfCase) -> str:
        return (f"{_short(c.model)} k={_k(c.model)}: ℓ* {layer_text(c.free_lstar)} → "
                f"{layer_text(c.lstar)}, k* = {layer_text(c.kstar)}, test acc "
                f"{c.free.final(t, 'final_test_acc'):.3f} → "
                f"{c.model.final(t, 'final_test_acc'):.3f}")

    moved = [(c, _moved(c.free_lstar, c.lstar)) for c in cases]
    inside = [(c, m) for c, m in moved if not math.isnan(c.kstar) and _k(c.model) <= c.kstar]
    none = "neither the free nor the fixed models collapse"
    return [
        _row("Fixing the top linear layers to simplex ETFs moves the collapse layer", where,
             *_tell([m for _, m in moved if m is not None], "fixing top layers moves ℓ*",
                    "fixing top layers leaves ℓ* in place", "ETF runs",
                    none if cases else "no ETF run (an etf_layers axis) with a free model"),
             [text(c) for c in cases], f"ℓ* with k layers fixed differs by ≥ {MOVE} layer from "
             "the free model's (or exists in one only) in more than half of the ETF runs"),
        _row("Fixing only the layers that read collapsed layers (k ≤ k* = L − ℓ* + 1) leaves "
             "the collapse layer in place", where,
             *_tell([not m for _, m in inside if m is not None], "ℓ* stays", "ℓ* moves",
                    "ETF runs with k ≤ k*", none if inside else
                    "no ETF run fixes only layers that read collapsed layers (k ≤ k*)"),
             [text(c) for c, _ in inside], f"ℓ* moves by less than {MOVE} layer in more than "
             "half of the ETF runs with k ≤ k*")]


def q4_rows(t: Tables) -> list[dict]:
    """Q4: retention before and from ℓ*; and across models, ℓ*/L against mean retention."""
    found = measured_retention(t)
    where = "Q4; Lindegaard §4.3.3, eq. 4.1, Table 4.3.2"
    told, details = [], []
    for r in found:
        head = f"{_recipe(r.model)} {_short(r.model)} {r.method}"
        if math.isnan(r.before) or math.isnan(r.after):
            details.append(f"{head}: ℓ* {layer_text(r.depths.collapse)}, no split")
            continue
        told.append(bool(r.after > r.before))
        details.append(f"{head}: {r.before:.2f} before ℓ* = {layer_text(r.depths.collapse)}, "
                       f"{r.after:.2f} from it")
    higher = "retention is {}higher from ℓ* on than before it"
    return [_row("Hierarchy retention is higher from the collapse layer on than before it",
                 where, *_tell(told, higher.format(""), higher.format("not "),
                               "model × method cases", "no analysed model with layers on "
                               "both sides of ℓ*" if found else
                               "no feature analysis of a recipe model (features.runs)"),
                 details, "mean retention ℓ → ℓ+1 over ℓ ≥ ℓ* above that over ℓ < ℓ*, in more "
                 "than half of the recipe models × clustering methods"),
            _correlation_row(found, where)]


def _correlation_row(found: Sequence[Retention], where: str) -> dict:
    per_model: dict[tuple[str, str], list] = {}
    for r in found:
        if not math.isnan(r.depths.collapse):
            per_model.setdefault((_recipe(r.model), _short(r.model)),
                                 [r.depths.collapse / r.depths.last, []])[1].append(
                float(r.curve.mean()))
    points = {k: (rel, float(np.mean(v))) for k, (rel, v) in per_model.items()}
    rho = query.spearman([p[0] for p in points.values()], [p[1] for p in points.values()])
    trend = "less" if rho < 0 else "more" if rho > 0 else "the same"
    answer = (f"{len(points)} analysed models with ℓ*; the correlation needs at least 3 with "
              "distinct values" if math.isnan(rho) else f"across {len(points)} models Spearman "
              f"ρ(ℓ*/L, mean retention) = {rho:+.2f}: a deeper collapse goes with {trend} "
              "retention")
    return _row("Across recipes and models, a deeper collapse layer goes with lower "
                "hierarchy retention", where, None if math.isnan(rho) else bool(rho < 0),
                answer, [f"{recipe} {name}: ℓ*/L {rel:.2f}, retention {ret:.2f}"
                         for (recipe, name), (rel, ret) in points.items()],
                "Spearman correlation of ℓ*/L with the mean retention over all transitions "
                "(both methods) below 0, over the analysed models with ℓ*")


# --- figures ---------------------------------------------------------------------------------

def _styles(t: Tables, recipes: Sequence[str]) -> dict[str, tuple[object, str]]:
    """Per recipe its colour, the same in every figure, and line style: MSE solid, CE dashed,
    SVSL dash-dotted (the loss at a glance)."""
    known = factors(t)
    return {r: (colormaps["tab10"](i % 10),
                {"ce": "--", "svsl": "-."}.get(str(known.get(r, {}).get("loss")), "-"))
            for i, r in enumerate(sorted(dict.fromkeys(recipes), key=_order(t)))}


def _by_label(t: Tables) -> dict[str, list[tuple[Model, Depths]]]:
    """The recipe models with their depths, by name (:func:`recipe_models` sorts by it)."""
    return {name: list(found) for name, found in groupby(measured_depths(t),
                                                         key=lambda pair: pair[0].label)}


def _more(count: int) -> str:
    return f" ({count - MAX_ROWS} more models in the tables)" if count > MAX_ROWS else ""


def _labels(ax: Axes, x: str, y: str | None, title: str) -> None:
    ax.set_xlabel(x, fontsize="small")
    if y:
        ax.set_ylabel(y, fontsize="small")
    ax.set_title(title, fontsize="small")


def q1_collapse_by_recipe(t: Tables) -> Figure:
    """Q1: the NC1 ratio per layer at the last epoch under each recipe (a line each; MSE
    solid, CE dashed, SVSL dash-dotted), ε dotted, each recipe's ℓ* a large dot on its line;
    a panel per model."""
    models = _by_label(t)
    if not models:
        return placeholder("synthesis: no selected recipe model (a group without ETF layers)")
    styles = _styles(t, [_recipe(m) for found in models.values() for m, _ in found])
    names = list(models)[:MAX_ROWS]
    fig, axes = query.grid(len(names), 2, "Q1: where variability collapses under each paper's "
                           f"recipe (NC1 ratio, train split, last epoch){_more(len(models))}",
                           panel=(4.4, 3.0))
    for ax, name in zip(axes.flat, names, strict=False):
        for model, d in models[name]:
            if (ratio := curves(t.metrics, model).get("nc1_ratio")) is None:
                continue
            colour, style = styles[_recipe(model)]
            ax.plot(ratio.index, ratio, marker=".", color=colour, linestyle=style,
                    label=f"{_recipe(model)} (ℓ* = {layer_text(d.collapse)})")
            if not math.isnan(d.collapse):
                ax.plot([d.collapse], [ratio.loc[d.collapse]], "o", markersize=8, zorder=5,
                        color=colour, markeredgecolor="black")
        ax.axhline(t.thresholds.collapse_eps, color="black", linestyle=":", linewidth=1)
        ax.set_yscale("log")
        _labels(ax, "layer (0 = input)", r"Tr $\Sigma_W$ / Tr $\Sigma_T$", name)
        ax.legend(fontsize="x-small", title=f"ε = {t.thresholds.collapse_eps:g}; recipe (ℓ*)",
                  title_fontsize="x-small")
    return fig


def q2_depths(t: Tables) -> Figure:
    """Q2: per model, each recipe's collapse layer ℓ*, NCC depth ℓ_NCC and effective depth
    ℓ_eff at the last epoch (a row per recipe; hollow at "none": never reached)."""
    models = _by_label(t)
    if not models:
        return placeholder("synthesis: no selected recipe model (a group without ETF layers)")
    names = list(models)[:MAX_ROWS]
    fig, axes = query.grid(len(names), 2, "Q2: three depths of each recipe model (train split, "
                           f"last epoch){_more(len(models))}",
                           panel=(4.4, 0.9 + 0.45 * max(map(len, models.values()))))
    for ax, name in zip(axes.flat, names, strict=False):
        rows = models[name]
        last = max(d.last for _, d in rows)
        for y, (_, d) in enumerate(rows):
            for offset, (field, (label, colour, marker)) in zip((-0.2, 0.0, 0.2),
                                                                DEPTHS.items(), strict=True):
                missing = math.isnan(value := getattr(d, field))
                ax.plot([last + 1 if missing else value], [y + offset], marker, color=colour,
                        markerfacecolor="none" if missing else colour, markersize=7,
                        linestyle="", label=label)
        ax.set_yticks(range(len(rows)), [_recipe(m) for m, _ in rows], fontsize="x-small")
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xticks(range(int(last) + 2), [*map(str, range(int(last) + 1)), "none"],
                      fontsize="x-small")
        ax.set_xlim(-0.5, last + 1.5)
        _labels(ax, "layer (0 = input)", None, name)
    fig.legend(handles=[Line2D([], [], marker=marker, color=colour, linestyle="",
                               label=f"{label}: {what}")
                        for (label, colour, marker), what in zip(DEPTHS.values(), (
                            f"NC1 ratio < {t.thresholds.collapse_eps:g} from here on",
                            f"NC4 mismatch < {1 - t.thresholds.ncc:g} from here on",
                            f"NCC accuracy ≥ {t.thresholds.ncc:g}"), strict=True)],
               loc="outside lower center", ncol=3, fontsize="small")
    return fig


def q2_depths_through_training(t: Tables) -> Figure:
    """Q2 through training: the three depths at each epoch of the per-epoch metrics, a panel
    per model (rows) and recipe (columns), "none" above the last layer; the interpolation
    epoch grey."""
    models = _by_label(t)
    if t.epoch_metrics.empty or not models:
        return placeholder("synthesis: no per-epoch metrics (train.epoch_metrics) of a "
                           "recipe model")
    names = list(models)[:MAX_ROWS]
    recipes = sorted({_recipe(m) for n in names for m, _ in models[n]}, key=_order(t))
    fig, axes = query.grid(len(names) * len(recipes), len(recipes),
                           "Q2 through training: the depths at each epoch (train split)"
                           + _more(len(models)), panel=(1.9, 2.1))
    for row, name in enumerate(names):
        last = max(d.last for _, d in models[name])
        for col, recipe in enumerate(recipes):
            ax = axes[row, col]
            ax.set_title(f"{recipe}\n{name}" if row == 0 else name, fontsize="x-small")
            _depth_steps(ax, t, next((m for m, _ in models[name] if _recipe(m) == recipe),
                                     None), last)
            if col == 0:
                ax.set_ylabel("layer", fontsize="x-small")
            if row == len(names) - 1:
                ax.set_xlabel("epoch", fontsize="x-small")
    query.legend_below(fig, list(axes.flat))
    return fig


def _depth_steps(ax: Axes, t: Tables, model: Model | None, last: float) -> None:
    """One panel of :func:`q2_depths_through_training`: each depth as a step line against
    the epoch, slightly apart so that equal depths stay visible, "none" at ``last`` + 1."""
    by_epoch = depths_by_epoch(t, model) if model else pd.DataFrame()
    if by_epoch.empty:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes,
                fontsize="x-small")
        return
    for offset, (field, (label, colour, _marker)) in zip((0.12, 0.0, -0.12), DEPTHS.items(),
                                                         strict=True):
        ax.step(by_epoch["epoch"], by_epoch[field].fillna(last + 1) + offset, where="post",
                color=colour, label=label, linewidth=1.4)
    if not math.isnan(interpolated := _interpolation(t, model)):
        ax.axvline(interpolated, color="grey", linestyle=":", linewidth=1,
                   label="interpolation epoch")
    ticks = sorted({*range(0, int(last) + 2, max(1, math.ceil((last + 2) / 6))), int(last) + 1})
    ax.set_yticks(ticks, [str(v) if v <= last else "none" for v in ticks])
    ax.set_ylim(-0.5, last + 1.5)
    ax.tick_params(labelsize="xx-small")


def q3_etf_collapse(t: Tables) -> Figure:
    """Q3: per ETF experiment (group × dataset × architecture), the NC1 ratio per layer of
    the free model and of each k top layers fixed, ℓ* dotted; and ℓ* and the test accuracy
    against k, k* (the linear layers that read collapsed layers of the free model) green."""
    experiments: dict[tuple[str, str], list[EtfCase]] = {}
    for c in etf_cases(t):
        if c.free is not None:
            experiments.setdefault((_recipe(c.model), c.free.label), []).append(c)
    if not experiments:
        return placeholder("synthesis: no ETF experiment (an etf_layers axis on an "
                           "architecture of a recipe group) with its free model")
    shown = list(experiments.items())[:MAX_ROWS]
    fig, axes = query.grid(2 * len(shown), 2, "Q3: top layers fixed to simplex ETFs and the "
                           "collapse layer (train split, last epoch)", panel=(4.4, 2.8))
    for (curve_ax, k_ax), ((recipe, name), group) in zip(axes, shown, strict=False):
        free = group[0].free
        lines = [(0, free, group[0].free_lstar), *((_k(c.model), c.model, c.lstar) for c in
                                                  sorted(group, key=lambda c: _k(c.model)))]
        for i, (k, model, lstar) in enumerate(lines):
            ratio = curves(t.metrics, model).get("nc1_ratio", pd.Series(dtype=float))
            colour = "black" if k == 0 else colormaps["viridis"](i / max(len(lines) - 1, 1))
            curve_ax.plot(ratio.index, ratio, marker=".", color=colour,
                          label=f"k = {k} (ℓ* = {layer_text(lstar)})")
            if not math.isnan(lstar):
                curve_ax.axvline(lstar, color=colour, linestyle=":", linewidth=1)
        curve_ax.axhline(t.thresholds.collapse_eps, color="crimson", linewidth=1)
        curve_ax.set_yscale("log")
        _labels(curve_ax, "layer (0 = input)", "NC1 ratio", f"{name} ({recipe}): NC1 ratio")
        curve_ax.legend(fontsize="x-small", title="top layers fixed", title_fontsize="x-small")
        ks, last = [k for k, _, _ in lines], model_depths(t, free).last
        k_ax.plot(ks, [last + 1 if math.isnan(v) else v for _, _, v in lines], "o-",
                  color="green", label="ℓ* (none: above the last layer)")
        k_ax.set_ylim(-0.5, last + 1.5)
        ticks = sorted({*range(0, int(last) + 1, max(1, math.ceil(last / 5))), int(last) + 1})
        k_ax.set_yticks(ticks, [str(v) if v <= last else "none" for v in ticks])
        k_ax.axvline(group[0].kstar, color="green", alpha=0.4, linewidth=3,
                     label="k*: linear layers reading collapsed layers (free)")
        acc_ax = k_ax.twinx()
        acc_ax.plot(ks, [m.final(t, "final_test_acc") for _, m, _ in lines], "s--",
                    color="tab:blue", label="test accuracy")
        acc_ax.set_ylim(0, 1.02)
        acc_ax.set_ylabel("test accuracy", fontsize="small")
        _labels(k_ax, "top linear layers fixed to ETFs (k)", "ℓ*",
                f"{name} ({recipe}): ℓ* and accuracy")
        handles = [*k_ax.get_legend_handles_labels()[0], *acc_ax.get_legend_handles_labels()[0]]
        k_ax.legend(handles=handles, fontsize="x-small", loc="lower left")
    return fig


def q4_retention(t: Tables) -> Figure:
    """Q4: hierarchy retention ℓ → ℓ+1 (drawn at ℓ + ½) of each analysed recipe model, a
    panel per clustering method, its ℓ* a dotted line in its colour; and the mean retention
    before ℓ* against that from ℓ* on (above the diagonal: higher after the collapse)."""
    found = measured_retention(t)
    if not found:
        return placeholder("synthesis: no feature analysis of a recipe model "
                           "(features.runs names none of them)")
    names = list(dict.fromkeys(r.model.label for r in found))[:MAX_ROWS]
    styles = _styles(t, [_recipe(r.model) for r in found])
    fig, axes = query.grid(3 * len(names), 3, "Q4: hierarchy retention and the collapse layer "
                           "(feature analysis, last epoch)" + _more(len(names)),
                           panel=(3.0, 2.7))
    for row, name in zip(axes, names, strict=False):
        mine = [r for r in found if r.model.label == name]
        for ax, method in zip(row[:2], RETENTION_METHODS, strict=True):
            for r in (r for r in mine if r.method == method):
                colour, style = styles[_recipe(r.model)]
                ax.plot(r.curve.index + 0.5, r.curve, marker=".", color=colour,
                        linestyle=style, label=_recipe(r.model))
                if not math.isnan(r.depths.collapse):
                    ax.axvline(r.depths.collapse, color=colour, linestyle=":", linewidth=1.2)
            ax.set_ylim(0, 1.05)
            _labels(ax, "between layers ℓ and ℓ+1", "retention (eq. 4.1)",
                    f"{name}: {vocabulary.METHOD_LABELS.get(method, method)}")
        scatter = row[2]
        for r in mine:
            if not (math.isnan(r.before) or math.isnan(r.after)):
                scatter.plot(r.before, r.after, "o" if r.method == "cosine" else "s",
                             color=styles[_recipe(r.model)][0], markeredgecolor="black")
        values = [v for r in mine for v in (r.before, r.after) if not math.isnan(v)]
        low = max(0.0, min(values, default=0.0) - 0.05)
        scatter.plot([low, 1.02], [low, 1.02], color="grey", linewidth=0.8)
        scatter.set_xlim(low, 1.02)
        scatter.set_ylim(low, 1.02)
        _labels(scatter, "mean retention before ℓ*", "mean retention from ℓ*",
                f"{name}: ● cosine, ■ ward")
    query.legend_below(fig, [ax for row in axes for ax in row[:2]], ncol=5)
    return fig


FIGURES: dict[str, Callable[[Tables], Figure]] = {
    "q1_collapse_by_recipe": q1_collapse_by_recipe,
    "q2_depths": q2_depths,
    "q2_depths_through_training": q2_depths_through_training,
    "q3_etf_collapse": q3_etf_collapse,
    "q4_retention": q4_retention,
}


def claims(t: Tables) -> pd.DataFrame:
    """The four questions as statements with their measured answers (module docstring)."""
    return claims_frame([*q1_rows(t), *q2_rows(t), *q3_rows(t), *q4_rows(t)])


TABLES: dict[str, Callable[[Tables], pd.DataFrame]] = {
    "claims": claims,
    "depths": depths_table,
    "etf": etf_table,
    "retention": retention_table,
}
