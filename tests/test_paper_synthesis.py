"""The cross-paper synthesis (nclayers.papers.synthesis): recipes read from the design table, the
three depths on curves with known answers, and the four questions on small hand-built tidy
tables, where the answer's words follow the numbers (the same tables with the numbers changed
give the other answer), and every figure and table on such tables and on empty ones."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from matplotlib.figure import Figure

from nclayers.derived import interpolation_epoch
from nclayers.papers import Tables
from nclayers.papers import synthesis as syn
from nclayers.papers.seeds import SEED_CLAIM_COLUMNS
from nclayers.vocabulary import (
    DEFAULT_THRESHOLDS,
    PAPER_FIGURE_READS,
    PAPER_FIGURES,
    PAPER_TABLES,
    Thresholds,
)

LAYERS = 7  # the input and six hidden layers
EPOCHS = (0, 2, 4, 6)
RECIPES = ("mse_onecycle", "mse_step", "ce_step_aug", "ce_step", "svsl_step")


def falling_below(first: float | None, below: float, above: float) -> list[float]:
    """A per-layer curve that is ``below`` from layer ``first`` on and ``above`` before it
    (None: never below)."""
    return [below if first is not None and i >= first else above for i in range(LAYERS)]


def rising_to(first: float | None, top: float = 1.0, low: float = 0.8) -> list[float]:
    return [top if first is not None and i >= first else low for i in range(LAYERS)]


def layer_rows(run: str, arch: str, epoch: int, lstar, lncc, leff, group: str,
               etf) -> list[dict]:
    """Tidy train rows of one run and epoch with the depths ``lstar``, ``lncc``, ``leff``."""
    values = {"nc1_ratio": falling_below(lstar, 0.05, 0.5),
              "nc4_mismatch": falling_below(lncc, 0.0, 0.2),
              "ncc_accuracy": rising_to(leff)}
    return [{"run": run, "dataset": "digits", "arch": arch, "seed": 0, "epoch": epoch,
             "layer": "input" if i == 0 else f"layer{i}", "layer_index": i, "split": split,
             "metric": metric, "value": v[i], "group": group, "etf_layers": etf}
            for metric, v in values.items() for i in range(LAYERS)
            for split in ("train", "test")]


def recipe_design(run: str, group: str, recipe: str | None = None) -> dict:
    """A design row of ``run`` in ``group`` whose recipe fields are those the preset's recipe
    ``recipe`` (default: the group), ``<loss>_<schedule>[_aug]``, stands for."""
    loss, schedule, *aug = (recipe or group).split("_")
    return {"run": run, "group": group, "selected_axes": "", "compared_axes": "",
            "train.loss": loss, "train.schedule": {"step": "multistep"}.get(schedule, schedule),
            "train.augment.crop": 1.0 if aug else math.nan,
            "train.augment.flip": False if aug else math.nan}


def make_tables(models: list[dict], retention: dict[str, list[float]] | None = None,
                epoch_metrics: bool = True) -> Tables:
    """Tables of ``models``: dicts with recipe, depths (lstar, lncc, leff; None: never),
    optional arch, etf (top layers fixed), test acc, and ``settle``: {depth: epoch from which
    on it has its final value, before that one layer deeper}, and ``as``: the recipe the
    design says where the group (``recipe``) is called otherwise. ``retention``: run → retention
    ℓ → ℓ+1 for ℓ = 0…5 (both methods); ``design``: more design columns of its run. The
    design table and the per-run interpolation
    epoch (as ``aggregate`` writes it into the metrics) come with them."""
    metrics, per_epoch, training, runs, kept, design = [], [], [], [], [], []
    for m in models:
        arch, etf = m.get("arch", "mlp"), m.get("etf")
        lr = m.get("lr")  # a swept lr: in the run id, the runs table and the design
        run = (f"{m['recipe']}-digits-{arch}" + (f"-etf{etf}" if etf else "")
               + (f"-lr{lr}" if lr else "") + "-s0")
        depths = {k: m.get(k) for k in ("lstar", "lncc", "leff")}
        for epoch in (0, EPOCHS[-1]):
            final = epoch == EPOCHS[-1]
            metrics += layer_rows(run, arch, epoch, *(d if final else None
                                                      for d in depths.values()),
                                  m["recipe"], etf)
        for epoch in EPOCHS:
            now = {k: (None if d is None else d + (epoch < m.get("settle", {}).get(k, 0)))
                   for k, d in depths.items()}
            per_epoch += layer_rows(run, arch, epoch, *now.values(), m["recipe"], etf)
        accuracy = pd.Series([1.0 if e >= 3 else 0.5 for e in range(EPOCHS[-1] + 1)])
        training += [{"run": run, "epoch": e, "train_acc": acc, "test_acc": 0.9}
                     for e, acc in accuracy.items()]
        metrics.append({"run": run, "dataset": "digits", "arch": arch, "seed": 0,
                        "epoch": EPOCHS[-1], "layer": None, "layer_index": None,
                        "split": "train", "metric": "interpolation_epoch",
                        "value": interpolation_epoch(accuracy,
                                                     DEFAULT_THRESHOLDS.interpolation)})
        design.append({**recipe_design(run, m["recipe"], m.get("as")), **m.get("design", {}),
                       **({"selected_axes": "lr", "train.lr": lr} if lr else {})})
        runs.append({"run": run, "group": m["recipe"], "dataset": "digits", "arch": arch,
                     "seed": 0, "etf_layers": etf, "lr": lr or 0.01, "weight_decay": 5e-4,
                     "diverged": False, "final_epoch": EPOCHS[-1], "final_train_acc": 1.0,
                     "final_test_acc": m.get("test", 0.95),
                     "selected": m.get("selected", True)})
        if retention and run in retention:
            kept += [{"run": run, "dataset": "digits", "arch": arch, "seed": 0,
                      "epoch": EPOCHS[-1], "method": method, "layer_from": f"layer{i}",
                      "layer_to": f"layer{i + 1}", "index_from": i, "index_to": i + 1,
                      "retention": value}
                     for method in syn.RETENTION_METHODS
                     for i, value in enumerate(retention[run])]
    features = {"retention": pd.DataFrame(kept)} if kept else {}
    return Tables(metrics=pd.DataFrame(metrics), training=pd.DataFrame(training),
                  spectra=pd.DataFrame(), runs=pd.DataFrame(runs),
                  epoch_metrics=pd.DataFrame(per_epoch if epoch_metrics else []),
                  features=features, design=pd.DataFrame(design))


def recipes(lstars: dict[str, int | None], **more) -> list[dict]:
    """One MLP per recipe with the given ℓ* (ℓ_NCC and ℓ_eff one layer shallower)."""
    return [{"recipe": r, "lstar": lstar, "lncc": None if lstar is None else lstar - 1,
             "leff": None if lstar is None else lstar - 1, **more.get(r, {})}
            for r, lstar in lstars.items()]


def claim(table: pd.DataFrame, text: str) -> pd.Series:
    rows = table[table["claim"].str.contains(text, regex=False)]
    assert len(rows) == 1, (text, list(table["claim"]))
    return rows.iloc[0]


# --- recipes and depths ------------------------------------------------------------------

def design_tables(rows: list[dict]) -> Tables:
    return Tables(metrics=pd.DataFrame(), training=pd.DataFrame(), spectra=pd.DataFrame(),
                  epoch_metrics=pd.DataFrame(), runs=pd.DataFrame(), design=pd.DataFrame(rows))


def test_the_design_says_loss_schedule_and_augmentation_whatever_the_group_is_called():
    t = design_tables([recipe_design("a-s0", "ce_step_aug"), recipe_design("b-s0", "galanti",
                                                                           "ce_step_aug"),
                       recipe_design("c-s0", "mse_onecycle"),
                       # an augmentation turned off is none; runs that differ: no recipe
                       {**recipe_design("d-s0", "ce_step"), "train.augment.crop": 0.0,
                        "train.augment.flip": False},
                       recipe_design("e-s0", "mixed", "mse_step"),
                       recipe_design("e-s1", "mixed", "ce_step")])
    found = syn.factors(t)
    assert found["ce_step_aug"] == {"loss": "ce", "schedule": "multistep", "augment": True}
    assert found["galanti"] == found["ce_step_aug"]
    assert found["mse_onecycle"]["augment"] is False and found["ce_step"]["augment"] is False
    assert "mixed" not in found
    assert syn.factors(design_tables([])) == {}


def models_of(t: Tables) -> list:
    return [m for m, _ in syn.recipe_models(t)]


def test_contrasts_pair_the_recipe_models_that_differ_in_one_factor_only():
    t = make_tables(recipes(dict.fromkeys(RECIPES, 3)))
    pairs, refused = syn.contrasts(t, models_of(t))
    named = {f: [(syn._recipe(a), syn._recipe(b)) for a, b in found]
             for f, found in pairs.items()}
    assert named["schedule"] == [("mse_onecycle", "mse_step")]
    assert set(named["loss"]) == {("mse_step", "ce_step"), ("ce_step", "svsl_step"),
                                  ("mse_step", "svsl_step")}
    assert named["augment"] == [("ce_step_aug", "ce_step")]
    # mse_onecycle and ce_step differ in the loss and the schedule: refused under both
    assert any("digits/mlp, mse_onecycle vs ce_step: not a one-factor contrast: they differ in "
               "the loss and the schedule" in why for why in refused["loss"])


def test_a_pair_that_differs_in_two_factors_is_refused_naming_both():
    """ce_step and svsl_step that also differ in weight decay: no contrast of the loss; the
    refusal names the loss and the weight decay with its values, and Q1 shows it."""
    t = make_tables(recipes({"ce_step": 3, "svsl_step": 4},
                            svsl_step={"design": {"train.weight_decay": 1e-5}},
                            ce_step={"design": {"train.weight_decay": 5e-4}}))
    ce, svsl = models_of(t)
    with pytest.raises(syn.ContrastError, match=r"digits/mlp, ce_step vs svsl_step: "
                       r"not a one-factor contrast: they differ in the loss and "
                       r"train.weight_decay \(train.weight_decay 0.0005 vs 1e-05\)"):
        syn.contrast(t, ce, svsl)
    loss = claim(syn.claims(t), "depends on the loss")
    assert loss["holds"] is None and "no two recipe models differ in the loss only" in (
        loss["measured"])
    assert "refused, digits/mlp, ce_step vs svsl_step" in loss["measured"]
    # the lr is part of the recipe: selected at different values, no contrast either
    t = make_tables(recipes({"ce_step": 3, "svsl_step": 4},
                            svsl_step={"design": {"train.lr": 0.1}},
                            ce_step={"design": {"train.lr": 0.03}}))
    with pytest.raises(syn.ContrastError, match="train.lr 0.03 vs 0.1"):
        syn.contrast(t, *models_of(t))


def test_recipes_swept_over_the_lr_are_contrasted_at_each_lr_they_share():
    """ce_step selected at lr 0.1, svsl_step at 0.01: their selected models are no contrast;
    at each lr both trained (selected or not) they are, and only there."""
    models = [{"recipe": "ce_step", "lr": 0.01, "lstar": 3, "selected": False},
              {"recipe": "ce_step", "lr": 0.1, "lstar": 3},
              {"recipe": "svsl_step", "lr": 0.01, "lstar": 5},
              {"recipe": "svsl_step", "lr": 0.1, "lstar": 5, "selected": False},
              {"recipe": "svsl_step", "lr": 0.3, "lstar": 1}]
    t = make_tables(models)
    pairs, refused = syn.contrasts(t, [m for m, _ in syn.contrast_models(t)])
    assert [(syn._name(a), syn._name(b)) for a, b in pairs["loss"]] == [
        ("ce_step digits/mlp lr 0.01", "svsl_step digits/mlp lr 0.01"),
        ("ce_step digits/mlp lr 0.1", "svsl_step digits/mlp lr 0.1")]
    assert refused["loss"] == []  # lr 0.3: no ce_step to meet, no refusal either
    loss = claim(syn.claims(t), "depends on the loss")
    assert loss["holds"] and "Yes: ℓ* moves with the loss in 2 of 2 decided" in loss["measured"]
    assert ("digits/mlp lr 0.1: ℓ* per seed ce_step 3 → svsl_step 5, Δℓ* = +2 (n = 1)"
            in loss["measured"])


def test_the_shift_of_the_collapse_layer_over_seeds_has_a_t_interval():
    assert syn.effect([2.0, 2.0, 2.0]).moved is True  # no spread: the interval is the point
    same = syn.effect([0.0, 0.0])
    assert same.moved is False and same.text() == "Δℓ* = +0 ± 0 (95 % CI +0 to +0, n = 2)"
    wide = syn.effect([0.0, 2.0])  # mean 1, sd 1.41, t(0.975, 1) · sd / √2 = 12.7
    assert wide.moved is None and round(wide.low, 1) == -11.7 and round(wide.high, 1) == 13.7
    assert syn.effect([1.0]).text() == "Δℓ* = +1 (n = 1)" and syn.effect([1.0]).moved is True
    assert syn.effect([]).moved is None


def test_a_renamed_group_changes_nothing_but_its_name():
    lstars = {"mse_onecycle": 2, "mse_step": 3, "ce_step_aug": None, "ce_step": 4,
              "svsl_step": 3}
    named = make_tables(recipes(lstars))
    renamed = make_tables([{**m, "recipe": f"r{i}", "as": m["recipe"]}
                           for i, m in enumerate(reversed(recipes(lstars)))])
    assert list(syn.claims(renamed)["holds"]) == list(syn.claims(named)["holds"])
    table = syn.depths_table(renamed)
    assert list(table["recipe"]) == ["r4", "r3", "r2", "r1", "r0"]  # the recipes' order
    assert table.drop(columns="recipe").equals(syn.depths_table(named).drop(columns="recipe"))


def test_the_three_depths_of_curves_with_known_answers():
    curve = pd.DataFrame({"nc1_ratio": [0.5, 0.3, 0.1, 0.3, 0.1, 0.05],
                          "nc4_mismatch": [0.3, 0.005, 0.02, 0.0, 0.0, 0.0],
                          "ncc_accuracy": [0.8, 0.995, 0.97, 1.0, 1.0, 1.0]})
    thresholds = Thresholds(collapse_eps=0.2, ncc=0.99)
    d = syn.depths(curve, thresholds)
    # ℓ* and ℓ_NCC: from here *on*; ℓ_eff: the first layer that reaches the threshold.
    assert (d.collapse, d.ncc, d.effective, d.last) == (4, 3, 1, 5)
    never = syn.depths(curve.assign(nc1_ratio=0.5), thresholds)
    assert math.isnan(never.collapse)


def test_settle_epoch_is_where_a_depth_keeps_its_final_value():
    assert syn.settle_epoch(pd.Series([5.0, 4.0, 3.0, 3.0], index=[0, 2, 4, 6])) == 4
    assert syn.settle_epoch(pd.Series([math.nan, 3.0, math.nan], index=[0, 2, 4])) == 4
    assert syn.settle_epoch(pd.Series([2.0, 2.0], index=[0, 1])) == 0


# --- the questions: the words follow the numbers ------------------------------------------

def test_q1_says_yes_when_the_collapse_layer_moves_with_the_loss_and_no_when_it_does_not():
    moving = syn.claims(make_tables(recipes({"mse_step": 4, "ce_step": 2, "svsl_step": 2,
                                             "mse_onecycle": 4})))
    loss = claim(moving, "depends on the loss")
    assert loss["holds"] and loss["measured"].startswith("Yes: ℓ* moves with the loss in 2 of 3")
    assert "digits/mlp: ℓ* per seed mse_step 4 → ce_step 2, Δℓ* = -2 (n = 1)" in loss["measured"]
    schedule = claim(moving, "depends on the schedule")
    assert schedule["holds"] is False
    assert schedule["measured"].startswith("No: ℓ* does not move with the schedule in 1 of 1")

    still = syn.claims(make_tables(recipes({"mse_step": 3, "ce_step": 3, "svsl_step": 3,
                                            "mse_onecycle": 5})))
    assert claim(still, "depends on the loss")["measured"].startswith("No: ")
    assert claim(still, "depends on the schedule")["measured"].startswith("Yes: ")
    # No pair differs in augmentation alone here: cannot tell, said so.
    augment = claim(still, "depends on augmentation")
    assert augment["holds"] is None and "no two recipe models differ" in augment["measured"]


def test_q1_counts_a_collapse_in_one_recipe_only_as_a_move_and_none_in_both_as_unknown():
    table = syn.claims(make_tables(recipes({"ce_step_aug": None, "ce_step": 3})))
    assert claim(table, "augmentation")["holds"] is True
    table = syn.claims(make_tables(recipes({"ce_step_aug": None, "ce_step": None})))
    assert claim(table, "augmentation")["holds"] is None


def test_q2_compares_the_ncc_depth_with_the_collapse_layer_and_the_effective_depth():
    same = [{"recipe": r, "lstar": 3, "lncc": 3, "leff": 2} for r in RECIPES]
    table = syn.claims(make_tables(same))
    row = claim(table, "same depth as variability collapse")
    assert row["holds"] and row["measured"].startswith("Yes: ℓ_NCC is within 1 layer of ℓ* "
                                                       "in 5 of 5")
    assert "at about the same layer" in row["measured"]
    apart = [{"recipe": r, "lstar": 5, "lncc": 2, "leff": 2} for r in RECIPES]
    row = claim(syn.claims(make_tables(apart)), "same depth as variability collapse")
    assert row["holds"] is False
    assert row["measured"].startswith("No: ℓ_NCC is not within 1 layer of ℓ* in 5 of 5")
    assert "3.0 layers shallower than ℓ*" in row["measured"]
    assert claim(syn.claims(make_tables(apart)), "effective depth")["holds"] is True


def test_q2_through_training_tells_which_depth_settles_first():
    early = [{"recipe": r, "lstar": 4, "lncc": 3, "leff": 3,
              "settle": {"lstar": 6, "lncc": 2}} for r in RECIPES]
    row = claim(syn.claims(make_tables(early)), "settles")
    assert row["holds"] and "ℓ_NCC settles at epoch 2, ℓ* at 6" in row["measured"]
    late = [{**m, "settle": {"lstar": 2, "lncc": 6}} for m in early]
    row = claim(syn.claims(make_tables(late)), "settles")
    assert row["holds"] is False and row["measured"].startswith("No: ℓ_NCC reaches its final "
                                                                "layer later")
    row = claim(syn.claims(make_tables(early, epoch_metrics=False)), "settles")
    assert row["holds"] is None


def etf_models(fixed: dict[int, int | None]) -> list[dict]:
    """mse_step's free MLP (ℓ* = 3 of 6: k* = 4) and the ETF runs k → ℓ*."""
    return [{"recipe": "mse_step", "lstar": 3, "lncc": 3, "leff": 3},
            *({"recipe": "mse_step", "arch": "mlp_etf", "etf": k, "lstar": lstar,
               "lncc": lstar, "leff": lstar, "test": 0.5} for k, lstar in fixed.items())]


def test_q3_finds_the_free_model_and_says_whether_etf_layers_move_the_collapse_layer():
    t = make_tables(etf_models({1: 3, 6: None}))
    cases = syn.etf_cases(t)
    assert [(c.model.key["etf_layers"], c.free.arch, c.kstar) for c in cases] == [
        (1, "mlp", 4), (6, "mlp", 4)]
    table = syn.claims(t)
    moves = claim(table, "moves the collapse layer")
    assert moves["holds"] is False  # one of two moved: not more than half
    # not reached with k = 6: at L + 1 = 7, four layers past the free model's ℓ* = 3
    assert ("digits/mlp_etf k=6: ℓ* per seed 3 → none, Δℓ* = +4 (n = 1), k* = 4, test acc "
            "0.950 → 0.500"
            in moves["measured"])
    inside = claim(table, "k ≤ k*")
    assert inside["holds"] and inside["measured"].startswith("Yes: ℓ* stays in 1 of 1 decided")

    table = syn.claims(make_tables(etf_models({1: 1, 2: 5, 6: None})))
    assert claim(table, "moves the collapse layer")["measured"].startswith(
        "Yes: fixing top layers moves ℓ* in 3 of 3 decided")
    assert claim(table, "k ≤ k*")["measured"].startswith("No: ℓ* moves in 2 of 2")


def test_q3_without_an_etf_axis_cannot_tell():
    row = claim(syn.claims(make_tables(recipes({"mse_step": 3}))), "moves the collapse layer")
    assert row["holds"] is None and "no ETF run" in row["measured"]


def retention_for(lstars: dict[str, int], high_after: bool) -> dict[str, list[float]]:
    """Retention ℓ → ℓ+1 of each recipe's run: 0.6 before ℓ*, 0.95 from it (or reversed)."""
    lo, hi = (0.6, 0.95) if high_after else (0.95, 0.6)
    return {f"{r}-digits-mlp-s0": [hi if i >= lstar else lo for i in range(LAYERS - 1)]
            for r, lstar in lstars.items()}


def test_q4_relates_retention_to_the_collapse_layer_in_words_from_the_numbers():
    lstars = {"mse_onecycle": 2, "mse_step": 3, "ce_step": 4, "svsl_step": 5}
    table = syn.claims(make_tables(recipes(lstars), retention_for(lstars, high_after=True)))
    after = claim(table, "higher from the collapse layer on")
    assert after["holds"] and after["measured"].startswith(
        "Yes: retention is higher from ℓ* on than before it in 8 of 8")
    assert "0.60 before ℓ* = 2, 0.95 from it" in after["measured"]
    # Deeper ℓ*: fewer high-retention transitions, lower mean retention.
    trend = claim(table, "deeper collapse layer goes with lower")
    assert trend["holds"] and "ρ(ℓ*/L, mean retention) = -1.00" in trend["measured"]

    table = syn.claims(make_tables(recipes(lstars), retention_for(lstars, high_after=False)))
    assert claim(table, "higher from the collapse layer on")["measured"].startswith(
        "No: retention is not higher from ℓ* on than before it in 8 of 8")
    trend = claim(table, "deeper collapse layer goes with lower")
    assert trend["holds"] is False and "goes with more retention" in trend["measured"]


def test_q4_without_a_feature_analysis_cannot_tell():
    table = syn.claims(make_tables(recipes({"mse_step": 3, "ce_step": 4})))
    assert claim(table, "higher from the collapse layer on")["holds"] is None
    assert claim(table, "deeper collapse layer")["holds"] is None


# --- every claim row: tables where it holds, and tables where it fails --------------------

def _same_depths(lstar: int, lncc: int, leff: int) -> Tables:
    return make_tables([{"recipe": r, "lstar": lstar, "lncc": lncc, "leff": leff}
                        for r in RECIPES])


def _settling(lstar_at: int, lncc_at: int) -> Tables:
    return make_tables([{"recipe": r, "lstar": 4, "lncc": 3, "leff": 3,
                         "settle": {"lstar": lstar_at, "lncc": lncc_at}} for r in RECIPES])


Q4_LSTARS = {"mse_onecycle": 2, "mse_step": 3, "ce_step": 4, "svsl_step": 5}
CLAIM_PAIRS: dict[str, tuple] = {  # a claim's words → (holding tables, failing tables)
    "depends on the loss": (lambda: make_tables(recipes({"mse_step": 4, "ce_step": 2})),
                            lambda: make_tables(recipes({"mse_step": 3, "ce_step": 3}))),
    "depends on the schedule": (
        lambda: make_tables(recipes({"mse_onecycle": 5, "mse_step": 3})),
        lambda: make_tables(recipes({"mse_onecycle": 3, "mse_step": 3}))),
    "depends on augmentation": (
        lambda: make_tables(recipes({"ce_step_aug": 5, "ce_step": 3})),
        lambda: make_tables(recipes({"ce_step_aug": 3, "ce_step": 3}))),
    "same depth as variability collapse": (lambda: _same_depths(3, 3, 2),
                                           lambda: _same_depths(5, 2, 2)),
    "same depth as the effective depth": (lambda: _same_depths(3, 3, 2),
                                          lambda: _same_depths(3, 5, 1)),
    "settles at its final depth": (lambda: _settling(6, 2), lambda: _settling(2, 6)),
    "moves the collapse layer": (lambda: make_tables(etf_models({1: 1, 2: 5, 6: None})),
                                 lambda: make_tables(etf_models({1: 3, 2: 3}))),
    "k ≤ k*": (lambda: make_tables(etf_models({1: 3, 6: None})),
               lambda: make_tables(etf_models({1: 1, 2: 5, 6: None}))),
    "higher from the collapse layer on": (
        lambda: make_tables(recipes(Q4_LSTARS), retention_for(Q4_LSTARS, high_after=True)),
        lambda: make_tables(recipes(Q4_LSTARS), retention_for(Q4_LSTARS, high_after=False))),
    "deeper collapse layer goes with lower": (
        lambda: make_tables(recipes(Q4_LSTARS), retention_for(Q4_LSTARS, high_after=True)),
        lambda: make_tables(recipes(Q4_LSTARS), retention_for(Q4_LSTARS, high_after=False))),
}


def test_every_claim_row_has_a_holds_and_a_fails_case():
    rows = syn.claims(full_tables())["claim"]
    assert len(rows) == len(CLAIM_PAIRS)
    for text in rows:
        assert sum(words in text for words in CLAIM_PAIRS) == 1, text


@pytest.mark.parametrize("words", list(CLAIM_PAIRS))
def test_each_claim_holds_on_its_holding_tables(words):
    row = claim(syn.claims(CLAIM_PAIRS[words][0]()), words)
    assert row["holds"] is True and row["measured"].startswith("Yes: "), row["measured"]


@pytest.mark.parametrize("words", list(CLAIM_PAIRS))
def test_each_claim_fails_on_its_failing_tables(words):
    row = claim(syn.claims(CLAIM_PAIRS[words][1]()), words)
    assert row["holds"] is False and row["measured"].startswith("No: "), row["measured"]


# --- tables and figures ----------------------------------------------------------------

def test_the_depths_table_holds_each_recipe_model_with_its_three_depths():
    table = syn.depths_table(make_tables(recipes({"mse_step": 4, "ce_step_aug": None})))
    assert list(table["recipe"]) == ["mse_step", "ce_step_aug"]  # the recipes' order
    step = table.iloc[0]
    assert (step["L"], step["ℓ*"], step["ℓ_NCC"], step["ℓ_eff"]) == (6, 4, 3, 3)
    assert step["schedule"] == "step decay" and step["factors of"] == "Rangamani et al."
    assert step["interpolation epoch"] == 3
    assert math.isnan(table.iloc[1]["ℓ*"])


def full_tables() -> Tables:
    lstars = {"mse_onecycle": 2, "mse_step": 3, "ce_step_aug": None, "ce_step": 4,
              "svsl_step": 3}
    models = recipes(lstars) + etf_models({1: 3, 6: None})[1:]
    present = {r: v for r, v in lstars.items() if v is not None}
    return make_tables(models, retention_for(present, high_after=True))


def empty_tables() -> Tables:
    empty = pd.DataFrame(columns=["run", "dataset", "arch", "seed", "epoch", "layer",
                                  "layer_index", "split", "metric", "value", "group"])
    runs = pd.DataFrame(columns=["run", "group", "dataset", "arch", "seed", "lr",
                                 "weight_decay", "diverged", "final_train_acc",
                                 "final_test_acc", "selected"])
    return Tables(metrics=empty, training=pd.DataFrame(), spectra=pd.DataFrame(),
                  epoch_metrics=pd.DataFrame(), runs=runs)


@pytest.mark.parametrize("make", [full_tables, empty_tables])
def test_every_table_is_built_and_every_claim_row_says_what_was_measured(make):
    t = make()
    assert tuple(syn.TABLES) == PAPER_TABLES["synthesis"]
    for name, build in syn.TABLES.items():
        assert isinstance(build(t), pd.DataFrame), name
    table = syn.claims(t)
    # Q1 and Q3 weigh their seeds themselves (a t-interval of each shift): their rows say so
    assert list(table.columns) == SEED_CLAIM_COLUMNS and len(table) == 10
    assert table["seeds"].notna().sum() == 5
    assert table["seeds"].dropna().str.endswith("together, by t-interval").all()
    assert table["measured"].str.match(r"(Yes|No|Cannot tell): ").all()


@pytest.mark.parametrize("make", [full_tables, empty_tables])
@pytest.mark.parametrize("name", PAPER_FIGURES["synthesis"])
def test_every_figure_draws_within_the_page(make, name):
    fig = syn.FIGURES[name](make().only(PAPER_FIGURE_READS["synthesis"][name], name))
    assert isinstance(fig, Figure)
    width, height = fig.get_size_inches()
    assert width <= 9.5 and height <= 11.0
    fig.savefig(__import__("io").BytesIO(), format="png", dpi=40)


def test_a_question_without_a_decided_case_says_why():
    assert syn._undecided(1, 2, "contrast") == (
        "no contrast is decided: 1 with a shift whose 95 % interval covers 0 and reaches past "
        "±1, 1 where neither model reaches ℓ*")
    assert syn._undecided(0, 1, "ETF run") == (
        "no ETF run is decided: 1 where neither model reaches ℓ*")
    shown = syn._refusals([f"pair {i}" for i in range(5)], "the loss")
    assert shown == ["refused, pair 0", "refused, pair 1", "refused, pair 2",
                     "2 more pairs refused: they differ in the loss and in more"]
