"""Rangamani et al. (2023) (nclayers.papers.rangamani2023): the claims on small hand-built tidy
tables with known answers (a model collapsed from layer 3 where every claim holds, a weakly
collapsed one where none of the later ones does, one without collapse, one collapsed only in
its last layer, an ETF experiment at one lr and one that re-selects the lr per k), which runs
each figure reads, and every figure on such tables and on tables without the ETF axis (a
placeholder that names the config it needs)."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest
from matplotlib.figure import Figure

from nclayers.papers import CLAIM_COLUMNS, Tables, query
from nclayers.papers import rangamani2023 as rg
from nclayers.vocabulary import (
    DEFAULT_SELECT,
    PAPER_FIGURE_READS,
    PAPER_FIGURES,
    PAPER_TABLES,
    Thresholds,
)

MAX_WIDTH, MAX_HEIGHT = 9.5, 11.0
C = 4  # classes
WIDTH = 20  # singular values of each hidden weight (the classifier has C)
LAYERS = 7  # input + 6 hidden layers, indices 0 … 6
EPOCHS = (0, 5, 10)

# Per model, the per-layer values at the last epoch (train split), input first.
GOOD = {  # collapsed from layer 3 on, every claim holds
    "nc1_ratio": [0.6, 0.5, 0.4, 0.15, 0.1, 0.05, 0.02],
    "ncc_accuracy": [0.7, 0.8, 0.9, 0.995, 1.0, 1.0, 1.0],
    "nc2_angle_shift": [0.05, 0.04, 0.03, 0.02, 0.01, 0.005, -0.001],
    "nc2_equinorm": [0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01],
    "nc2_equiangle_ratio": [3.0, 2.5, 2.0, 1.0, 0.5, 0.2, 0.1],
    "nc3_pabs": [0.3, 0.35, 0.4, 0.8, 0.85, 0.9, 0.95],
    "stable_rank": [10.0, 12.0, 20.0, 15.0, 5.0, 3.0, 2.0],  # rises to layer 2, then falls
    "low_rank": 3,  # the weights reading layers ≥ 3 have C dominant singular values
    "top_c": [1.0] * C,  # … all equal
}
WEAK = {  # collapsed from layer 3 on (NC1), but none of the other claims holds
    **GOOD,
    "ncc_accuracy": [0.7, 0.8, 0.9, 0.9, 0.95, 0.97, 1.0],  # 0.1 below the network at ℓ*
    "nc2_equinorm": [0.5, 0.01, 0.3, 0.05, 0.1, 0.2, 0.3],  # grows through layers 3 … 6
    "nc3_pabs": [0.3, 0.3, 0.3, 0.35, 0.35, 0.35, 0.35],  # +0.05 over initialisation
    "stable_rank": [10.0, 20.0, 15.0, 5.0, 3.0, 2.0, 1.5],  # only falls: no hunchback
    "low_rank": None,  # σ_k = 1/(k + 1) everywhere: no dominant top C, and unequal
}
NONE = {**GOOD, "nc1_ratio": [0.6, 0.5, 0.4, 0.3, 0.3, 0.3, 0.25]}  # never below ε = 0.2
LAST_ONLY = {**GOOD, "nc1_ratio": [0.6, 0.5, 0.4, 0.3, 0.3, 0.3, 0.1]}  # only layer 6
PABS_INIT = 0.3


def run_rows(run: str, values: dict, *, group: str, dataset: str = "digits",
             arch: str = "mlp", seed: int = 0, axes: dict | None = None,
             logits: bool = False, names: list[str] | None = None
             ) -> tuple[list[dict], list[dict]]:
    """Tidy metric rows (train and test) and spectra rows of one run: at the last epoch the
    ``values``, at epoch 0 nothing collapsed (ratio 0.6, PABS 0.3, σ_k = 1/(k + 1)), halfway
    between at the middle epoch; ``logits`` adds a tapped ``classifier`` (a ResNet's output)
    collapsed to a ratio of 0.01; ``names``: the layers' names (default input, layer1 …)."""
    axes = axes or {}
    ids = {"run": run, "dataset": dataset, "arch": arch, "seed": seed}
    design = {"group": group, **axes}
    names = names or ["input", *(f"layer{i}" for i in range(1, LAYERS))]
    metrics, spectra = [], []
    for epoch in EPOCHS:
        share = epoch / EPOCHS[-1]
        for index, name in enumerate(names):
            at = {"nc1_ratio": 0.6, "ncc_accuracy": 0.5, "nc2_angle_shift": 0.05,
                  "nc2_equinorm": 0.6, "nc2_equiangle_ratio": 3.0, "nc3_pabs": PABS_INIT,
                  "stable_rank": 10.0}
            now = {m: at[m] + share * (values[m][index] - at[m]) for m in at}
            ratio = now.pop("nc1_ratio")
            now.update(nc1_ratio=ratio, tr_sigma_t=10.0, tr_sigma_w=10.0 * ratio,
                       tr_sigma_b=10.0 * (1 - ratio))
            for split in ("train", "test"):
                for metric, value in now.items():
                    metrics.append({**ids, "epoch": epoch, "layer": name,
                                    "layer_index": index, "split": split, "metric": metric,
                                    "value": value - (0.01 if split == "test" and
                                                      metric == "ncc_accuracy" else 0),
                                    **design})
            if logits and index == LAYERS - 1:
                metrics += [{**ids, "epoch": epoch, "layer": "classifier",
                             "layer_index": LAYERS, "split": split, "metric": metric,
                             "value": 0.01, **design}
                            for split in ("train", "test") for metric in now]
            low = (values["low_rank"] is not None and epoch == EPOCHS[-1]
                   and index >= values["low_rank"])
            count = C if index == LAYERS - 1 else WIDTH
            sigmas = [(values["top_c"][k] if k < C else 0.01) if low else 1 / (k + 1)
                      for k in range(count)]
            for k, sigma in enumerate(sigmas):
                spectra.append({**ids, "epoch": epoch, "layer": name, "layer_index": index,
                                "k": k, "sigma": sigma, "share": sigma / sum(sigmas),
                                **design})
    return metrics, spectra


def make_tables(models: list[dict]) -> Tables:
    """Tables of ``models``: dicts with run, values, group, and optionally dataset, arch,
    seed, axes, selected, train (final train acc), test (final test acc), diverged, interp
    (the interpolation epoch; None: never reached)."""
    metrics, spectra, runs = [], [], []
    for m in models:
        rows, spec = run_rows(m["run"], m["values"], group=m["group"],
                              dataset=m.get("dataset", "digits"), arch=m.get("arch", "mlp"),
                              seed=m.get("seed", 0), axes=m.get("axes"),
                              logits=m.get("logits", False), names=m.get("names"))
        # the derived row aggregate writes per run: the first epoch at the interpolation
        # threshold (``interp``; None: never reached)
        interp = m.get("interp", EPOCHS[1])
        rows.append({"run": m["run"], "dataset": m.get("dataset", "digits"),
                     "arch": m.get("arch", "mlp"), "seed": m.get("seed", 0),
                     "epoch": EPOCHS[-1], "layer": None, "layer_index": None, "split": "train",
                     "metric": "interpolation_epoch",
                     "value": math.nan if interp is None else float(interp),
                     "group": m["group"], **m.get("axes", {})})
        metrics += rows
        spectra += spec
        runs.append({"run": m["run"], "group": m["group"], "dataset": m.get("dataset", "digits"),
                     "arch": m.get("arch", "mlp"), "seed": m.get("seed", 0),
                     **m.get("axes", {}), "diverged": m.get("diverged", False),
                     "final_epoch": EPOCHS[-1], "final_train_acc": m.get("train", 1.0),
                     "final_test_acc": m.get("test", 0.95),
                     "selected": m.get("selected", True)})
    metrics, spectra, runs = pd.DataFrame(metrics), pd.DataFrame(spectra), pd.DataFrame(runs)
    design = design_of(models)
    # The axis columns after group, as sweeps.with_design writes them (NaN off their group).
    axes = [c for c in runs.columns if c not in (
        "run", "group", "dataset", "arch", "seed", "diverged", "final_epoch",
        "final_train_acc", "final_test_acc", "selected")]
    runs = runs[["run", "group", "dataset", "arch", "seed", *axes, "diverged", "final_epoch",
                 "final_train_acc", "final_test_acc", "selected"]]
    columns = ["run", "dataset", "arch", "seed", "epoch", "layer", "layer_index"]
    metrics = metrics.reindex(columns=[*columns, "split", "metric", "value", "group", *axes])
    spectra = spectra.reindex(columns=[*columns, "k", "sigma", "share", "group", *axes])
    return Tables(metrics=metrics, training=pd.DataFrame(), spectra=spectra,
                  epoch_metrics=pd.DataFrame(), runs=runs, design=design)


def design_of(models: list[dict]) -> pd.DataFrame:
    """design.csv's front columns, as the workflow writes them: the axes of a run are those
    of its ``axes`` whose value differs within its group; lr and weight_decay are selected
    (vocabulary.DEFAULT_SELECT), the others compared."""
    rows = []
    for m in models:
        group = [o.get("axes", {}) for o in models if o["group"] == m["group"]]
        axes = [a for a in m.get("axes", {}) if len({str(g.get(a)) for g in group}) > 1]
        rows.append({"run": m["run"], "group": m["group"], "seed": m.get("seed", 0),
                     "dataset": m.get("dataset", "digits"), "arch": m.get("arch", "mlp"),
                     "selected_axes": ";".join(a for a in axes if a in DEFAULT_SELECT),
                     "compared_axes": ";".join(a for a in axes if a not in DEFAULT_SELECT)})
    return pd.DataFrame(rows)


def etf_models(accuracy: dict[int, float], reselect: bool = False) -> list[dict]:
    """An ETF experiment as the presets have it: a group of its own ("etf") training the MLP
    with its top k layers fixed (etf_layers k → final test accuracy) at one lr, k = 0 its
    baseline (GOOD: ℓ* = 3 of 6, k* = 4). ``reselect``: the lr instead swept and selected per
    k, in the free MLP's group (k = 0 at lr 0.01, the others at 0.001), which the paper's
    design does not do."""
    if reselect:
        return [{"run": f"mlp-etf{k}-s0", "group": "mlp", "values": GOOD,
                 "axes": {"lr": 0.01 if k == 0 else 0.001, "etf_layers": k}, "test": acc}
                for k, acc in accuracy.items()] + [
            {"run": f"mlp-etf{k}-lr1-s0", "group": "mlp", "values": NONE, "test": 0.5,
             "axes": {"lr": 1.0, "etf_layers": k}, "selected": False} for k in accuracy]
    return [{"run": f"etf-etf{k}-s0", "group": "etf", "arch": "mlp_etf", "values": GOOD,
             "axes": {"lr": 0.01, "etf_layers": k}, "test": acc}
            for k, acc in accuracy.items()]


def experiment(etf: bool = True) -> Tables:
    """Three free models in three groups (GOOD, WEAK, NONE), a non-selected lr of the first
    that does not collapse and one that never trained, and an ETF experiment whose k = 2
    keeps and k = 5 loses accuracy (its baseline's ℓ* = 3 of 6: k* = 4)."""
    models = [
        {"run": "mlp-s0", "group": "mlp", "values": GOOD, "axes": {"lr": 0.01}},
        {"run": "mlp-lr1-s0", "group": "mlp", "values": NONE, "axes": {"lr": 1.0},
         "selected": False, "test": 0.5},
        {"run": "mlp-lr10-s0", "group": "mlp", "values": NONE, "axes": {"lr": 10.0},
         "selected": False, "test": 0.1, "train": 0.1, "interp": None},
        *(etf_models({0: 0.95, 2: 0.945, 5: 0.80}) if etf else []),
        {"run": "conv-s0", "group": "convnet", "arch": "convnet", "values": WEAK,
         "axes": {"lr": 0.01}},
        {"run": "res-s0", "group": "resnet", "arch": "resnet18", "values": NONE,
         "axes": {"lr": 0.01}},
    ]
    return make_tables(models)


def claims_of(table: pd.DataFrame, model: str) -> pd.DataFrame:
    return table[table["claim"].str.endswith(f"[{model}]")].reset_index(drop=True)


def test_the_module_draws_exactly_the_figures_and_tables_the_vocabulary_names():
    assert tuple(rg.FIGURES) == PAPER_FIGURES["rangamani2023"]
    assert tuple(rg.TABLES) == PAPER_TABLES["rangamani2023"]


CLAIMS = ("nc1", "ncc", "nc2", "pabs", "rank", "equal", "hunch")  # a free model's, in order


def verdicts(table: pd.DataFrame, model: str) -> dict[str, object]:
    rows = claims_of(table, model)
    assert len(rows) == len(CLAIMS), rows.to_string()
    return dict(zip(CLAIMS, rows["holds"], strict=True))


def measured(table: pd.DataFrame, model: str, claim: str) -> str:
    return claims_of(table, model).loc[CLAIMS.index(claim), "measured"]


def test_a_model_collapsed_from_layer_3_holds_every_claim():
    table = rg.claims(experiment())
    assert list(table.columns) == CLAIM_COLUMNS
    assert verdicts(table, "digits / mlp") == dict.fromkeys(CLAIMS, True), table.to_string()
    assert "ℓ* = layer3 (index 3) of 6" in measured(table, "digits / mlp", "nc1")
    assert "gain 0.575" in measured(table, "digits / mlp", "pabs")  # 0.8 … 0.95 vs 0.3
    assert "top-C share 0.962" in measured(table, "digits / mlp", "rank")  # 4 / (4 + 16·0.01)
    assert "sd/mean of the top C σ 0.000" in measured(table, "digits / mlp", "equal")
    assert "peak 20 at 2" in measured(table, "digits / mlp", "hunch")
    # each claim names its threshold and where the paper makes it
    claims = claims_of(table, "digits / mlp").set_index(pd.Index(CLAIMS))
    assert "deepest third" in claims.loc["nc2", "claim"]
    assert "Fig. 3" in claims.loc["nc2", "where"]
    assert f"≤ {rg.TOP_C_SPREAD:g}" in claims.loc["equal", "claim"]
    assert "Sec. 4 (NC3)" in claims.loc["equal", "where"]
    assert "first increases, then decreases" in claims.loc["hunch", "claim"]
    assert "Fig. 6 caption" in claims.loc["hunch", "where"]


def test_a_weakly_collapsed_model_fails_the_later_claims():
    table = rg.claims(experiment())
    assert verdicts(table, "digits / convnet") == {
        "nc1": True, **dict.fromkeys(CLAIMS[1:], False)}, table.to_string()
    assert "largest gap 0.100" in measured(table, "digits / convnet", "ncc")
    # equinorm: 0.05 at layer 3 (an earlier collapsed layer) below 0.2 at layers 5-6
    assert "equinorm 0.05 (min over 3–4) vs 0.2 (min over 5–6)" in measured(
        table, "digits / convnet", "nc2")
    assert "peak 20 at 1" in measured(table, "digits / convnet", "hunch")


def test_nc2_must_be_smallest_in_the_deepest_collapsed_layers_for_each_measure():
    def nc2(**values) -> object:
        t = make_tables([{"run": "m-s0", "group": "mlp", "values": {**GOOD, **values}}])
        return verdicts(rg.claims(t), "digits / mlp")["nc2"]

    assert nc2() is True
    # the angle shift is judged in absolute value: -0.02 and -0.03 at layers 5-6 are further
    # from an ETF than 0.005 at layer 4
    assert nc2(nc2_angle_shift=[0.05, 0.04, 0.03, 0.01, 0.005, -0.02, -0.03]) is False
    assert nc2(nc2_equiangle_ratio=[3.0, 2.5, 2.0, 1.0, 0.1, 0.2, 0.3]) is False
    # a flat tail is no decrease with depth
    assert nc2(nc2_equinorm=[0.5, 0.4, 0.3, 0.1, 0.1, 0.1, 0.1]) is False
    # the uncollapsed layers do not count: a low value at layer 1 is fine
    assert nc2(nc2_equinorm=[0.5, 0.001, 0.3, 0.2, 0.1, 0.05, 0.01]) is True


def test_the_top_c_singular_values_must_be_nearly_equal_not_only_dominant():
    unequal = {**GOOD, "top_c": [1.0, 0.8, 0.6, 0.4]}  # dominant (share 0.95), sd/mean 0.32
    result = verdicts(rg.claims(make_tables([{"run": "m-s0", "group": "mlp",
                                              "values": unequal}])), "digits / mlp")
    assert (result["rank"], result["equal"]) == (True, False)
    near = {**GOOD, "top_c": [1.0, 0.95, 0.9, 0.85]}  # sd/mean 0.065
    result = verdicts(rg.claims(make_tables([{"run": "m-s0", "group": "mlp",
                                              "values": near}])), "digits / mlp")
    assert result["equal"] is True


def test_the_stable_rank_must_rise_then_fall_in_the_collapsed_layers():
    def hunch(ranks: list[float]) -> object:
        t = make_tables([{"run": "m-s0", "group": "mlp",
                          "values": {**GOOD, "stable_rank": ranks}}])
        return verdicts(rg.claims(t), "digits / mlp")["hunch"]

    assert hunch([10.0, 12.0, 20.0, 15.0, 5.0, 3.0, 2.0]) is True
    assert hunch([10.0, 12.0, 14.0, 16.0, 18.0, 19.0, 20.0]) is False  # only rises
    assert hunch([10.0, 2.0, 20.0, 15.0, 15.0, 16.0, 15.0]) is False  # flat after ℓ*
    assert hunch([30.0, 20.0, 15.0, 12.0, 5.0, 3.0, 2.0]) is False  # only falls (input aside)


# A ResNet tapped inside its blocks (taps: convs): block outputs and each block's inner
# activation, the one read by the convolution that meets the shortcut.
RESNET_LAYERS = ["input", "stem", "layer1.0.act1", "layer1.0", "layer1.1.act1", "layer1.1",
                 "avgpool"]


def test_resnet_alignment_must_be_strongest_just_before_a_residual_connection():
    """Collapsed from layer 3: layer1.1.act1 (index 4) is read by the block's last
    convolution; layer1.0 and layer1.1 (3, 5) are the blocks' other layers; avgpool neither."""
    def residual(pabs: list[float]) -> tuple[object, str]:
        t = make_tables([{"run": "r-s0", "group": "resnet", "arch": "resnet18",
                          "names": RESNET_LAYERS, "values": {**GOOD, "nc3_pabs": pabs}}])
        rows = claims_of(rg.claims(t), "digits / resnet18")
        assert len(rows) == len(CLAIMS) + 1  # the ResNet's claim, before the stable rank's
        row = rows.iloc[CLAIMS.index("hunch")]
        assert "just before a residual connection" in row["claim"] and "Fig. 4" in row["where"]
        return row["holds"], row["measured"]

    holds, text = residual([0.3, 0.35, 0.4, 0.8, 0.95, 0.85, 0.99])
    assert holds is True, text
    assert "before a residual connection 0.950 (1 layer)" in text
    assert "elsewhere in the blocks 0.825 (2 layers, 0.800–0.850)" in text
    assert "highest at layer1.1.act1" in text
    # the highest PABS at a block's output: not strongest before the residual connection
    holds, text = residual([0.3, 0.35, 0.4, 0.8, 0.85, 0.9, 0.95])
    assert holds is False and "highest at layer1.1" in text
    # collapsed only from layer 5 on: no inner activation among the collapsed layers
    t = make_tables([{"run": "r-s0", "group": "resnet", "arch": "resnet18",
                      "names": RESNET_LAYERS,
                      "values": {**GOOD, "nc1_ratio": [0.6, 0.5, 0.4, 0.3, 0.3, 0.1, 0.05]}}])
    row = claims_of(rg.claims(t), "digits / resnet18").iloc[CLAIMS.index("hunch")]
    assert row["holds"] is None and "no collapsed layer inside residual blocks" in row["measured"]


def test_a_model_without_collapse_fails_nc1_and_cannot_tell_the_rest():
    table = rg.claims(experiment())
    none = claims_of(table, "digits / resnet18")
    assert verdicts(table, "digits / resnet18")["nc1"] is False
    assert "no layer ℓ*" in none.loc[0, "measured"]
    # every other claim speaks of the collapsed layers: there are none to look at
    assert none.loc[1:, "holds"].isna().all()


def test_collapse_only_in_the_last_layer_is_not_intermediate_collapse():
    tables = make_tables([{"run": "m-s0", "group": "mlp", "values": LAST_ONLY}])
    first = rg.claims(tables).iloc[0]
    assert first["holds"] == False  # noqa: E712
    assert "index 6" in first["measured"] and "only the last layer" in first["measured"]
    # …and such a run is a solution without intermediate collapse (Fig. 8).
    assert list(rg._no_collapse(tables)["run"]) == ["m-s0"]
    # …if it trained: one that never reached the interpolation threshold is not
    never = make_tables([{"run": "m-s0", "group": "mlp", "values": LAST_ONLY, "interp": None}])
    assert rg._no_collapse(never).empty


def test_the_logits_are_no_layer_of_the_papers_figures_and_claims():
    tables = make_tables([{"run": "r-s0", "group": "resnet", "arch": "resnet18",
                           "values": NONE, "logits": True}])
    assert "classifier" in set(tables.metrics["layer"])
    first = rg.claims(tables).iloc[0]
    assert first["holds"] == False and "no layer ℓ*" in first["measured"]  # noqa: E712
    fig = rg.fig2_traces(tables)
    assert "classifier" not in {t.get_text() for t in fig.axes[0].get_xticklabels()}


def test_the_etf_claims_compare_with_the_baseline_at_its_collapse_layer():
    table = rg.claims(experiment())
    etf = claims_of(table, "digits / mlp_etf")
    assert etf["where"].str.contains("5.3").all()
    assert etf["holds"].tolist() == [True, True], etf.to_string()
    assert "one lr 0.01 for every k" in etf.loc[0, "measured"]
    assert "k* = 4" in etf.loc[0, "measured"] and "k=2: 0.945" in etf.loc[0, "measured"]
    assert "k=5: 0.800" in etf.loc[1, "measured"]
    worse = make_tables(etf_models({0: 0.95, 2: 0.90, 5: 0.945}))
    etf = claims_of(rg.claims(worse), "digits / mlp_etf")
    assert etf["holds"].tolist() == [False, False], etf.to_string()


def test_an_etf_experiment_that_reselects_the_lr_per_k_is_not_the_papers():
    # the same accuracies that hold at one lr cannot tell where the lr was re-selected per k
    t = make_tables(etf_models({0: 0.95, 2: 0.945, 5: 0.80}, reselect=True))
    etf = rg.claims(t)
    etf = etf[etf["where"].str.contains("5.3")]
    assert len(etf) == 2 and etf["holds"].isna().all(), etf.to_string()
    assert etf["measured"].str.contains("lr re-selected per k").all()
    assert etf["measured"].str.contains("k=0: 0.01, k=2: 0.001, k=5: 0.001").all()
    title = rg.fig7_etf(t).axes[0].get_title()
    assert "lr re-selected per k" in title, title


def test_without_an_etf_axis_the_etf_claims_are_not_measured():
    table = rg.claims(experiment(etf=False))
    etf = table[table["where"].str.contains("5.3")]
    assert len(etf) == 2 and etf["holds"].isna().all()
    assert etf["measured"].str.contains("no etf_layers axis").all()


def models_of(models: list[query.Model]) -> list[tuple[str, list[str]]]:
    return [(m.label, list(m.runs)) for m in models]


def test_the_free_models_are_the_selected_runs_outside_the_etf_experiments():
    t = experiment()
    # the ETF experiment's k = 0 run is its baseline, not a second free MLP
    assert models_of(rg._models(t, rg._free(t))) == [("digits / mlp", ["mlp-s0"]),
                                                     ("digits / convnet", ["conv-s0"]),
                                                     ("digits / resnet18", ["res-s0"])]
    # etf_layers is compared (the design says so): the label leaves it out; the baseline is
    # etf_layers = 0 (ℓ* = 3 of 6: k* = 4)
    experiments = rg._etf_experiments(t)
    assert [(m.label, sorted(rows["_k"]), lstar, kstar)
            for m, rows, lstar, kstar in experiments] == [("digits / mlp_etf", [0, 2, 5], 3, 4)]
    assert rg._etf_run_ids(t) == {"etf-etf0-s0", "etf-etf2-s0", "etf-etf5-s0"}


def test_compared_and_swept_axes_are_read_from_the_design():
    runs = pd.DataFrame({"run": list("abcd"), "group": "g", "dataset": "d", "arch": "a",
                         "seed": 0, "depth": [2, 2, 3, 3], "width": [8, 16, 8, 16],
                         "lr": [0.1, 0.1, 0.01, 0.1], "weight_decay": 1e-4,
                         "selected": True})
    design = runs[["run", "group"]].assign(selected_axes="lr", compared_axes="width;depth")
    t = Tables(metrics=pd.DataFrame(), training=pd.DataFrame(), spectra=pd.DataFrame(),
               epoch_metrics=pd.DataFrame(), runs=runs, design=design)
    assert query.compared_axes(t, runs["run"]) == ["depth", "width"]
    # a sweep's points are named by every axis swept, selected or compared (Fig. 8)
    assert query.compared_axes(t, runs["run"], selected=True) == ["depth", "width", "lr"]


def test_seeds_of_a_model_are_one_model_and_diverged_runs_are_left_out():
    t = make_tables([{"run": "m-s0", "group": "g", "values": GOOD},
                     {"run": "m-s1", "group": "g", "values": GOOD, "seed": 1},
                     {"run": "x-s0", "group": "g", "arch": "other", "values": NONE,
                      "diverged": True}])
    assert models_of(rg._models(t, rg._free(t))) == [("digits / mlp", ["m-s0", "m-s1"])]
    assert rg._no_collapse(t).empty


def test_the_solutions_without_collapse_are_the_trained_free_runs_that_do_not_collapse():
    t = experiment()
    # mlp-lr10-s0 does not collapse either, but never reached the interpolation threshold
    assert set(rg._no_collapse(t)["run"]) == {"mlp-lr1-s0", "res-s0"}
    titles = {ax.get_title() for ax in rg.fig8_no_collapse(t).axes}
    # a point of a sweep is named by its settings, selected or not
    assert "digits / mlp / lr=1: NC1 ratio" in titles, titles


def check_figure(fig: Figure, draw: bool = False) -> None:
    """The figure fits the page; ``draw`` also lays it out and renders it (slow: a second a
    figure), which fails where that cannot be done."""
    width, height = fig.get_size_inches()
    assert width <= MAX_WIDTH and height <= MAX_HEIGHT, (width, height)
    if draw:
        fig.savefig(io.BytesIO(), format="png", dpi=20)


def placeholder_text(fig: Figure) -> str:
    return " ".join(t.get_text() for t in fig.texts)


@pytest.mark.parametrize("name", PAPER_FIGURES["rangamani2023"])
def test_every_figure_draws_on_the_experiment(name):
    fig = rg.FIGURES[name](experiment().only(PAPER_FIGURE_READS["rangamani2023"][name], name))
    check_figure(fig, draw=True)
    assert fig.axes, placeholder_text(fig)


def test_without_an_etf_axis_fig7_names_the_config_it_needs_and_the_rest_draw():
    t = experiment(etf=False)
    fig = rg.fig7_etf(t)
    assert not fig.axes and "etf_layers" in placeholder_text(fig)
    for name, draw in rg.FIGURES.items():
        if name != "fig7_etf":
            check_figure(draw(t))


def test_fig3_has_the_papers_three_nc2_panels_per_network():
    fig = rg.fig3_nc2(experiment())
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert len(titles) == 3 * 3, titles  # three free models
    assert titles[:3] == ["digits / mlp:\nmean of cos + 1/(C−1)",
                          "digits / mlp:\nequiangularity: std/|mean| of cosines",
                          "digits / mlp:\nequinorm: std/mean of ‖μ_c − μ_G‖"]


def test_figures_of_missing_groups_are_placeholders_never_errors():
    only_fixed = make_tables(etf_models({2: 0.95, 5: 0.9}))  # no etf_layers = 0, no free model
    for name in ("fig2_traces", "fig3_nc2", "fig4_pabs", "fig5_ncc", "fig6_ranks"):
        fig = rg.FIGURES[name](only_fixed)
        assert not fig.axes and "free models" in placeholder_text(fig), name
    check_figure(rg.fig7_etf(only_fixed))  # no baseline: no k* line, the accuracies drawn
    etf = rg.claims(only_fixed)
    assert len(etf) == 2 and etf["holds"].isna().all()
    assert etf["measured"].str.contains("no k = 0 baseline run").all()
    collapsed = make_tables([{"run": "m-s0", "group": "mlp", "values": GOOD}])
    fig = rg.fig8_no_collapse(collapsed)
    assert not fig.axes and "collapses in an intermediate layer" in placeholder_text(fig)


def test_many_models_wrap_within_the_page():
    models = [{"run": f"m{i}-s0", "group": "g", "dataset": f"d{i}", "values": GOOD}
              for i in range(12)]
    t = make_tables(models)
    fig = rg.fig2_traces(t)  # two panels a model: two models a row, six rows
    check_figure(fig)
    assert sum(ax.get_visible() for ax in fig.axes) == 24
    fig = rg.fig3_nc2(t)  # three panels a model: two models a row, six rows
    check_figure(fig)
    assert sum(ax.get_visible() for ax in fig.axes) == 36
    for count in (1, 5, 15):
        for per_model in (1, 2, 3):
            fig, panels = rg._panels(list(range(count)), per_model, "", "none")
            check_figure(fig)
            assert [item for _, item in panels] == list(range(count))
            assert {len(axes) for axes, _ in panels} == {per_model}


def test_the_collapse_layer_follows_the_reports_epsilon():
    t = experiment()
    loose = Tables(**{**t.__dict__, "thresholds": Thresholds(collapse_eps=0.45)})
    assert rg._lstar(t, ["mlp-s0"]) == 3
    assert rg._lstar(loose, ["mlp-s0"]) == 2
    assert math.isnan(rg._lstar(t, ["res-s0"]))
