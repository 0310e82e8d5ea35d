"""Per-run quantities derived from the tidy tables: where collapse starts, the effective depth,
and when training interpolates. They join the tidy metrics table with an empty layer."""

from __future__ import annotations

import math

import pandas as pd

from nclayers.vocabulary import DEFAULT_THRESHOLDS, Thresholds


def last_epoch(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run of a tidy table at that run's last epoch (its final checkpoint)."""
    return table[table["epoch"] == table.groupby("run")["epoch"].transform("max")]


def collapse_layer(ratios: pd.Series, eps: float) -> float:
    """First layer index from which on every NC1 ratio is below ``eps`` (rangamani2023,
    lindegaard2023 §4.1); NaN if even the last layer is not. ``ratios``: indexed by layer."""
    below = ratios.sort_index() < eps
    first = math.nan
    for index in reversed(below.index):
        if not below[index]:
            break
        first = index
    return first


def effective_depth(ncc_accuracy: pd.Series, threshold: float) -> float:
    """First layer index whose NCC accuracy reaches ``threshold`` (galanti2022 Def. 1)."""
    reached = ncc_accuracy.sort_index() >= threshold
    return float(reached.idxmax()) if reached.any() else math.nan


def interpolation_epoch(train_acc: pd.Series, threshold: float) -> float:
    """First epoch whose train accuracy reaches ``threshold`` (benshaul2022 §5.3)."""
    reached = train_acc.sort_index() >= threshold
    return float(reached.idxmax()) if reached.any() else math.nan


def derived_metrics(metrics: pd.DataFrame, training: pd.DataFrame,
                    thresholds: Thresholds = DEFAULT_THRESHOLDS) -> pd.DataFrame:
    """Tidy rows (same columns as ``metrics``, layer and layer_index empty) of collapse_layer
    and effective_depth per run × epoch (train split) and interpolation_epoch per run."""
    rows = []
    ids = ["run", "dataset", "arch", "seed"]
    train = metrics[metrics["split"] == "train"]
    for key, part in train.groupby([*ids, "epoch"]):
        by_metric = {m: p.set_index("layer_index")["value"] for m, p in part.groupby("metric")}
        rows.append((*key, "train", "collapse_layer",
                     collapse_layer(by_metric["nc1_ratio"], thresholds.collapse_eps)))
        rows.append((*key, "train", "effective_depth",
                     effective_depth(by_metric["ncc_accuracy"], thresholds.ncc)))
    for key, part in training.groupby(ids):
        rows.append((*key, int(part["epoch"].max()), "train", "interpolation_epoch",
                     interpolation_epoch(part.set_index("epoch")["train_acc"],
                                         thresholds.interpolation)))
    table = pd.DataFrame(rows, columns=[*ids, "epoch", "split", "metric", "value"])
    table["layer"], table["layer_index"] = pd.NA, pd.NA
    return table[list(metrics.columns)]
