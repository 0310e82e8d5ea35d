"""Choosing among the runs of a sweep (rangamani2023 keeps the learning rate with the best test
accuracy per dataset and architecture), and restricting tables to the chosen runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

GROUP = ["dataset", "arch"]
SWEPT = ["lr", "weight_decay"]


def run_records(infos: list[dict]) -> pd.DataFrame:
    """One row per run from the runs' run.json records."""
    return pd.DataFrame([{
        "run": i["run"], "dataset": i["dataset"]["label"], "arch": i["arch"]["label"],
        "seed": i["seed"], "lr": i["train"]["lr"], "weight_decay": i["train"]["weight_decay"],
        "diverged": i.get("diverged", False), "final_epoch": i.get("final_epoch"),
        "final_train_acc": i["final_train_acc"], "final_test_acc": i["final_test_acc"],
        "device": i.get("device_used"), "train_seconds": i.get("train_seconds"),
    } for i in infos])


def select_best(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with a ``selected`` column: per dataset × architecture, the runs (all seeds) of
    the swept values with the best mean final test accuracy. Diverged runs are never selected,
    and a setting with any diverged seed is not a candidate."""
    runs = runs.copy()
    runs["selected"] = False
    for _, group in runs.groupby(GROUP):
        per_setting = group.groupby(SWEPT).agg(acc=("final_test_acc", "mean"),
                                               diverged=("diverged", "any"))
        candidates = per_setting[~per_setting["diverged"]]
        if candidates.empty:
            continue
        best = candidates["acc"].idxmax()
        chosen = (group["lr"] == best[0]) & (group["weight_decay"] == best[1])
        runs.loc[group.index[chosen], "selected"] = True
    return runs


def only_selected(table: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of a tidy ``table`` that belong to the runs ``runs`` (runs.csv) marks selected."""
    return table[table["run"].isin(set(runs.loc[runs["selected"], "run"]))]


def analysed_runs(runs_csv: str | Path, choice: str | list[str]) -> list[str]:
    """The runs the feature analysis reads (``features.runs``): ``"selected"`` (the runs
    runs.csv marks selected; the first run when every run diverged, so that the report still
    has its placeholders), ``"all"``, or a list of run ids, in runs.csv's order."""
    runs = pd.read_csv(runs_csv)
    if choice == "all":
        return list(runs["run"])
    if choice == "selected":
        chosen = list(runs.loc[runs["selected"], "run"])
        return chosen or list(runs["run"].iloc[:1])
    return [run for run in runs["run"] if run in set(choice)]


def figure_run(runs_csv: str | Path, choice: str | list[str] = "selected") -> str:
    """The run whose per-run figures the report shows: the first selected run among those the
    feature analysis reads, else the first of those."""
    runs = pd.read_csv(runs_csv)
    analysed = analysed_runs(runs_csv, choice)
    selected = [r for r in runs.loc[runs["selected"], "run"] if r in set(analysed)]
    return (selected or analysed)[0]
