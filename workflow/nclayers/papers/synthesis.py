"""The cross-paper synthesis: one set of models and datasets trained under each paper's recipe,
every metric of every layer measured in every run, and four questions the papers cannot answer
alone, each answered from the measured numbers (never written in advance).

The recipes are the experiment's groups (workflow/presets/synthesis/), named
``<loss>_<schedule>[_aug]`` so that this module can tell which factor two recipes differ in
(:func:`factors`): ``mse_onecycle`` (Parker et al. 2023), ``mse_step`` (Rangamani et al. 2023,
with its ETF experiment), ``ce_step_aug`` (Galanti et al. 2022), ``ce_step`` and ``svsl_step``
(Ben-Shaul & Dekel 2022). A *model* is a dataset × architecture; a *recipe model* its selected
run(s) under one recipe with no layer fixed to an ETF (``etf_layers`` 0 or unset), seeds
averaged. Diverged runs are left out. Layer index 0 is the input; a tapped ``classifier`` (the
logits) is left out.

Three depths per recipe model, from the train split's seed-mean curves (the last epoch, or each
epoch of ``train.epoch_metrics``), each a layer index (NaN: never reached):

- the collapse layer ℓ* (Rangamani et al.): the first layer from which on every NC1 ratio
  Tr Σ_W / Tr Σ_T is below ε = ``Tables.thresholds.collapse_eps``
  (:func:`nclayers.derived.collapse_layer`);
- the NCC depth ℓ_NCC (Ben-Shaul & Dekel's NCC mismatch): the first layer from which on every
  NC4 mismatch (share of samples whose nearest class mean is not the network's prediction) is
  below δ = 1 − ``Tables.thresholds.ncc`` (the same "from here on" rule, at δ);
- the effective depth ℓ_eff (Galanti et al. Def. 1): the first layer whose NCC train accuracy
  reaches ``Tables.thresholds.ncc`` (:func:`nclayers.derived.effective_depth`).

The questions (the claims table: each as a statement, its measured answer in words, and
whether it holds); a statement holds when its criterion holds in more than half of the cases
that can tell, and the answer's first word, "Yes" or "No", says so:

Q1. Does the collapse layer depend on the loss and the schedule? For each factor (loss,
    schedule, augmentation), each pair of recipes that differ in that factor only (by name), on
    each model: ℓ* *moves* when the two differ by at least :data:`MOVE` layers, or only one of
    them collapses (both without ℓ*: cannot tell).
Q2. Does NCC separability reach the same depth as variability collapse and the effective
    depth? Per recipe model at the last epoch: |ℓ_NCC − ℓ*| ≤ :data:`SAME` (and likewise with
    ℓ_eff; one of the two missing: not the same). Through training (per-epoch metrics): the
    NCC depth *settles* (the first epoch from which on it keeps its final value) no later
    than ℓ* does.
Q3. Do top layers fixed to simplex ETFs move the collapse layer? Each ETF run (``etf_layers``
    k > 0, each k at its selected learning rate) against its free model: the recipe model of
    the same group and dataset with the same tapped layers (its ``etf_layers = 0`` run where
    the axis holds 0). Moves as in Q1; and, separately, whether fixing only the
    k ≤ k* = L − ℓ*(free) + 1 linear layers that read collapsed layers leaves ℓ* in place.
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
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from nclayers import vocabulary
from nclayers.derived import collapse_layer, effective_depth, interpolation_epoch, last_epoch
from nclayers.papers import Tables, claims_frame
from nclayers.plots import placeholder

SPLIT = "train"
ETF_AXIS = "etf_layers"
LOGITS = "classifier"  # a tapped output layer: no feature layer (rangamani2023 likewise)
DEPTH_METRICS = ("nc1_ratio", "ncc_accuracy", "nc4_mismatch")
MOVE = 1  # layers by which ℓ* must differ to count as moved (Q1, Q3)
SAME = 1  # layers within which two depths count as the same (Q2)
MAX_ROWS = 6  # models shown in a figure with a row per model

# The recipes' names: <loss>_<schedule>[_aug] (the preset's groups), in the order the figures
# and tables show them, with the paper each one comes from.
LOSSES = ("mse", "ce", "svsl")
SCHEDULES = {"onecycle": "one-cycle", "step": "step decay"}
RECIPE_ORDER = ("mse_onecycle", "mse_step", "ce_step_aug", "ce_step", "svsl_step")
RECIPE_PAPERS = {"mse_onecycle": "Parker et al.", "mse_step": "Rangamani et al.",
                 "ce_step_aug": "Galanti et al.", "ce_step": "Ben-Shaul & Dekel (CE)",
                 "svsl_step": "Ben-Shaul & Dekel (SVSL)"}
FACTORS = {"loss": "the loss", "schedule": "the schedule", "augment": "augmentation"}
DEPTHS = {"collapse": ("ℓ*", "green", "o"), "ncc": ("ℓ_NCC", "tab:orange", "^"),
          "effective": ("ℓ_eff", "tab:blue", "s")}
RETENTION_METHODS = ("cosine", "ward")


# --- recipes --------------------------------------------------------------------------------

def factors(recipe: str) -> dict[str, object] | None:
    """The loss, schedule and augmentation a recipe's name says (``ce_step_aug`` → ce, step,
    True); None for a name that does not follow ``<loss>_<schedule>[_aug]``."""
    tokens = recipe.split("_")
    if len(tokens) < 2 or tokens[0] not in LOSSES or tokens[1] not in SCHEDULES:
        return None
    return {"loss": tokens[0], "schedule": tokens[1], "augment": "aug" in tokens[2:]}


def contrasts(recipes: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """Per factor, the pairs of ``recipes`` whose names differ in that factor only."""
    out: dict[str, list[tuple[str, str]]] = {f: [] for f in FACTORS}
    for a, b in combinations(recipes, 2):
        fa, fb = factors(a), factors(b)
        if fa is None or fb is None:
            continue
        differ = [f for f in FACTORS if fa[f] != fb[f]]
        if len(differ) == 1:
            out[differ[0]].append((a, b))
    return out


def _recipe_rank(recipe: str) -> tuple[int, str]:
    return (RECIPE_ORDER.index(recipe) if recipe in RECIPE_ORDER else len(RECIPE_ORDER), recipe)


# --- models and their curves ---------------------------------------------------------------

@dataclass(frozen=True)
class Model:
    """The selected run(s), one per seed, of a dataset × architecture under one recipe."""

    recipe: str
    dataset: str
    arch: str
    runs: tuple[str, ...]
    etf: int = 0  # top linear layers fixed to ETFs

    @property
    def name(self) -> str:
        return vocabulary.model_label(self.dataset, self.arch)

    @property
    def short(self) -> str:
        """The name as the claims' texts give it: ``digits/mlp``."""
        return f"{self.dataset}/{self.arch}"


def _runs(t: Tables) -> pd.DataFrame:
    """The selected runs that did not diverge."""
    runs = t.runs
    if runs.empty:
        return runs
    runs = runs[runs["selected"].astype(bool)]
    return runs[~runs["diverged"].astype(bool)] if "diverged" in runs else runs


def _etf(runs: pd.DataFrame) -> pd.Series:
    if ETF_AXIS not in runs:
        return pd.Series(0, index=runs.index)
    return pd.to_numeric(runs[ETF_AXIS], errors="coerce").fillna(0).astype(int)


def _models(runs: pd.DataFrame) -> list[Model]:
    runs = runs.assign(_etf=_etf(runs))
    found = [Model(group, dataset, arch, tuple(part["run"]), int(k))
             for (group, dataset, arch, k), part
             in runs.groupby(["group", "dataset", "arch", "_etf"], sort=False)]
    return sorted(found, key=lambda m: (m.name, _recipe_rank(m.recipe), m.etf))


def recipe_models(t: Tables) -> list[Model]:
    """The recipe models (no ETF layer), by model, then in :data:`RECIPE_ORDER`."""
    runs = _runs(t)
    return [] if runs.empty else _models(runs[_etf(runs) == 0])


def etf_models(t: Tables) -> list[Model]:
    """The models with k > 0 top layers fixed to ETFs."""
    runs = _runs(t)
    return [] if runs.empty else _models(runs[_etf(runs) > 0])


def _layer_rows(table: pd.DataFrame, runs: Sequence[str]) -> pd.DataFrame:
    """The train split's per-layer rows of ``runs`` (the logits left out)."""
    if table.empty:
        return table
    rows = table[table["run"].isin(runs) & table["layer_index"].notna()
                 & (table["layer"] != LOGITS) & (table["split"] == SPLIT)]
    return rows.astype({"layer_index": int})


def curves(table: pd.DataFrame, runs: Sequence[str], epoch: int | None = None) -> pd.DataFrame:
    """Seed means per layer index (rows) of each metric (columns) at ``epoch`` (None: each
    run's last epoch)."""
    rows = _layer_rows(table, runs)
    if rows.empty:
        return pd.DataFrame()
    rows = last_epoch(rows) if epoch is None else rows[rows["epoch"] == epoch]
    return rows.pivot_table(index="layer_index", columns="metric", values="value",
                            aggfunc="mean").sort_index()


def layer_names(table: pd.DataFrame, runs: Sequence[str]) -> dict[int, str]:
    rows = _layer_rows(table, runs).drop_duplicates("layer_index")
    return dict(zip(rows["layer_index"], rows["layer"], strict=True))


# --- the three depths ------------------------------------------------------------------------

@dataclass(frozen=True)
class Depths:
    collapse: float  # ℓ*
    ncc: float  # ℓ_NCC
    effective: float  # ℓ_eff
    last: float  # the deepest layer measured


def depths(curve: pd.DataFrame, eps: float, ncc_threshold: float) -> Depths:
    """ℓ*, ℓ_NCC and ℓ_eff of one model's per-layer curves (see the module docstring)."""
    def column(metric: str) -> pd.Series:
        return curve[metric].dropna() if metric in curve else pd.Series(dtype=float)

    ratio, accuracy, mismatch = (column(m) for m in DEPTH_METRICS)
    return Depths(
        collapse=collapse_layer(ratio, eps) if len(ratio) else math.nan,
        ncc=collapse_layer(mismatch, 1 - ncc_threshold) if len(mismatch) else math.nan,
        effective=effective_depth(accuracy, ncc_threshold) if len(accuracy) else math.nan,
        last=float(curve.index.max()) if len(curve) else math.nan)


def model_depths(t: Tables, model: Model) -> Depths:
    """The depths of ``model`` at its last epoch."""
    return depths(curves(t.metrics, model.runs), t.thresholds.collapse_eps, t.thresholds.ncc)


def depths_by_epoch(t: Tables, model: Model) -> pd.DataFrame:
    """The depths of ``model`` at each epoch of its per-epoch metrics: epoch, collapse, ncc,
    effective (empty without ``train.epoch_metrics``)."""
    rows = _layer_rows(t.epoch_metrics, model.runs)
    out = []
    for epoch in sorted(rows["epoch"].unique()) if not rows.empty else []:
        d = depths(curves(rows, model.runs, int(epoch)), t.thresholds.collapse_eps,
                   t.thresholds.ncc)
        out.append({"epoch": int(epoch), "collapse": d.collapse, "ncc": d.ncc,
                    "effective": d.effective})
    return pd.DataFrame(out, columns=["epoch", "collapse", "ncc", "effective"])


def settle_epoch(series: pd.Series) -> float:
    """The first epoch (index) from which on ``series`` keeps its last value (NaN counts as
    a value: "not reached"); NaN for an empty series."""
    if series.empty:
        return math.nan
    values = series.sort_index()
    last = values.iloc[-1]
    same = values.isna() if pd.isna(last) else values == last
    first = len(values) - 1
    while first > 0 and same.iloc[first - 1]:
        first -= 1
    return float(values.index[first])


def _interpolation(t: Tables, runs: Sequence[str]) -> float:
    """The mean interpolation epoch of ``runs`` (NaN if any never interpolates)."""
    training = t.training
    if training.empty or "train_acc" not in training:
        return math.nan
    epochs = [interpolation_epoch(part.set_index("epoch")["train_acc"],
                                  t.thresholds.interpolation)
              for _, part in training[training["run"].isin(runs)].groupby("run")]
    return float(np.mean(epochs)) if epochs and not any(map(math.isnan, epochs)) else math.nan


def _final(t: Tables, runs: Sequence[str], column: str) -> float:
    values = t.runs.loc[t.runs["run"].isin(runs), column]
    return float(values.mean()) if len(values) else math.nan


# --- words -----------------------------------------------------------------------------------

def _layer(value: float) -> str:
    return "none" if value is None or math.isnan(value) else str(int(value))


def _yes(holds: bool | None) -> str:
    return "Cannot tell" if holds is None else ("Yes" if holds else "No")


def _majority(flags: Sequence[bool]) -> bool | None:
    return None if not flags else bool(sum(flags) > len(flags) / 2)


def _moved(a: float, b: float) -> bool | None:
    """Whether a depth moved from ``a`` to ``b`` (None: neither exists)."""
    if math.isnan(a) and math.isnan(b):
        return None
    if math.isnan(a) or math.isnan(b):
        return True
    return bool(abs(b - a) >= MOVE)


def _same(a: float, b: float) -> bool | None:
    """Whether two depths are the same within :data:`SAME` layers (None: neither exists)."""
    if math.isnan(a) and math.isnan(b):
        return None
    if math.isnan(a) or math.isnan(b):
        return False
    return bool(abs(a - b) <= SAME)


def _where(diff: float) -> str:
    """A mean signed difference in layers as words."""
    if math.isnan(diff):
        return ""
    if abs(diff) < 0.5:
        return "at about the same layer"
    return f"{abs(diff):.1f} layers {'deeper' if diff > 0 else 'shallower'}"


# --- tables ----------------------------------------------------------------------------------

def measured_depths(t: Tables) -> list[tuple[Model, Depths]]:
    """Each recipe model with its depths at the last epoch."""
    return [(model, model_depths(t, model)) for model in recipe_models(t)]


def depths_table(t: Tables) -> pd.DataFrame:
    """Q1, Q2: per recipe model at the last epoch, its recipe, its deepest layer L, the three
    depths, when it interpolates and its final accuracies."""
    rows = []
    for model, d in measured_depths(t):
        f = factors(model.recipe) or {}
        rows.append({"dataset": model.dataset, "arch": model.arch, "recipe": model.recipe,
                     "paper": RECIPE_PAPERS.get(model.recipe, ""),
                     "loss": f.get("loss", ""),
                     "schedule": SCHEDULES.get(str(f.get("schedule")), ""),
                     "L": d.last, "ℓ*": d.collapse, "ℓ_NCC": d.ncc, "ℓ_eff": d.effective,
                     "interpolation epoch": _interpolation(t, model.runs),
                     "train acc": _final(t, model.runs, "final_train_acc"),
                     "test acc": _final(t, model.runs, "final_test_acc")})
    return pd.DataFrame(rows, columns=["dataset", "arch", "recipe", "paper", "loss",
                                       "schedule", "L", "ℓ*", "ℓ_NCC", "ℓ_eff",
                                       "interpolation epoch", "train acc", "test acc"])


@dataclass(frozen=True)
class EtfCase:
    """An ETF run against its free model."""

    model: Model
    free: Model | None
    lstar: float  # ℓ* with k layers fixed
    free_lstar: float
    kstar: float  # L − ℓ*(free) + 1: the linear layers that read collapsed layers


def free_model(t: Tables, model: Model, free: Sequence[Model]) -> Model | None:
    """The recipe model of ``model``'s group and dataset with the same tapped layers (the
    same architecture without fixed layers); None unless exactly one fits (the same
    architecture label first)."""
    names = layer_names(t.metrics, model.runs)
    fits = [f for f in free if f.recipe == model.recipe and f.dataset == model.dataset
            and layer_names(t.metrics, f.runs) == names]
    same_arch = [f for f in fits if f.arch == model.arch]
    chosen = same_arch or fits
    return chosen[0] if len(chosen) == 1 else None


def etf_cases(t: Tables) -> list[EtfCase]:
    """Each ETF model against its free model (:func:`free_model`)."""
    free = recipe_models(t)
    out = []
    for model in etf_models(t):
        ref = free_model(t, model, free)
        fixed = model_depths(t, model)
        ref_d = model_depths(t, ref) if ref else None
        free_lstar = ref_d.collapse if ref_d else math.nan
        kstar = ref_d.last - free_lstar + 1 if ref_d else math.nan
        out.append(EtfCase(model, ref, fixed.collapse, free_lstar, kstar))
    return out


def etf_table(t: Tables) -> pd.DataFrame:
    """Q3: per ETF run, ℓ* with k top layers fixed against the free model's, and the final
    accuracies of both."""
    rows = []
    for c in etf_cases(t):
        m, ref = c.model, c.free
        rows.append({"dataset": m.dataset, "arch": m.arch, "recipe": m.recipe,
                     "free model": ref.arch if ref else "(none)", "k": m.etf, "k*": c.kstar,
                     "ℓ* free": c.free_lstar, "ℓ* fixed": c.lstar,
                     "test acc free": _final(t, ref.runs, "final_test_acc") if ref
                     else math.nan,
                     "train acc fixed": _final(t, m.runs, "final_train_acc"),
                     "test acc fixed": _final(t, m.runs, "final_test_acc")})
    return pd.DataFrame(rows, columns=["dataset", "arch", "recipe", "free model", "k", "k*",
                                       "ℓ* free", "ℓ* fixed", "test acc free",
                                       "train acc fixed", "test acc fixed"])


def _feature_table(t: Tables, name: str) -> pd.DataFrame:
    """A feature table's rows at each run's last analysed epoch (empty where none)."""
    table = (t.features or {}).get(name, pd.DataFrame())
    if table.empty or "run" not in table:
        return pd.DataFrame()
    return last_epoch(table)


def retention_curve(t: Tables, model: Model, method: str) -> pd.Series:
    """Seed-mean retention ℓ → ℓ+1 by ℓ (the layer index it starts from), the last analysed
    epoch; empty where the model's runs were not analysed."""
    table = _feature_table(t, "retention")
    if table.empty:
        return pd.Series(dtype=float)
    rows = table[table["run"].isin(model.runs) & (table["method"] == method)]
    return rows.groupby("index_from")["retention"].mean().sort_index().astype(float)


def retention_split(curve: pd.Series, lstar: float) -> tuple[float, float]:
    """Mean retention of the transitions ℓ → ℓ+1 before ℓ* (ℓ < ℓ*) and from it on."""
    curve = curve.dropna()
    if math.isnan(lstar) or curve.empty:
        return math.nan, math.nan
    before, after = curve[curve.index < lstar], curve[curve.index >= lstar]
    return (float(before.mean()) if len(before) else math.nan,
            float(after.mean()) if len(after) else math.nan)


@dataclass(frozen=True)
class Retention:
    """One analysed recipe model's retention under one clustering method."""

    model: Model
    method: str
    depths: Depths
    curve: pd.Series  # retention ℓ → ℓ+1 by ℓ
    before: float  # mean over ℓ < ℓ*
    after: float  # mean over ℓ ≥ ℓ*


def measured_retention(t: Tables) -> list[Retention]:
    out = []
    for model, d in measured_depths(t):
        for method in RETENTION_METHODS:
            curve = retention_curve(t, model, method)
            if not curve.empty:
                out.append(Retention(model, method, d, curve,
                                     *retention_split(curve, d.collapse)))
    return out


def retention_table(t: Tables) -> pd.DataFrame:
    """Q4: per analysed recipe model and clustering method, ℓ*, the mean retention before
    it, from it on and over all transitions."""
    rows = [{"dataset": r.model.dataset, "arch": r.model.arch, "recipe": r.model.recipe,
             "method": r.method, "L": r.depths.last, "ℓ*": r.depths.collapse,
             "retention before ℓ*": r.before, "retention from ℓ*": r.after,
             "retention, all": float(r.curve.mean())} for r in measured_retention(t)]
    return pd.DataFrame(rows, columns=["dataset", "arch", "recipe", "method", "L", "ℓ*",
                                       "retention before ℓ*", "retention from ℓ*",
                                       "retention, all"])


# --- the questions ---------------------------------------------------------------------------

def _row(claim: str, where: str, holds: bool | None, answer: str, details: Sequence[str],
         criterion: str) -> dict:
    """A claims row whose measured text starts with the answer ("Yes"/"No"), then the
    numbers, then the criterion."""
    measured = f"{_yes(holds)}: {answer}"
    if details:
        measured += " (" + "; ".join(details) + ")"
    return {"claim": claim, "where": where, "measured": f"{measured}. Criterion: {criterion}",
            "holds": holds}


def _count(told: Sequence[bool], holds: bool | None) -> str:
    """"k of n": how many of the cases side with the answer."""
    return f"{sum(told) if holds else len(told) - sum(told)} of {len(told)}"


def q1_rows(t: Tables) -> list[dict]:
    """Q1: per factor, does ℓ* move between recipes that differ in it only?"""
    found = measured_depths(t)
    lstar = {(m.recipe, m.short): d.collapse for m, d in found}
    names = list(dict.fromkeys(m.short for m, _ in found))
    pairs = contrasts(list(dict.fromkeys(m.recipe for m, _ in found)))
    rows = []
    for factor, words in FACTORS.items():
        told, details = [], []
        for a, b in pairs[factor]:
            for name in names:
                if (a, name) not in lstar or (b, name) not in lstar:
                    continue
                la, lb = lstar[(a, name)], lstar[(b, name)]
                moved = _moved(la, lb)
                if moved is not None:
                    told.append(moved)
                details.append(f"{name}: {a} {_layer(la)} vs {b} {_layer(lb)}")
        holds = _majority(told)
        if not pairs[factor]:
            answer = f"no two recipes differ in {words} only"
        elif not told:
            answer = "no recipe of these pairs has a collapse layer"
        else:
            verb = "moves with" if holds else "does not move with"
            answer = f"ℓ* {verb} {words} in {_count(told, holds)} comparisons"
        rows.append(_row(f"The collapse layer ℓ* depends on {words}",
                         "Q1; Parker §3, Rangamani §5, Galanti §4, Ben-Shaul §6", holds,
                         answer, details,
                         f"ℓ* differs by ≥ {MOVE} layer (or exists in one only) in more than "
                         "half of the comparisons of recipes that differ in this factor only"))
    return rows


def _depth_row(t: Tables, other: str, label: str, claim: str, where: str,
               criterion: str) -> dict:
    """ℓ_NCC against another depth (``other``: a field of :class:`Depths`) per recipe
    model."""
    told, diffs, details = [], [], []
    for model, d in measured_depths(t):
        a, b = d.ncc, getattr(d, other)
        same = _same(a, b)
        if same is not None:
            told.append(same)
        if not (math.isnan(a) or math.isnan(b)):
            diffs.append(a - b)
        details.append(f"{model.recipe} {model.short}: ℓ_NCC {_layer(a)}, {label} {_layer(b)}")
    holds = _majority(told)
    if not told:
        answer = f"no recipe model has ℓ_NCC or {label}"
    else:
        answer = (f"ℓ_NCC is {'' if holds else 'not '}within {SAME} layer of {label} in "
                  f"{_count(told, holds)} recipe models")
        if diffs:
            answer += (f"; on average NCC separability is reached "
                       f"{_where(float(np.mean(diffs)))}" + ("" if abs(np.mean(diffs)) < 0.5
                                                              else f" than {label}"))
    return _row(claim, where, holds, answer, details, criterion)


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
        if by_epoch.empty:
            continue
        if by_epoch[["ncc", "collapse"]].iloc[-1].isna().all():
            details.append(f"{model.recipe} {model.short}: neither reached")
            continue
        ncc, col = settle_epoch(by_epoch["ncc"]), settle_epoch(by_epoch["collapse"])
        told.append(bool(ncc <= col))
        details.append(f"{model.recipe} {model.short}: ℓ_NCC settles at epoch {int(ncc)}, "
                       f"ℓ* at {int(col)}")
    holds = _majority(told)
    if not told:
        answer = "no per-epoch metrics of a recipe model that reaches a depth"
    else:
        answer = (f"ℓ_NCC reaches its final layer {'no later' if holds else 'later'} than ℓ* "
                  f"in {_count(told, holds)} recipe models")
    return _row("During training, NCC separability settles at its final depth no later than "
                "variability collapse does", "Q2; Ben-Shaul Conj. 8, Fig. 2", holds, answer,
                details, "the first epoch from which ℓ_NCC keeps its final value is ≤ that "
                "of ℓ* (per-epoch metrics), in more than half of the recipe models")


def q3_rows(t: Tables) -> list[dict]:
    """Q3: does fixing the top k layers to ETFs move ℓ*; does fixing only layers that read
    collapsed layers (k ≤ k*) leave it in place?"""
    cases = [c for c in etf_cases(t) if c.free is not None]
    where = "Q3; Rangamani §5.3, Fig. 7"

    def text(c: EtfCase) -> str:
        return (f"{c.model.short} k={c.model.etf}: ℓ* {_layer(c.free_lstar)} → "
                f"{_layer(c.lstar)}, k* = {_layer(c.kstar)}, test acc "
                f"{_final(t, c.free.runs, 'final_test_acc'):.3f} → "
                f"{_final(t, c.model.runs, 'final_test_acc'):.3f}")

    moved = [(c, _moved(c.free_lstar, c.lstar)) for c in cases]
    told = [m for _, m in moved if m is not None]
    holds = _majority(told)
    answer = ("no ETF run (an etf_layers axis) with a free model" if not cases else
              "neither the free nor the fixed models collapse" if not told else
              f"fixing top layers {'moves ℓ*' if holds else 'leaves ℓ* in place'} in "
              f"{_count(told, holds)} ETF runs")
    rows = [_row("Fixing the top linear layers to simplex ETFs moves the collapse layer", where,
                 holds, answer, [text(c) for c in cases],
                 f"ℓ* with k layers fixed differs by ≥ {MOVE} layer from the free model's (or "
                 "exists in one only) in more than half of the ETF runs")]
    inside = [(c, m) for c, m in moved if not math.isnan(c.kstar) and c.model.etf <= c.kstar]
    kept = [not m for _, m in inside if m is not None]
    holds = _majority(kept)
    answer = ("no ETF run fixes only layers that read collapsed layers (k ≤ k*)" if not inside
              else "neither the free nor the fixed models collapse" if not kept
              else f"ℓ* {'stays' if holds else 'moves'} in {_count(kept, holds)} ETF runs "
                   "with k ≤ k*")
    rows.append(_row("Fixing only the layers that read collapsed layers (k ≤ k* = L − ℓ* + 1) "
                     "leaves the collapse layer in place", where, holds, answer,
                     [text(c) for c, _ in inside],
                     f"ℓ* moves by less than {MOVE} layer in more than half of the ETF runs "
                     "with k ≤ k*"))
    return rows


def q4_rows(t: Tables) -> list[dict]:
    """Q4: retention before and from ℓ*; and across models, ℓ*/L against mean retention."""
    found = measured_retention(t)
    where = "Q4; Lindegaard §4.3.3, eq. 4.1, Table 4.3.2"
    told, details = [], []
    for r in found:
        head = f"{r.model.recipe} {r.model.short} {r.method}"
        if math.isnan(r.before) or math.isnan(r.after):
            details.append(f"{head}: ℓ* {_layer(r.depths.collapse)}, no split")
            continue
        told.append(bool(r.after > r.before))
        details.append(f"{head}: {r.before:.2f} before ℓ* = {_layer(r.depths.collapse)}, "
                       f"{r.after:.2f} from it")
    holds = _majority(told)
    answer = ("no feature analysis of a recipe model (features.runs)" if not found else
              "no analysed model with layers on both sides of ℓ*" if not told else
              f"retention is {'higher' if holds else 'not higher'} from ℓ* on than before it "
              f"in {_count(told, holds)} model × method cases")
    rows = [_row("Hierarchy retention is higher from the collapse layer on than before it",
                 where, holds, answer, details,
                 "mean retention ℓ → ℓ+1 over ℓ ≥ ℓ* above that over ℓ < ℓ*, in more than "
                 "half of the recipe models × clustering methods")]
    rows.append(_correlation_row(found, where))
    return rows


def _correlation_row(found: Sequence[Retention], where: str) -> dict:
    per_model: dict[tuple[str, str], list] = {}
    for r in found:
        if not math.isnan(r.depths.collapse):
            key = (r.model.recipe, r.model.short)
            per_model.setdefault(key, [r.depths.collapse / r.depths.last, []])[1].append(
                float(r.curve.mean()))
    points = {k: (rel, float(np.mean(v))) for k, (rel, v) in per_model.items()}
    rho = _spearman([p[0] for p in points.values()], [p[1] for p in points.values()])
    holds = None if math.isnan(rho) else bool(rho < 0)
    if math.isnan(rho):
        answer = (f"{len(points)} analysed models with ℓ*; the correlation needs at least 3 "
                  "with distinct values")
    else:
        answer = (f"across {len(points)} models Spearman ρ(ℓ*/L, mean retention) = "
                  f"{rho:+.2f}: a deeper collapse goes with "
                  f"{'less' if rho < 0 else 'more' if rho > 0 else 'the same'} retention")
    details = [f"{recipe} {name}: ℓ*/L {rel:.2f}, retention {ret:.2f}"
               for (recipe, name), (rel, ret) in points.items()]
    return _row("Across recipes and models, a deeper collapse layer goes with lower "
                "hierarchy retention", where, holds, answer, details,
                "Spearman correlation of ℓ*/L with the mean retention over all transitions "
                "(both methods) below 0, over the analysed models with ℓ*")


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation; NaN with fewer than 3 pairs or a constant side."""
    pairs = pd.DataFrame({"x": list(x), "y": list(y)}).dropna()
    if len(pairs) < 3 or pairs["x"].nunique() < 2 or pairs["y"].nunique() < 2:
        return math.nan
    return float(pairs["x"].rank().corr(pairs["y"].rank()))


# --- figures ---------------------------------------------------------------------------------

def _colours(recipes: Sequence[str]) -> dict[str, object]:
    """One colour per recipe, the same in every figure."""
    from matplotlib import colormaps

    ordered = sorted(dict.fromkeys(recipes), key=_recipe_rank)
    cmap = colormaps["tab10"]
    return {r: cmap(i % 10) for i, r in enumerate(ordered)}


def _linestyle(recipe: str) -> str:
    """MSE solid, CE dashed, SVSL dash-dotted (the loss at a glance)."""
    loss = (factors(recipe) or {}).get("loss")
    return {"ce": "--", "svsl": "-."}.get(str(loss), "-")


def _grid(count: int, cols: int, title: str, panel: tuple[float, float] = (3.0, 2.4)
          ) -> tuple[Figure, np.ndarray]:
    """``count`` panels in rows of ``cols``, within 9.5 × 11 in; the unused ones hidden."""
    cols = max(1, min(cols, count))
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(min(9.5, 0.6 + cols * panel[0]), min(11.0, 0.9 + rows * panel[1])),
                 layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize="medium")
    return fig, axes


def _by_name(models: Sequence[Model]) -> dict[str, list[Model]]:
    out: dict[str, list[Model]] = {}
    for m in models:
        out.setdefault(m.name, []).append(m)
    return out


def _more(count: int) -> str:
    return f" ({count - MAX_ROWS} more models in the tables)" if count > MAX_ROWS else ""


def _legend(fig: Figure, axes: Sequence[Axes], ncol: int = 4) -> None:
    """One legend under the figure from the labelled artists of ``axes``, deduplicated."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center",
                   ncol=min(ncol, len(seen)), fontsize="small")


def q1_collapse_by_recipe(t: Tables) -> Figure:
    """Q1: the NC1 ratio per layer at the last epoch under each recipe (a line each; MSE
    solid, CE dashed, SVSL dash-dotted), ε dotted, each recipe's ℓ* a large dot on its line;
    a panel per model."""
    models = _by_name(recipe_models(t))
    if not models:
        return placeholder("synthesis: no selected recipe model (a group without ETF layers)")
    colours = _colours([m.recipe for ms in models.values() for m in ms])
    names = list(models)[:MAX_ROWS]
    fig, axes = _grid(len(names), 2, "Q1: where variability collapses under each paper's "
                      f"recipe (NC1 ratio, train split, last epoch){_more(len(models))}",
                      panel=(4.4, 3.0))
    for ax, name in zip(axes.flat, names, strict=False):
        for model in models[name]:
            ratio = curves(t.metrics, model.runs).get("nc1_ratio")
            if ratio is None:
                continue
            lstar = collapse_layer(ratio.dropna(), t.thresholds.collapse_eps)
            label = f"{model.recipe} (ℓ* = {_layer(lstar)})"
            ax.plot(ratio.index, ratio, marker=".", color=colours[model.recipe],
                    linestyle=_linestyle(model.recipe), label=label)
            if not math.isnan(lstar):
                ax.plot([lstar], [ratio.loc[lstar]], "o", markersize=8, zorder=5,
                        color=colours[model.recipe], markeredgecolor="black")
        ax.axhline(t.thresholds.collapse_eps, color="black", linestyle=":", linewidth=1)
        ax.set_yscale("log")
        ax.set_title(name, fontsize="small")
        ax.set_xlabel("layer (0 = input)", fontsize="small")
        ax.set_ylabel(r"Tr $\Sigma_W$ / Tr $\Sigma_T$", fontsize="small")
        ax.legend(fontsize="x-small", title=f"ε = {t.thresholds.collapse_eps:g}; recipe (ℓ*)",
                  title_fontsize="x-small")
    return fig


def _depth_marks(ax: Axes, y: float, d: Depths, none_at: float) -> None:
    """The three depths of one recipe as markers on the row ``y`` (a missing one at
    ``none_at``, hollow)."""
    for offset, (field_name, (label, colour, marker)) in zip((-0.2, 0.0, 0.2), DEPTHS.items(),
                                                             strict=True):
        value = getattr(d, field_name)
        missing = math.isnan(value)
        ax.plot([none_at if missing else value], [y + offset], marker, color=colour,
                markerfacecolor="none" if missing else colour, markersize=7, linestyle="",
                label=label)


def q2_depths(t: Tables) -> Figure:
    """Q2: per model, each recipe's collapse layer ℓ*, NCC depth ℓ_NCC and effective depth
    ℓ_eff at the last epoch (a row per recipe; hollow at "none": never reached)."""
    found = measured_depths(t)
    models = _by_name([m for m, _ in found])
    if not models:
        return placeholder("synthesis: no selected recipe model (a group without ETF layers)")
    depth = dict(zip([m for m, _ in found], [d for _, d in found], strict=True))
    names = list(models)[:MAX_ROWS]
    fig, axes = _grid(len(names), 2, "Q2: three depths of each recipe model (train split, "
                      f"last epoch){_more(len(models))}", panel=(4.4, 0.9 + 0.45 * max(
                          len(ms) for ms in models.values())))
    for ax, name in zip(axes.flat, names, strict=False):
        rows = models[name]
        last = max(depth[m].last for m in rows)
        for y, model in enumerate(rows):
            _depth_marks(ax, y, depth[model], last + 1)
        ax.set_yticks(range(len(rows)), [m.recipe for m in rows], fontsize="x-small")
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xticks(range(int(last) + 2), [*map(str, range(int(last) + 1)), "none"],
                      fontsize="x-small")
        ax.set_xlim(-0.5, last + 1.5)
        ax.set_xlabel("layer (0 = input)", fontsize="small")
        ax.set_title(name, fontsize="small")
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
    models = _by_name(recipe_models(t))
    if t.epoch_metrics.empty or not models:
        return placeholder("synthesis: no per-epoch metrics (train.epoch_metrics) of a "
                           "recipe model")
    names = list(models)[:MAX_ROWS]
    recipes = sorted({m.recipe for n in names for m in models[n]}, key=_recipe_rank)
    fig, axes = _grid(len(names) * len(recipes), len(recipes),
                      "Q2 through training: the depths at each epoch (train split)"
                      + _more(len(models)), panel=(1.9, 2.1))
    for row, name in enumerate(names):
        last = max(model_depths(t, m).last for m in models[name])
        for col, recipe in enumerate(recipes):
            ax = axes[row, col]
            model = next((m for m in models[name] if m.recipe == recipe), None)
            ax.set_title(f"{recipe}\n{name}" if row == 0 else name, fontsize="x-small")
            _depth_steps(ax, t, model, last)
            if col == 0:
                ax.set_ylabel("layer", fontsize="x-small")
            if row == len(names) - 1:
                ax.set_xlabel("epoch", fontsize="x-small")
    _legend(fig, list(axes.flat))
    return fig


def _depth_steps(ax: Axes, t: Tables, model: Model | None, last: float) -> None:
    """One panel of :func:`q2_depths_through_training`: each depth as a step line against
    the epoch, slightly apart so that equal depths stay visible, "none" at ``last`` + 1."""
    by_epoch = depths_by_epoch(t, model) if model else pd.DataFrame()
    if by_epoch.empty:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes,
                fontsize="x-small")
        return
    for offset, (field_name, (label, colour, _marker)) in zip((0.12, 0.0, -0.12),
                                                              DEPTHS.items(), strict=True):
        values = by_epoch[field_name].fillna(last + 1) + offset
        ax.step(by_epoch["epoch"], values, where="post", color=colour, label=label,
                linewidth=1.4)
    interpolated = _interpolation(t, model.runs)
    if not math.isnan(interpolated):
        ax.axvline(interpolated, color="grey", linestyle=":", linewidth=1,
                   label="interpolation epoch")
    ticks = list(range(0, int(last) + 2, max(1, math.ceil((last + 2) / 6))))
    ticks = sorted({*ticks, int(last) + 1})
    ax.set_yticks(ticks, [str(v) if v <= last else "none" for v in ticks])
    ax.set_ylim(-0.5, last + 1.5)
    ax.tick_params(labelsize="xx-small")


def q3_etf_collapse(t: Tables) -> Figure:
    """Q3: per ETF experiment (group × dataset × architecture), the NC1 ratio per layer of
    the free model and of each k top layers fixed, ℓ* dotted; and ℓ* and the test accuracy
    against k, k* (the linear layers that read collapsed layers of the free model) green."""
    cases = [c for c in etf_cases(t) if c.free is not None]
    if not cases:
        return placeholder("synthesis: no ETF experiment (an etf_layers axis on an "
                           "architecture of a recipe group) with its free model")
    experiments: dict[tuple[str, str], list[EtfCase]] = {}
    for c in cases:
        experiments.setdefault((c.model.recipe, c.free.name), []).append(c)
    shown = list(experiments.items())[:MAX_ROWS]
    fig, axes = _grid(2 * len(shown), 2, "Q3: top layers fixed to simplex ETFs and the "
                      "collapse layer (train split, last epoch)", panel=(4.4, 2.8))
    from matplotlib import colormaps

    for (curve_ax, k_ax), ((recipe, name), group) in zip(axes, shown, strict=False):
        ks = [0, *sorted(c.model.etf for c in group)]
        runs = {0: group[0].free.runs, **{c.model.etf: c.model.runs for c in group}}
        cmap = colormaps["viridis"]
        lstars, tests = [], []
        for i, k in enumerate(ks):
            ratio = curves(t.metrics, runs[k]).get("nc1_ratio", pd.Series(dtype=float))
            lstar = (collapse_layer(ratio.dropna(), t.thresholds.collapse_eps) if len(ratio)
                     else math.nan)
            colour = "black" if k == 0 else cmap(i / max(len(ks) - 1, 1))
            curve_ax.plot(ratio.index, ratio, marker=".", color=colour,
                          label=f"k = {k} (ℓ* = {_layer(lstar)})")
            if not math.isnan(lstar):
                curve_ax.axvline(lstar, color=colour, linestyle=":", linewidth=1)
            lstars.append(lstar)
            tests.append(_final(t, runs[k], "final_test_acc"))
        curve_ax.axhline(t.thresholds.collapse_eps, color="crimson", linewidth=1)
        curve_ax.set_yscale("log")
        curve_ax.set_xlabel("layer (0 = input)", fontsize="small")
        curve_ax.set_ylabel("NC1 ratio", fontsize="small")
        curve_ax.set_title(f"{name} ({recipe}): NC1 ratio", fontsize="small")
        curve_ax.legend(fontsize="x-small", title="top layers fixed", title_fontsize="x-small")
        last = model_depths(t, group[0].free).last
        k_ax.plot(ks, [last + 1 if math.isnan(v) else v for v in lstars], "o-",
                  color="green", label="ℓ* (none: above the last layer)")
        k_ax.set_ylabel("ℓ*", fontsize="small")
        k_ax.set_ylim(-0.5, last + 1.5)
        ticks = sorted({*range(0, int(last) + 1, max(1, math.ceil(last / 5))), int(last) + 1})
        k_ax.set_yticks(ticks, [str(v) if v <= last else "none" for v in ticks])
        k_ax.axvline(group[0].kstar, color="green", alpha=0.4, linewidth=3,
                     label="k*: linear layers reading collapsed layers (free)")
        acc_ax = k_ax.twinx()
        acc_ax.plot(ks, tests, "s--", color="tab:blue", label="test accuracy")
        acc_ax.set_ylim(0, 1.02)
        acc_ax.set_ylabel("test accuracy", fontsize="small")
        k_ax.set_xlabel("top linear layers fixed to ETFs (k)", fontsize="small")
        k_ax.set_title(f"{name} ({recipe}): ℓ* and accuracy", fontsize="small")
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
    names = list(dict.fromkeys(r.model.name for r in found))[:MAX_ROWS]
    colours = _colours([r.model.recipe for r in found])
    fig, axes = _grid(3 * len(names), 3, "Q4: hierarchy retention and the collapse layer "
                      "(feature analysis, last epoch)" + _more(len(names)), panel=(3.0, 2.7))
    for row, name in zip(axes, names, strict=False):
        mine = [r for r in found if r.model.name == name]
        for ax, method in zip(row[:2], RETENTION_METHODS, strict=True):
            for r in (r for r in mine if r.method == method):
                colour = colours[r.model.recipe]
                ax.plot(r.curve.index + 0.5, r.curve, marker=".", color=colour,
                        linestyle=_linestyle(r.model.recipe), label=r.model.recipe)
                if not math.isnan(r.depths.collapse):
                    ax.axvline(r.depths.collapse, color=colour, linestyle=":", linewidth=1.2)
            ax.set_ylim(0, 1.05)
            ax.set_xlabel("between layers ℓ and ℓ+1", fontsize="small")
            ax.set_ylabel("retention (eq. 4.1)", fontsize="small")
            ax.set_title(f"{name}: {vocabulary.METHOD_LABELS.get(method, method)}",
                         fontsize="small")
        scatter = row[2]
        for r in mine:
            if not (math.isnan(r.before) or math.isnan(r.after)):
                scatter.plot(r.before, r.after, "o" if r.method == "cosine" else "s",
                             color=colours[r.model.recipe], markeredgecolor="black")
        values = [v for r in mine for v in (r.before, r.after) if not math.isnan(v)]
        low = max(0.0, min(values, default=0.0) - 0.05)
        scatter.plot([low, 1.02], [low, 1.02], color="grey", linewidth=0.8)
        scatter.set_xlim(low, 1.02)
        scatter.set_ylim(low, 1.02)
        scatter.set_xlabel("mean retention before ℓ*", fontsize="small")
        scatter.set_ylabel("mean retention from ℓ*", fontsize="small")
        scatter.set_title(f"{name}: ● cosine, ■ ward", fontsize="small")
    _legend(fig, [ax for row in axes for ax in row[:2]], ncol=5)
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
