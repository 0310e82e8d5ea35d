"""The cross-paper synthesis: one set of models and datasets trained under each paper's recipe,
every metric of every layer measured in every run, and four questions the papers cannot answer
alone, each answered from the measured numbers (never written in advance).

The recipes are the experiment's groups; the design table gives each one's loss, schedule and
augmentation (:func:`factors`), whatever the group is called. The papers' (:data:`RECIPES`):
MSE with one-cycle (Parker et al. 2023), MSE with step decay (Rangamani et al. 2023, with its
ETF experiment), CE with step decay and augmentation (Galanti et al. 2022), CE and SVSL with
step decay (Ben-Shaul & Dekel 2022). A *recipe model*: a dataset × architecture's selected,
non-diverged runs under one recipe with no layer fixed to an ETF, seeds averaged.

Its depths are layer indices (0: the input; logits left out; NaN: never reached) on the train
split's seed-mean curves at the last epoch (or each epoch of ``train.epoch_metrics``), the first
layer from which on every NC1 ratio Tr Σ_W / Tr Σ_T is below ε = ``thresholds.collapse_eps``
(the collapse layer ℓ*, Rangamani et al.), from which on every NC4 mismatch (nearest class
mean ≠ prediction) is below 1 − ``thresholds.ncc`` (the NCC depth ℓ_NCC, Ben-Shaul & Dekel),
and whose NCC train accuracy reaches ``thresholds.ncc`` (the effective depth ℓ_eff, Galanti).

A claim holds ("Yes") when its criterion holds in more than half of the cases that can tell:

Q1. ℓ* depends on the loss, the schedule, augmentation: per *contrast*, two recipe models of one
    dataset, architecture and selected-axis value (each lr both trained, selected or not:
    :func:`contrast_models`) whose resolved recipes (the design table) differ in that factor's
    settings (:data:`FACTOR_COLUMNS`) and nothing else (a pair that differs in more is refused,
    :class:`ContrastError`, and listed), ℓ*'s shift over the seeds (:func:`lstar_shift`) moves
    when its 95 % t-interval excludes 0, stays within ±:data:`MOVE`, else is not decided.
Q2. ℓ_NCC is at ℓ*, and at ℓ_eff: within :data:`SAME` layers per recipe model (one missing:
    not); through training, ℓ_NCC settles (keeps its final value) no later than ℓ*.
Q3. Top k layers fixed to simplex ETFs move ℓ* (its shift over seeds, as in Q1) against the free
    model (same group, dataset and tapped layers); fixing only k ≤ k* = L − ℓ*(free) + 1
    layers leaves it.
Q4. Hierarchy retention (Lindegaard eq. 4.1, feature analysis, per clustering method) is higher
    over ℓ → ℓ+1 with ℓ ≥ ℓ* than with ℓ < ℓ*; across models (three or more with ℓ*),
    Spearman ρ(ℓ*/L, mean retention) < 0: a deeper collapse, less retention.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from itertools import combinations, groupby

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from nclayers import vocabulary
from nclayers.derived import collapse_layer, effective_depth
from nclayers.papers import Tables, claims_frame, query
from nclayers.papers.query import Model, layer_text
from nclayers.plots import placeholder
from nclayers.vocabulary import Thresholds

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
NO_MODEL = "synthesis: no selected recipe model (a group without ETF layers)"


# --- recipes ---------------------------------------------------------------------------------

def factors(t: Tables) -> dict[str, dict[str, object]]:
    """Group → its loss, schedule and augmentation (whether any ``train.augment.*`` is on), as
    the design table says; a group whose runs differ in one of them is no recipe (left out)."""
    design = t.design
    if not {"group", "train.loss", "train.schedule"} <= set(design):
        return {}
    augment = design[[c for c in design if c.startswith("train.augment.")]].map(
        lambda v: str(v).strip().lower() not in ("", "nan", "none", "0", "0.0", "false"))
    found = pd.DataFrame({"loss": design["train.loss"], "schedule": design["train.schedule"],
                          "augment": augment.any(axis=1)})
    return {group: part.iloc[0].to_dict()
            for group, part in found.groupby(design["group"].astype(str), sort=False)
            if len(part.drop_duplicates()) == 1 and part.notna().all(axis=None)}


# The design columns that make up each factor: a contrast of two recipe models changes these,
# and only these (a trailing "." is a prefix). Everything else in their resolved recipes, the lr
# they were selected at included, must be equal.
FACTOR_COLUMNS = {
    "loss": ("train.loss", "train.mse_reduction", "train.mse_scale", "train.svsl_alpha",
             "train.svsl_gamma"),
    "schedule": ("train.schedule", "train.milestones", "train.lr_decay", "train.warmup_epochs",
                 "train.onecycle_pct", "train.onecycle_div", "train.onecycle_final_div"),
    "augment": ("train.augment.",),
}
# Design columns that are no setting of a recipe: a run's identity, and what is measured when.
NOT_SETTINGS = ("run", "group", "seed", "selected_axes", "compared_axes", "device",
                "train.checkpoints", "train.epoch_metrics.")


class ContrastError(ValueError):
    """Two recipe models that are no one-factor contrast; the message names what differs."""


def _part_of(column: str, names: Sequence[str]) -> bool:
    return any(column == n or (n.endswith(".") and column.startswith(n)) for n in names)


def _factor_of(column: str) -> str:
    """The factor a design column belongs to, or the column itself."""
    return next((f for f, names in FACTOR_COLUMNS.items() if _part_of(column, names)), column)


def _same(a: object, b: object) -> bool:
    return (pd.isna(a) and pd.isna(b)) if pd.isna(a) or pd.isna(b) else str(a) == str(b)


def differences(t: Tables, a: Model, b: Model) -> dict[str, tuple[object, object]]:
    """The settings in which the resolved recipes (design rows) of two models differ."""
    design = t.design.set_index("run") if "run" in t.design else pd.DataFrame()
    if not {a.runs[0], b.runs[0]} <= set(design.index):
        return {}
    ra, rb = design.loc[a.runs[0]], design.loc[b.runs[0]]
    return {c: (ra[c], rb[c]) for c in design.columns
            if not _part_of(c, NOT_SETTINGS) and not _same(ra[c], rb[c])}


def contrast(t: Tables, a: Model, b: Model) -> str:
    """The one factor (of :data:`FACTORS`) in which models ``a`` and ``b`` differ; a
    :class:`ContrastError` names everything they differ in where it is more, or nothing."""
    diff = differences(t, a, b)
    named = list(dict.fromkeys(_factor_of(c) for c in diff))
    if len(named) == 1 and named[0] in FACTORS:
        return named[0]
    words = [FACTORS.get(n, n) for n in named]
    values = [f"{c} {va} vs {vb}" for c, (va, vb) in diff.items() if _factor_of(c) not in FACTORS]
    raise ContrastError(
        f"{_name(a, False)}, {_recipe(a)} vs {_recipe(b)}: " + ("the same recipe" if not named else
                                         f"not a one-factor contrast: they differ in "
                                         f"{_and_list(words)}" + (f" ({'; '.join(values)})"
                                                                if values else "")))


def _and_list(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def contrasts(t: Tables, models: Sequence[Model]
              ) -> tuple[dict[str, list[tuple[Model, Model]]], dict[str, list[str]]]:
    """Per factor, the pairs of ``models`` (same dataset, architecture and selected axes, e.g.
    the lr) that differ in it only; and per factor, the refusals of pairs that differ in it
    and in something else."""
    pairs: dict[str, list[tuple[Model, Model]]] = {f: [] for f in FACTORS}
    refused: dict[str, list[str]] = {f: [] for f in FACTORS}
    for a, b in combinations(models, 2):
        if _setting(a) != _setting(b):  # another dataset, architecture or lr: no candidate
            continue
        try:
            pairs[contrast(t, a, b)].append((a, b))
        except ContrastError as why:
            for factor in dict.fromkeys(map(_factor_of, differences(t, a, b))):
                if factor in FACTORS:
                    refused[factor].append(str(why))
    return pairs, refused


def _setting(m: Model) -> dict:
    """A model's key less its recipe: dataset, architecture and the selected axes' values."""
    return {k: v for k, v in m.key.items() if k != "group"}


def _selected_axes(t: Tables) -> list[str]:
    """The axes any group selects over (the design's ``selected_axes``, e.g. lr)."""
    if "selected_axes" not in t.design:
        return []
    named = t.design["selected_axes"].dropna().astype(str).str.split(",").explode()
    return list(dict.fromkeys(a.strip() for a in named if a.strip()))


def contrast_models(t: Tables) -> list[tuple[Model, Depths]]:
    """The recipe models at each value of the selected axes (each lr of a sweep), from every
    run that did not diverge, selected or not, with their depths: two recipes meet at each lr
    they share, so a contrast never compares two lrs (each recipe's own best would)."""
    runs, rank = query.runs(t, selected=None), _order(t)
    runs = runs[query.etf_layers(runs) == 0]
    axes = [a for a in _selected_axes(t) if a in runs]
    found = query.models(runs, by=("group", "dataset", "arch", *axes),
                         label=lambda k: vocabulary.model_label(str(k["dataset"]), str(k["arch"])))
    found.sort(key=lambda m: (m.label, [str(m.key[a]) for a in axes], rank(_recipe(m))))
    return [(m, depths(curves(t.metrics, m), t.thresholds)) for m in found]


def _order(t: Tables) -> Callable[[str], tuple[int, str]]:
    """A recipe's sort key: its factors' place in :data:`RECIPES`, then its name."""
    ranks = {recipe: list(RECIPES).index(key) for recipe, f in factors(t).items()
             if (key := tuple(f.values())) in RECIPES}
    return lambda recipe: (ranks.get(recipe, len(RECIPES)), recipe)


# --- models and their depths -----------------------------------------------------------------
# A model (query.Model) of (group, dataset, arch, etf_layers): its recipe is the group, and
# etf_layers (k) its top linear layers fixed to ETFs.

def _recipe(model: Model) -> str:
    return str(model.key["group"])


def _name(model: Model, recipe: bool = True) -> str:
    """Its name in the claims' texts: ``mse_step digits/mlp`` (``recipe``) or ``digits/mlp``,
    then its selected axes' values where it has them (``lr 0.03``, :func:`contrast_models`)."""
    axes = "".join(f" {k} {v:g}" if isinstance(v, float) else f" {k} {v}"
                   for k, v in model.key.items()
                   if k not in ("group", "dataset", "arch", "etf_layers"))
    return f"{_recipe(model) + ' ' if recipe else ''}{model.dataset}/{model.arch}{axes}"


def curves(table: pd.DataFrame, model: Model, how: str = "mean") -> pd.DataFrame:
    """Seed means (``how="std"``: their sd, ddof 1) per layer index (rows) of each metric
    (columns) of ``model``'s train rows of ``table`` without the logits, at each run's last
    epoch there."""
    return model.last(table, logits=False).astype({"layer_index": int}).pivot_table(
        index="layer_index", columns="metric", values="value", aggfunc=how,
        dropna=False).sort_index()


def _ratio_line(ax: Axes, t: Tables, model: Model, **style) -> pd.Series:
    """``model``'s NC1 ratio per layer, its seeds' mean in a ± sd band; the mean."""
    ratio = curves(t.metrics, model).get("nc1_ratio", pd.Series(dtype=float))
    spread = curves(t.metrics, model, "std").get("nc1_ratio")
    query.mean_line(ax, ratio, spread, marker=".", **style)
    return ratio


# The depths are of seed-mean curves without the logits, so computed here (nclayers.derived's
# functions), not read from query.derived's per-run rows of every layer.
@dataclass(frozen=True)
class Depths:
    collapse: float  # ℓ*
    ncc: float  # ℓ_NCC
    effective: float  # ℓ_eff
    last: float  # the deepest layer measured


def depths(curve: pd.DataFrame, thresholds: Thresholds) -> Depths:
    """ℓ*, ℓ_NCC and ℓ_eff of one model's per-layer curves (see the module docstring)."""
    ratio, accuracy, mismatch = (curve.get(m, pd.Series(dtype=float)).dropna()
                                 for m in ("nc1_ratio", "ncc_accuracy", "nc4_mismatch"))
    ncc = thresholds.ncc
    return Depths(collapse_layer(ratio, thresholds.collapse_eps),
                  collapse_layer(mismatch, 1 - ncc), effective_depth(accuracy, ncc),
                  float(curve.index.max()))


def recipe_models(t: Tables, etf: bool = False) -> list[tuple[Model, Depths]]:
    """The recipe models (``etf``: the models with k > 0 instead) with their depths, by name,
    then in the recipes' order, then by k."""
    runs, rank = query.runs(t), _order(t)
    runs = runs.assign(etf_layers=query.etf_layers(runs))
    found = query.models(runs[(runs["etf_layers"] > 0) == etf],
                         by=("group", "dataset", "arch", "etf_layers"),
                         label=lambda k: vocabulary.model_label(str(k["dataset"]), str(k["arch"])))
    found.sort(key=lambda m: (m.label, rank(_recipe(m)), int(m.key["etf_layers"])))
    return [(m, depths(curves(t.metrics, m), t.thresholds)) for m in found]


def depths_by_epoch(t: Tables, model: Model) -> pd.DataFrame:
    """The depths of ``model`` at each epoch of its per-epoch metrics: epoch, collapse, ncc,
    effective (empty without ``train.epoch_metrics``)."""
    rows = model.rows(t.epoch_metrics, logits=False)
    out = [] if rows.empty else [
        {"epoch": int(epoch), **asdict(depths(curves(part, model), t.thresholds))}
        for epoch, part in rows.groupby("epoch")]
    return pd.DataFrame(out, columns=["epoch", "collapse", "ncc", "effective"])


def settle_epoch(series: pd.Series) -> float:
    """The first epoch (index) from which on ``series`` keeps its last value (NaN counts as
    a value: "not reached")."""
    values = series.sort_index()
    same = values.isna() if pd.isna(values.iloc[-1]) else values == values.iloc[-1]
    return float(same[::-1].cummin()[::-1].idxmax())  # the first of the last run of "same"


@dataclass(frozen=True)
class Effect:
    """The shift of a depth between two models over their seeds (paired by seed)."""

    n: int  # seeds where at least one of the two reaches the depth
    mean: float
    sd: float  # over the seeds (ddof 1); NaN with one
    low: float  # the 95 % t-interval of the mean (the mean itself with one seed)
    high: float
    moved: bool | None  # interval excludes 0: True; within ±MOVE: False; else not decided

    def text(self, symbol: str = "Δℓ*") -> str:
        if self.n == 0:
            return f"{symbol}: neither reaches it in any seed"
        if self.n == 1:
            return f"{symbol} = {self.mean:+g} (n = 1)"
        return (f"{symbol} = {self.mean:+.3g} ± {self.sd:.2g} (95 % CI {self.low:+.3g} to "
                f"{self.high:+.3g}, n = {self.n})")


def effect(deltas: Sequence[float]) -> Effect:
    """The mean shift, its sd and 95 % t-interval over seeds, and whether it moves: the interval
    excludes 0 (True), lies within ±MOVE (False), or neither (None: not decided)."""
    from scipy.stats import t as student

    n = len(deltas)
    if n == 0:
        return Effect(0, math.nan, math.nan, math.nan, math.nan, None)
    mean = float(np.mean(deltas))
    sd = float(np.std(deltas, ddof=1)) if n > 1 else math.nan
    half = float(student.ppf(0.975, n - 1)) * sd / math.sqrt(n) if n > 1 else 0.0
    low, high = mean - half, mean + half
    moved = True if low > 0 or high < 0 else False if low > -MOVE and high < MOVE else None
    return Effect(n, mean, sd, low, high, moved)


def seed_lstars(t: Tables, model: Model) -> dict[int, tuple[float, float]]:
    """Seed → (ℓ*, L) of each of ``model``'s runs alone (ℓ* NaN: not reached)."""
    seeds = t.runs.set_index("run")["seed"]
    out = {}
    for run in model.runs:
        d = depths(curves(t.metrics, replace(model, runs=(run,))), t.thresholds)
        out[int(seeds[run])] = (d.collapse, d.last)
    return out


def seed_lstar_text(t: Tables, model: Model) -> str:
    """``model``'s ℓ* in each seed, in seed order ("4, 5"; "none": not reached)."""
    found = seed_lstars(t, model)
    return ", ".join(layer_text(found[seed][0]) for seed in sorted(found))


def lstar_shift(t: Tables, a: Model, b: Model) -> Effect:
    """ℓ*(b) − ℓ*(a) over the seeds both trained, paired by seed; a model that does not reach
    ℓ* counts it at L + 1 (one past its deepest layer); a seed where neither does, none."""
    la, lb = seed_lstars(t, a), seed_lstars(t, b)

    def at(depth: tuple[float, float]) -> float:
        return depth[1] + 1 if math.isnan(depth[0]) else depth[0]

    return effect([at(lb[s]) - at(la[s]) for s in sorted(la.keys() & lb.keys())
                   if not (math.isnan(la[s][0]) and math.isnan(lb[s][0]))])


def _interpolation(t: Tables, model: Model) -> float:
    """The mean interpolation epoch of ``model``'s runs (NaN if any never interpolates)."""
    epochs = query.derived(t, "interpolation_epoch").reindex(list(model.runs))
    return float(np.mean(epochs.to_numpy()))


# --- tables ----------------------------------------------------------------------------------

def depths_table(t: Tables) -> pd.DataFrame:
    """Q1, Q2: per recipe model at the last epoch, its recipe, the paper whose loss, schedule and
    augmentation it has (a contrast recipe shares them with one), its deepest layer L, the three
    depths, when it interpolates and its final accuracies."""
    known, rows = factors(t), []
    for m, d in recipe_models(t):
        f = known.get(_recipe(m), {})
        schedule = str(f.get("schedule", ""))
        rows.append((m.dataset, m.arch, _recipe(m), RECIPES.get(tuple(f.values()), ""),
                     f.get("loss", ""), SCHEDULES.get(schedule, schedule), d.last, d.collapse,
                     d.ncc, d.effective, _interpolation(t, m), m.final(t, "final_train_acc"),
                     m.final(t, "final_test_acc")))
    return pd.DataFrame(rows, columns=["dataset", "arch", "recipe", "factors of", "loss",
                                       "schedule", "L", "ℓ*", "ℓ_NCC", "ℓ_eff",
                                       "interpolation epoch", "train acc", "test acc"])


@dataclass(frozen=True)
class EtfCase:
    model: Model
    k: int  # its top linear layers fixed to ETFs
    free: Model | None
    lstar: float  # ℓ* with k layers fixed
    free_lstar: float
    kstar: float  # L − ℓ*(free) + 1: the linear layers that read collapsed layers
    shift: Effect  # ℓ*(fixed) − ℓ*(free) over the seeds both trained


def etf_cases(t: Tables) -> list[EtfCase]:
    """Each ETF model against its free model: the recipe model of its group and dataset with
    the same tapped layers (the same architecture without fixed layers); none unless exactly
    one fits (the same architecture label first)."""
    def names(m: Model) -> dict:
        rows = m.rows(t.metrics, logits=False).drop_duplicates("layer_index")
        return dict(zip(rows["layer_index"], rows["layer"], strict=True))

    free, out = recipe_models(t), []
    for model, d in recipe_models(t, etf=True):
        fits = [(f, fd) for f, fd in free if _recipe(f) == _recipe(model)
                and f.dataset == model.dataset and names(f) == names(model)]
        chosen = [(f, fd) for f, fd in fits if f.arch == model.arch] or fits
        ref, ref_d = chosen[0] if len(chosen) == 1 else (None, Depths(*[math.nan] * 4))
        out.append(EtfCase(model, int(model.key["etf_layers"]), ref, d.collapse,
                           ref_d.collapse, ref_d.last - ref_d.collapse + 1,
                           lstar_shift(t, ref, model) if ref is not None else effect([])))
    return out


def etf_table(t: Tables) -> pd.DataFrame:
    """Q3: per ETF run, ℓ* with k top layers fixed against the free model's, and the final
    accuracies of both."""
    rows = [(c.model.dataset, c.model.arch, _recipe(c.model), c.free.arch if c.free else
             "(none)", c.k, c.kstar, c.free_lstar, c.lstar,
             c.free.final(t, "final_test_acc") if c.free else math.nan,
             c.model.final(t, "final_train_acc"), c.model.final(t, "final_test_acc"))
            for c in etf_cases(t)]
    return pd.DataFrame(rows, columns=["dataset", "arch", "recipe", "free model", "k", "k*",
                                       "ℓ* free", "ℓ* fixed", "test acc free",
                                       "train acc fixed", "test acc fixed"])


@dataclass(frozen=True)
class Retention:  # of one analysed recipe model under one clustering method
    model: Model
    method: str
    depths: Depths
    curve: pd.Series  # seed-mean retention ℓ → ℓ+1 by ℓ, the last analysed epoch
    spread: pd.Series  # its sd over the seeds (NaN with one)
    before: float  # mean over ℓ < ℓ*
    after: float  # mean over ℓ ≥ ℓ*


def measured_retention(t: Tables) -> list[Retention]:
    """Each analysed recipe model's retention per method (by ℓ, the layer index it starts
    from) and its means before ℓ* and from it."""
    table, out = query.feature_table(t, "retention"), []
    if table.empty:
        return []
    for model, d in recipe_models(t):
        for method in RETENTION_METHODS:
            rows = table[table["run"].isin(model.runs) & (table["method"] == method)]
            by_layer = rows.groupby("index_from")["retention"]
            curve = by_layer.mean().sort_index().astype(float)
            known = curve.dropna()  # ℓ* NaN: no transition on either side (means NaN)
            before, after = known[known.index < d.collapse], known[known.index >= d.collapse]
            if not curve.empty:
                out.append(Retention(model, method, d, curve, by_layer.std().sort_index(),
                                     float(before.mean()), float(after.mean())))
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

def _gaps(pairs: Iterable[tuple[float, float]]) -> list[float]:
    """How many layers apart each pair of depths is: inf where only one exists; a pair of
    missing depths cannot tell (left out)."""
    return [math.inf if math.isnan(a) or math.isnan(b) else abs(a - b) for a, b in pairs
            if not (math.isnan(a) and math.isnan(b))]


def _row(text: str, where: str, holds: bool | None, answer: str, details: Sequence[str],
         criterion: str, seeds: str | None = None) -> dict:
    """A claims row whose measured text gives the answer ("Yes"/"No"), the numbers, then the
    criterion; ``seeds``: how it weighed the seeds itself (``query.claim``)."""
    yes = "Cannot tell" if holds is None else ("Yes" if holds else "No")
    numbers = " (" + "; ".join(details) + ")" if details else ""
    return query.claim(text, where, f"{yes}: {answer}{numbers}. Criterion: {criterion}", holds,
                       seeds)


def _told(text: str, where: str, told: Sequence[bool], yes: str, no: str, cases: str, none: str,
          details: Sequence[str], criterion: str, more: str = "", seeds: str | None = None
          ) -> dict:
    """A claims row that holds when more than half of the cases ``told`` do; its answer: ``yes``
    or ``no`` in "k of n" ``cases`` (those that side with it), then ``more``; ``none`` without
    a case."""
    holds = query.majority(told)
    sided = sum(told) if holds else len(told) - sum(told)
    answer = f"{yes if holds else no} in {sided} of {len(told)} {cases}{more}" if told else none
    return _row(text, where, holds, answer, details, criterion, seeds)


REFUSALS_SHOWN = 3  # refused pairs a claim lists by name (the rest counted)


def _refusals(refused: list[str], words: str) -> list[str]:
    """The first :data:`REFUSALS_SHOWN` refused pairs by name, the others counted."""
    more = len(refused) - REFUSALS_SHOWN
    return ([f"refused, {why}" for why in refused[:REFUSALS_SHOWN]]
            + [f"{more} more pairs refused: they differ in {words} and in more"] * (more > 0))


def _undecided(wide: int, cases: int, what: str) -> str:
    """Why no case decides: ``wide`` of the ``cases`` have a shift whose interval covers 0 and
    reaches past ±MOVE; in the others neither model reaches ℓ*."""
    parts = [f"{wide} with a shift whose 95 % interval covers 0 and reaches past ±{MOVE}"] * bool(
        wide) + [f"{cases - wide} where neither model reaches ℓ*"] * bool(cases - wide)
    return f"no {what} is decided: " + ", ".join(parts)


def q1_rows(t: Tables) -> list[dict]:
    """Q1: per factor, does ℓ* move between recipe models that differ in it only?"""
    found = dict(contrast_models(t))
    pairs, refused = contrasts(t, list(found))
    rows = []
    for factor, words in FACTORS.items():
        shifts = [(a, b, lstar_shift(t, a, b)) for a, b in pairs[factor]]
        told = [e.moved for *_, e in shifts if e.moved is not None]
        open_ = sum(e.moved is None and e.n > 0 for *_, e in shifts)
        rows.append(_told(
            f"The collapse layer ℓ* depends on {words}",
            "Q1; Parker §3, Rangamani §5, Galanti §4, Ben-Shaul §6", told,
            f"ℓ* moves with {words}", f"ℓ* does not move with {words}", "decided contrasts",
            (_undecided(open_, len(shifts), "contrast") if pairs[factor] else
             f"no two recipe models differ in {words} only"),
            [f"{_name(a, False)}: ℓ* per seed {_recipe(a)} {seed_lstar_text(t, a)} → "
             f"{_recipe(b)} {seed_lstar_text(t, b)}, {e.text()}" for a, b, e in shifts]
            + _refusals(refused[factor], words),
            f"per contrast (two recipe models of one dataset and architecture whose resolved "
            f"recipes, the lr included, differ in {words} only), ℓ*'s shift over the seeds "
            f"(paired by seed; not reached: L + 1) moves when its 95 % t-interval excludes 0 and "
            f"stays when it lies within ±{MOVE}, else it is not decided; ℓ* depends on {words} "
            "when it moves in more than half of the decided contrasts",
            f"; {open_} not decided" if open_ else "",
            seeds=f"{max((e.n for *_, e in shifts), default=0)} together, by t-interval"))
    return rows


def q2_rows(t: Tables) -> list[dict]:
    """Q2: ℓ_NCC against ℓ* and ℓ_eff at the last epoch, and which settles first."""
    eps, ncc = t.thresholds.collapse_eps, t.thresholds.ncc
    rows, models = [], recipe_models(t)  # each model's depths: computed once
    for other, claim, where, criterion in (
            ("collapse", "variability collapse (ℓ*)", "Rangamani §4",
             f"ℓ_NCC (NC4 mismatch < {1 - ncc:g} from here on) and ℓ* (NC1 ratio < {eps:g} "
             "from here on)"),
            ("effective", "the effective depth (ℓ_eff)", "Galanti Def. 1",
             f"ℓ_NCC and ℓ_eff (first layer with NCC train accuracy ≥ {ncc:g})")):
        label = DEPTHS[other][0]
        found = [(m, d.ncc, getattr(d, other)) for m, d in models]
        diffs = [a - b for _, a, b in found if not (math.isnan(a) or math.isnan(b))]
        diff = float(np.mean(diffs)) if diffs else math.nan
        more = "" if not diffs else "; on average NCC separability is reached " + (
            "at about the same layer" if abs(diff) < 0.5 else
            f"{abs(diff):.1f} layers {'deeper' if diff > 0 else 'shallower'} than {label}")
        rows.append(_told(
            f"NCC separability (ℓ_NCC) is reached at the same depth as {claim}",
            f"Q2; Ben-Shaul Def. 5, {where}",
            [g <= SAME for g in _gaps((a, b) for _, a, b in found)],
            f"ℓ_NCC is within {SAME} layer of {label}",
            f"ℓ_NCC is not within {SAME} layer of {label}", "recipe models",
            f"no recipe model has ℓ_NCC or {label}",
            [f"{_name(m)}: ℓ_NCC {layer_text(a)}, {label} {layer_text(b)}" for m, a, b in found],
            f"{criterion} within {SAME} layer in more than half of the recipe models; one of "
            "them missing: not the same", more))
    # Through training: the epochs from which on ℓ_NCC and ℓ* keep their final values.
    told, details = [], []
    for model, _ in models:
        by_epoch = depths_by_epoch(t, model).set_index("epoch")
        if by_epoch.empty:
            continue
        if by_epoch[["ncc", "collapse"]].iloc[-1].isna().all():
            details.append(f"{_name(model)}: neither reached")
            continue
        ncc, col = settle_epoch(by_epoch["ncc"]), settle_epoch(by_epoch["collapse"])
        told.append(bool(ncc <= col))
        details.append(f"{_name(model)}: ℓ_NCC settles at epoch {int(ncc)}, ℓ* at {int(col)}")
    return [*rows, _told(
        "During training, NCC separability settles at its final depth no later than "
        "variability collapse does", "Q2; Ben-Shaul Conj. 8, Fig. 2", told,
        "ℓ_NCC reaches its final layer no later than ℓ*",
        "ℓ_NCC reaches its final layer later than ℓ*", "recipe models",
        "no per-epoch metrics of a recipe model that reaches a depth", details,
        "the first epoch from which ℓ_NCC keeps its final value is ≤ that of ℓ* (per-epoch "
        "metrics), in more than half of the recipe models")]


def q3_rows(t: Tables) -> list[dict]:
    """Q3: does fixing the top k layers to ETFs move ℓ*; does fixing only layers that read
    collapsed layers (k ≤ k*) leave it in place?"""
    cases = [c for c in etf_cases(t) if c.free is not None]
    inside = [c for c in cases if c.k <= c.kstar]  # k* NaN: none
    where = "Q3; Rangamani §5.3, Fig. 7"

    def none(found: list[EtfCase]) -> str:
        return _undecided(sum(c.shift.moved is None and c.shift.n > 0 for c in found),
                          len(found), "ETF run")

    def text(c: EtfCase) -> str:
        return (f"{_name(c.model, False)} k={c.k}: ℓ* per seed {seed_lstar_text(t, c.free)} → "
                f"{seed_lstar_text(t, c.model)}, {c.shift.text()}, k* = {layer_text(c.kstar)}, "
                "test acc "
                f"{c.free.final(t, 'final_test_acc'):.3f} → "
                f"{c.model.final(t, 'final_test_acc'):.3f}")

    seeds = f"{max((c.shift.n for c in cases), default=0)} together, by t-interval"
    rule = (f"ℓ*'s shift over the seeds (paired by seed; not reached: L + 1) moves when its 95 % "
            f"t-interval excludes 0, stays when it lies within ±{MOVE}, else it is not decided")
    return [
        _told("Fixing the top linear layers to simplex ETFs moves the collapse layer", where,
              [c.shift.moved for c in cases if c.shift.moved is not None],
              "fixing top layers moves ℓ*", "fixing top layers leaves ℓ* in place",
              "decided ETF runs", none(cases) if cases else
              "no ETF run (an etf_layers axis) with a free model", [text(c) for c in cases],
              f"per ETF run against its free model, {rule}; it moves in more than half of the "
              "decided ETF runs", seeds=seeds),
        _told("Fixing only the layers that read collapsed layers (k ≤ k* = L − ℓ* + 1) leaves "
              "the collapse layer in place", where,
              [not c.shift.moved for c in inside if c.shift.moved is not None],
              "ℓ* stays", "ℓ* moves", "decided ETF runs with k ≤ k*", none(inside) if inside else
              "no ETF run fixes only layers that read collapsed layers (k ≤ k*)",
              [text(c) for c in inside], f"per ETF run with k ≤ k*, {rule}; it stays in more "
              "than half of the decided ones", seeds=seeds)]


def q4_rows(t: Tables) -> list[dict]:
    """Q4: retention before and from ℓ*; and across models, ℓ*/L against mean retention."""
    found = measured_retention(t)
    where = "Q4; Lindegaard §4.3.3, eq. 4.1, Table 4.3.2"
    told, details = [], []
    for r in found:
        head, lstar = f"{_name(r.model)} {r.method}", layer_text(r.depths.collapse)
        if math.isnan(r.before) or math.isnan(r.after):
            details.append(f"{head}: ℓ* {lstar}, no split")
            continue
        told.append(bool(r.after > r.before))
        details.append(f"{head}: {r.before:.2f} before ℓ* = {lstar}, {r.after:.2f} from it")
    higher = "retention is {}higher from ℓ* on than before it"
    # Per model with ℓ*: ℓ*/L and the mean retention over all transitions of both methods.
    points = pd.DataFrame([(_name(r.model), r.depths.collapse / r.depths.last, r.curve.mean())
                           for r in found if not math.isnan(r.depths.collapse)],
                          columns=["model", "depth", "retention"])
    points = points.groupby("model", sort=False).agg(depth=("depth", "first"),
                                                     retention=("retention", "mean"))
    rho = query.spearman(points["depth"], points["retention"])
    trend = "less" if rho < 0 else "more" if rho > 0 else "the same"
    return [_told("Hierarchy retention is higher from the collapse layer on than before it",
                  where, told, higher.format(""), higher.format("not "), "model × method cases",
                  "no analysed model with layers on both sides of ℓ*" if found else
                  "no feature analysis of a recipe model (features.runs)", details,
                  "mean retention ℓ → ℓ+1 over ℓ ≥ ℓ* above that over ℓ < ℓ*, in more than half "
                  "of the recipe models × clustering methods"),
            _row("Across recipes and models, a deeper collapse layer goes with lower "
                 "hierarchy retention", where, None if math.isnan(rho) else bool(rho < 0),
                 f"{len(points)} analysed models with ℓ*; the correlation needs at least 3 with "
                 "distinct values" if math.isnan(rho) else f"across {len(points)} models "
                 f"Spearman ρ(ℓ*/L, mean retention) = {rho:+.2f}: a deeper collapse goes with "
                 f"{trend} retention", [f"{name}: ℓ*/L {rel:.2f}, retention {ret:.2f}"
                                        for name, rel, ret in points.itertuples()],
                 "Spearman correlation of ℓ*/L with the mean retention over all transitions "
                 "(both methods) below 0, over the analysed models with ℓ*")]


# --- figures ---------------------------------------------------------------------------------

def _styles(t: Tables, recipes: Sequence[str]) -> dict[str, tuple[object, str]]:
    """Per recipe its colour, the same in every figure, and line style: MSE solid, CE dashed,
    SVSL dash-dotted (the loss at a glance)."""
    known = factors(t)
    return {r: (colormaps["tab10"](i % 10),
                {"ce": "--", "svsl": "-."}.get(str(known.get(r, {}).get("loss")), "-"))
            for i, r in enumerate(sorted(dict.fromkeys(recipes), key=_order(t)))}


def _by_label(t: Tables) -> tuple[dict[str, list[tuple[Model, Depths]]], list[str], str]:
    """The recipe models with their depths by name (:func:`recipe_models` sorts by it), the
    names a figure shows, and its title's note on the others."""
    models = {name: list(found)
              for name, found in groupby(recipe_models(t), key=lambda pair: pair[0].label)}
    more = len(models) - MAX_ROWS
    note = f" ({more} more models in the tables)" if more > 0 else ""
    return models, list(models)[:MAX_ROWS], note


def q1_collapse_by_recipe(t: Tables) -> Figure:
    """Q1: the NC1 ratio per layer at the last epoch under each recipe (MSE solid, CE dashed,
    SVSL dash-dotted), ε dotted, each recipe's ℓ* a large dot on its line; a panel per model."""
    models, names, more = _by_label(t)
    if not models:
        return placeholder(NO_MODEL)
    styles = _styles(t, [_recipe(m) for found in models.values() for m, _ in found])
    fig, axes = query.grid(len(names), 2, "Q1: where variability collapses under each recipe\n"
                           f"(NC1 ratio, train split, last epoch){more}",
                           panel=(4.4, 3.0))
    for ax, name in zip(axes.flat, names, strict=False):
        for model, d in models[name]:
            if "nc1_ratio" not in curves(t.metrics, model):
                continue
            colour, style = styles[_recipe(model)]
            ratio = _ratio_line(ax, t, model, color=colour, linestyle=style,
                                label=f"{_recipe(model)} (ℓ* = {layer_text(d.collapse)})")
            if not math.isnan(d.collapse):
                ax.plot([d.collapse], [ratio.loc[d.collapse]], "o", markersize=8, zorder=5,
                        color=colour, markeredgecolor="black")
        ax.axhline(t.thresholds.collapse_eps, color="black", linestyle=":", linewidth=1)
        ax.set_yscale("log")
        labels(ax, "layer (0 = input)", r"Tr $\Sigma_W$ / Tr $\Sigma_T$", name)
        ax.legend(fontsize="x-small", title=f"ε = {t.thresholds.collapse_eps:g}; recipe (ℓ*)",
                  title_fontsize="x-small")
    return fig


def q2_depths(t: Tables) -> Figure:
    """Q2: per model, each recipe's ℓ*, ℓ_NCC and ℓ_eff at the last epoch (a row per recipe;
    hollow at "none": never reached)."""
    models, names, more = _by_label(t)
    if not models:
        return placeholder(NO_MODEL)
    fig, axes = query.grid(len(names), 2, "Q2: three depths of each recipe model (train split, "
                           f"last epoch){more}",
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
        layer_axis(ax, "x", last, 1, fontsize="x-small")
        labels(ax, "layer (0 = input)", None, name)
    meaning = (f"NC1 ratio < {t.thresholds.collapse_eps:g} from here on",
               f"NC4 mismatch < {1 - t.thresholds.ncc:g} from here on",
               f"NCC accuracy ≥ {t.thresholds.ncc:g}")
    fig.legend(handles=[Line2D([], [], marker=marker, color=colour, linestyle="",
                               label=f"{label}: {what}")
                        for (label, colour, marker), what in zip(DEPTHS.values(), meaning,
                                                                 strict=True)],
               loc="outside lower center", ncol=3, fontsize="small")
    return fig


def q2_depths_through_training(t: Tables) -> Figure:
    """Q2 through training: the depths at each epoch (step lines slightly apart, so that equal
    depths stay visible), a panel per model (rows) and recipe (columns); interpolation grey."""
    models, names, more = _by_label(t)
    if t.epoch_metrics.empty or not models:
        return placeholder("synthesis: no per-epoch metrics (train.epoch_metrics) of a "
                           "recipe model")
    recipes = sorted({_recipe(m) for n in names for m, _ in models[n]}, key=_order(t))
    fig, axes = query.grid(len(names) * len(recipes), len(recipes),
                           "Q2 through training: the depths at each epoch (train split)"
                           + more, panel=(1.9, 2.1))
    for row, name in enumerate(names):
        last = max(d.last for _, d in models[name])
        for col, recipe in enumerate(recipes):
            ax = axes[row, col]
            ax.set_title(f"{recipe}\n{name}" if row == 0 else name, fontsize="x-small")
            ax.set_ylabel("layer" if col == 0 else "", fontsize="x-small")
            ax.set_xlabel("epoch" if row == len(names) - 1 else "", fontsize="x-small")
            model = next((m for m, _ in models[name] if _recipe(m) == recipe), None)
            by_epoch = depths_by_epoch(t, model) if model else pd.DataFrame()
            if by_epoch.empty:
                ax.text(0.5, 0.5, "not measured", ha="center", va="center",
                        transform=ax.transAxes, fontsize="x-small")
                continue
            for offset, (field, (label, colour, _)) in zip((0.12, 0.0, -0.12), DEPTHS.items(),
                                                           strict=True):
                ax.step(by_epoch["epoch"], by_epoch[field].fillna(last + 1) + offset,
                        where="post", color=colour, label=label, linewidth=1.4)
            if not math.isnan(interpolated := _interpolation(t, model)):
                ax.axvline(interpolated, color="grey", linestyle=":", linewidth=1,
                           label="interpolation epoch")
            layer_axis(ax, "y", last, max(1, math.ceil((last + 2) / 6)))
            ax.tick_params(labelsize="xx-small")
    query.legend_below(fig, list(axes.flat))
    return fig


def q3_etf_collapse(t: Tables) -> Figure:
    """Q3: per ETF experiment, the NC1 ratio per layer of the free model and with each k top
    layers fixed, ℓ* dotted; and ℓ* and the test accuracy against k, k* green."""
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
        lines = [(0, free, group[0].free_lstar),
                 *((c.k, c.model, c.lstar) for c in sorted(group, key=lambda c: c.k))]
        for i, (k, model, lstar) in enumerate(lines):
            colour = "black" if k == 0 else colormaps["viridis"](i / max(len(lines) - 1, 1))
            _ratio_line(curve_ax, t, model, color=colour,
                        label=f"k = {k} (ℓ* = {layer_text(lstar)})")
            if not math.isnan(lstar):
                curve_ax.axvline(lstar, color=colour, linestyle=":", linewidth=1)
        curve_ax.axhline(t.thresholds.collapse_eps, color="crimson", linewidth=1)
        curve_ax.set_yscale("log")
        labels(curve_ax, "layer (0 = input)", "NC1 ratio", f"{name} ({recipe}): NC1 ratio")
        curve_ax.legend(fontsize="x-small", title="top layers fixed", title_fontsize="x-small")
        ks, last = [k for k, _, _ in lines], float(curves(t.metrics, free).index.max())
        k_ax.plot(ks, [last + 1 if math.isnan(v) else v for _, _, v in lines], "o-",
                  color="green", label="ℓ* (none: above the last layer)")
        layer_axis(k_ax, "y", last, max(1, math.ceil(last / 5)))
        k_ax.axvline(group[0].kstar, color="green", alpha=0.4, linewidth=3,
                     label="k*: linear layers reading collapsed layers (free)")
        acc_ax = k_ax.twinx()
        accuracy = [t.runs.loc[t.runs["run"].isin(m.runs), "final_test_acc"] for _, m, _ in lines]
        query.mean_line(acc_ax, pd.Series([a.mean() for a in accuracy], index=ks),
                        pd.Series([a.std() for a in accuracy], index=ks), marker="s",
                        linestyle="--", color="tab:blue", label="test accuracy")
        acc_ax.set_ylim(0, 1.02)
        acc_ax.set_ylabel("test accuracy", fontsize="small")
        labels(k_ax, "top linear layers fixed to ETFs (k)", "ℓ*",
                f"{name} ({recipe}): ℓ* and accuracy")
        handles = [*k_ax.get_legend_handles_labels()[0], *acc_ax.get_legend_handles_labels()[0]]
        k_ax.legend(handles=handles, fontsize="x-small", loc="lower left")
    return fig


def q4_retention(t: Tables) -> Figure:
    """Q4: retention ℓ → ℓ+1 (at ℓ + ½) of each analysed recipe model per clustering method, ℓ*
    dotted; and the mean retention before ℓ* against that from it (above the diagonal: higher)."""
    found = measured_retention(t)
    if not found:
        return placeholder("synthesis: no feature analysis of a recipe model "
                           "(features.runs names none of them)")
    names = list(dict.fromkeys(r.model.label for r in found))[:MAX_ROWS]
    styles = _styles(t, [_recipe(r.model) for r in found])
    fig, axes = query.grid(3 * len(names), 3, "Q4: hierarchy retention and the collapse layer "
                           "(feature analysis, last epoch)", panel=(3.0, 2.7))
    for row, name in zip(axes, names, strict=False):
        mine = [r for r in found if r.model.label == name]
        for ax, method in zip(row[:2], RETENTION_METHODS, strict=True):
            for r in (r for r in mine if r.method == method):
                colour, style = styles[_recipe(r.model)]
                query.mean_line(ax, r.curve.set_axis(r.curve.index + 0.5),
                                r.spread.set_axis(r.spread.index + 0.5), marker=".",
                                color=colour, linestyle=style, label=_recipe(r.model))
                if not math.isnan(r.depths.collapse):
                    ax.axvline(r.depths.collapse, color=colour, linestyle=":", linewidth=1.2)
            ax.set_ylim(0, 1.05)
            labels(ax, "between layers ℓ and ℓ+1", "retention (eq. 4.1)",
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
        labels(scatter, "mean retention before ℓ*", "mean retention from ℓ*",
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


# --- panels --------------------------------------------------------------------------------------

def labels(ax: Axes, x: str, y: str | None, title: str) -> None:
    """An axis's x label, y label (None: none) and title, in small type."""
    ax.set_xlabel(x, fontsize="small")
    if y:
        ax.set_ylabel(y, fontsize="small")
    ax.set_title(title, fontsize="small")


def layer_axis(ax: Axes, axis: str, last: float, step: int, **text) -> None:
    """Layer ticks on ``axis`` ("x" or "y") every ``step`` up to the deepest layer ``last``,
    and "none" (not reached) one above it; ``text``: the tick labels' properties."""
    ticks = sorted({*range(0, int(last) + 2, step), int(last) + 1})
    getattr(ax, f"set_{axis}ticks")(ticks, [str(v) if v <= last else "none" for v in ticks],
                                    **text)
    getattr(ax, f"set_{axis}lim")(-0.5, last + 1.5)
