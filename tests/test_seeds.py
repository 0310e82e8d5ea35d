"""Claims decided per seed (nclayers.papers.seeds): the k-of-n rule, the tally and the measured
numbers as mean ± sd, on hand-made tables whose seeds agree or disagree."""

from __future__ import annotations

import pandas as pd

from nclayers.papers import Tables, claims_frame, query
from nclayers.papers.seeds import (
    RULE,
    SEED_CLAIM_COLUMNS,
    _mean_sd,
    over_seeds,
    seed_tables,
    verdict,
)
from nclayers.report import sections
from nclayers.tables import claims_tex, tex_escape


def tables(values: dict[int, float]) -> Tables:
    """One model trained with the seeds of ``values``: each run's last-layer NC1 ratio."""
    runs = pd.DataFrame({"run": [f"m-s{s}" for s in values], "group": "g", "dataset": "digits",
                         "arch": "mlp", "seed": list(values), "diverged": False,
                         "final_epoch": 10, "final_train_acc": 1.0, "final_test_acc": 0.9,
                         "selected": True})
    metrics = pd.DataFrame({"run": [f"m-s{s}" for s in values], "dataset": "digits",
                            "arch": "mlp", "seed": list(values), "epoch": 10, "layer": "layer1",
                            "layer_index": 1, "split": "train", "metric": "nc1_ratio",
                            "value": list(values.values()), "group": "g"})
    empty = pd.DataFrame()
    return Tables(metrics=metrics, training=empty, spectra=empty, epoch_metrics=empty,
                  runs=runs)


def claims(t: Tables) -> pd.DataFrame:
    """A claim of each run's ratio (below 0.2), and one of the seeds together (two or more
    seeds within 0.05 of each other), which no seed can tell alone."""
    ratios = t.metrics["value"]
    mean = float(ratios.mean())
    spread = (f"spread {ratios.max() - ratios.min():.2f}", ratios.max() - ratios.min() <= 0.05
              ) if len(ratios) > 1 else ("one seed", None)
    return claims_frame([
        query.claim("the last layer is collapsed", "§1", f"ratio {mean:.3f} (ε = 0.2)",
                    mean < 0.2),
        query.claim("the seeds agree", "§2", *spread)])


def test_the_rule_holds_in_all_fails_in_none_and_is_undecided_in_between():
    assert verdict(3, 3) is True and verdict(0, 3) is False
    assert verdict(1, 2) is None and verdict(2, 3) is None and verdict(0, 0) is None
    assert verdict(1, 1) is True  # one seed decides alone; the report says n = 1


def test_two_seeds_that_disagree_hold_in_1_of_2_and_are_not_decided():
    table = over_seeds(claims, tables({0: 0.1, 1: 0.3}))
    assert list(table.columns) == SEED_CLAIM_COLUMNS
    row = table.iloc[0]
    assert row["seeds"] == "1 of 2" and row["holds"] is None
    assert row["measured"] == "ratio 0.2 ± 0.14 (ε = 0.2)"  # per seed 0.100 and 0.300
    assert "not decided" in claims_tex(table) and "not measured" not in claims_tex(table)
    # the claim about the seeds together: decided on all of them
    together = table.iloc[1]
    assert together["seeds"] == "all together" and together["holds"] is False
    assert together["measured"] == "spread 0.20"


def test_seeds_that_agree_decide_the_claim_and_equal_numbers_stay_as_they_are():
    table = over_seeds(claims, tables({0: 0.1, 1: 0.1, 2: 0.15}))
    assert table["seeds"].tolist() == ["3 of 3", "all together"]
    assert table["holds"].tolist() == [True, True]
    assert "± 0.029" in table.loc[0, "measured"] and "(ε = 0.2)" in table.loc[0, "measured"]
    fails = over_seeds(claims, tables({0: 0.5, 1: 0.6}))
    assert fails.loc[0, "seeds"] == "0 of 2" and fails["holds"].tolist()[0] is False
    assert r"\textbf{does not hold}" in claims_tex(fails)
    one = over_seeds(claims, tables({0: 0.1}))
    assert one.loc[0, "seeds"] == "1 of 1" and one["holds"].tolist()[0] is True
    assert one.loc[1, "seeds"] == "none tells"  # one seed: nothing about seeds to tell
    assert one.loc[0, "measured"] == "ratio 0.100 (ε = 0.2)"


def test_a_number_every_seed_writes_alike_is_kept_as_written():
    # a label such as "eq. 2.20" must not come out as its value "2.2"
    merged = _mean_sd(["eq. 2.20 0.30, layer 3", "eq. 2.20 0.50, layer 3"])
    assert merged == "eq. 2.20 0.4 ± 0.14, layer 3"
    assert _mean_sd(["ratio 0.10", "ratio 0.1"]) == "ratio 0.1"  # equal, written otherwise
    assert _mean_sd(["at 3", "at layer 3"]) is None  # the texts differ beyond their numbers


def test_a_seeds_tables_hold_its_runs_only():
    t = seed_tables(tables({0: 0.1, 1: 0.3}), 1)
    assert list(t.runs["run"]) == ["m-s1"] and list(t.metrics["value"]) == [0.3]


def test_the_report_states_the_rule_once_before_the_papers_sections():
    text = sections(False, ["parker2023", "rangamani2023"])
    assert text.count(tex_escape(RULE)) == 1
    assert text.index(tex_escape(RULE)) < text.index("sections/parker2023.tex")
    assert "k = n" in RULE and "k = 0" in RULE and "disagree" in RULE
