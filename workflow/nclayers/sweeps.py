"""Choosing among the runs of an experiment, and the design columns of its tables.

Each run belongs to a group and has a value for each of its group's axes
(``nclayers.experiment.run_design``). Per group, the *selected* axes (``select``; rangamani2023
keeps the learning rate with the best test accuracy per dataset and architecture) are chosen
over by mean final test accuracy; every other axis is *compared*: each of its values keeps its
own selected runs (loss CE vs SVSL, depth, label noise).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nclayers.vocabulary import DEFAULT_SELECT, IMPLICIT_GROUP

MODEL = ["dataset", "arch"]
# Always columns of runs.csv; among the settings of a run even where they are not axes.
SETTINGS = ["lr", "weight_decay"]


def axis_names(design: dict | None) -> list[str]:
    """Every axis of the experiment, in the order of run ids' tags."""
    return list((design or {}).get("axes", []))


def with_design(table: pd.DataFrame, design: dict | None) -> pd.DataFrame:
    """``table`` (a ``run`` column) with the run's ``group`` and a column per axis of the
    experiment appended (empty where an axis is not one of the run's group)."""
    runs = (design or {}).get("runs", {})
    table = table.copy()
    table["group"] = [runs.get(r, {}).get("group", IMPLICIT_GROUP) for r in table["run"]]
    for axis in axis_names(design):
        if axis in table.columns:  # lr, weight_decay in runs.csv: the settings already there
            continue
        table[axis] = [runs.get(r, {}).get("axes", {}).get(axis) for r in table["run"]]
    return table


def run_records(infos: list[dict], design: dict | None = None) -> pd.DataFrame:
    """One row per run from the runs' run.json records, with its group and axis values."""
    table = pd.DataFrame([{
        "run": i["run"], "dataset": i["dataset"]["label"], "arch": i["arch"]["label"],
        "seed": i["seed"], "lr": i["train"]["lr"], "weight_decay": i["train"]["weight_decay"],
        "diverged": i.get("diverged", False), "final_epoch": i.get("final_epoch"),
        "final_train_acc": i["final_train_acc"], "final_test_acc": i["final_test_acc"],
        "device": i.get("device_used"), "train_seconds": i.get("train_seconds"),
    } for i in infos])  # every other setting of a run is in the design table (design.py)
    table = with_design(table, design)
    front = ["run", "group", "dataset", "arch", "seed", *axis_names(design)]
    return table[[*dict.fromkeys(front), *[c for c in table.columns if c not in front]]]


def select_best(runs: pd.DataFrame, design: dict | None = None) -> pd.DataFrame:
    """``runs`` with a ``selected`` column: per group, dataset × architecture and values of the
    compared axes, the runs (all seeds) of the selected axes' values with the best mean final
    test accuracy. Diverged runs are never selected, and a setting with any diverged seed is
    not a candidate."""
    runs = runs.copy()
    if "group" not in runs.columns:
        runs = with_design(runs, design)
    runs["selected"] = False
    axes = axis_names(design)
    select = (design or {}).get("select", {})
    for (group, *_), model in runs.groupby(["group", *MODEL]):
        # The axes of this dataset × architecture (an option list of one entry is not an
        # axis of the others).
        present = [a for a in axes if model[a].notna().any()]
        chosen = select.get(group, DEFAULT_SELECT)
        compared = [a for a in present if a not in chosen]
        setting = [*SETTINGS, *(a for a in present if a in chosen and a not in SETTINGS)]
        for _, part in model.groupby(compared, dropna=False) if compared else [(None, model)]:
            _select_in(runs, part, setting)
    return runs


def _select_in(runs: pd.DataFrame, model: pd.DataFrame, setting: list[str]) -> None:
    per_setting = model.groupby(setting, dropna=False).agg(
        acc=("final_test_acc", "mean"), diverged=("diverged", "any"))
    candidates = per_setting[~per_setting["diverged"]]
    if candidates.empty:
        return
    best = candidates["acc"].idxmax()
    best = best if isinstance(best, tuple) else (best,)
    chosen = pd.Series(True, index=model.index)
    for column, value in zip(setting, best, strict=True):
        chosen &= model[column] == value
    runs.loc[model.index[chosen], "selected"] = True


def only_selected(table: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of a tidy ``table`` that belong to the runs ``runs`` (runs.csv) marks selected."""
    return table[table["run"].isin(set(runs.loc[runs["selected"], "run"]))]


def analysed_runs(runs_csv: str | Path, choice: str | list[str]) -> list[str]:
    """The runs the feature analysis reads (``features.runs``): ``"none"``, ``"selected"``
    (the runs runs.csv marks selected; the first run when every run diverged, so that the
    report still has its placeholders), ``"all"``, or a list of run ids, in runs.csv's
    order."""
    runs = pd.read_csv(runs_csv)
    if choice == "none":
        return []
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
