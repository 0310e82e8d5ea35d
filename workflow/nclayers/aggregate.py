"""The experiment's tidy tables from the per-run files: concatenated, with the derived per-run
rows added, sorted and typed, each row with its run's group and axis values (``metrics.csv``,
``training.csv``, ``spectra.csv``, ``epoch_metrics.csv``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from nclayers.derived import derived_metrics
from nclayers.io import read_csv
from nclayers.sweeps import with_design
from nclayers.vocabulary import (
    DEFAULT_THRESHOLDS,
    SPECTRA_COLUMNS,
    TIDY_COLUMNS,
    TIDY_ORDER,
    Thresholds,
)

Paths = Sequence[str | os.PathLike]


def _concat(paths: Paths, numeric: tuple[str, ...], columns: list[str] | None = None
            ) -> pd.DataFrame:
    parts = [read_csv(p, numeric) for p in paths]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    return table if columns is None else table[columns]


def aggregate(metrics: Paths, train_logs: Paths, spectra: Paths,
              thresholds: Thresholds = DEFAULT_THRESHOLDS, *,
              epoch_metrics: Paths = (), design: dict | None = None
              ) -> dict[str, pd.DataFrame]:
    """``{"metrics", "training", "spectra", "epoch_metrics"}`` from the measure jobs' metric and
    spectra files, the runs' train logs and per-epoch metrics; ``design``
    (``experiment.run_design``) gives each row its run's group and axis values. A file that
    cannot be read, or a number that is not one, raises :class:`nclayers.io.TableError`
    naming the file and the line."""
    measured = _concat(metrics, ("epoch", "layer_index", "value", "seed"), TIDY_COLUMNS)
    training = _concat(train_logs, ("epoch", "train_acc", "test_acc"))
    weights = _concat(spectra, ("epoch", "layer_index", "k", "sigma", "share"),
                      SPECTRA_COLUMNS)
    per_epoch = _concat(epoch_metrics, ("epoch", "layer_index", "value", "seed"), TIDY_COLUMNS)
    derived = derived_metrics(measured, training, thresholds)
    table = pd.concat([measured, derived], ignore_index=True)
    table = table.sort_values(TIDY_ORDER, na_position="first", kind="stable")
    table["layer_index"] = table["layer_index"].astype("Int64")  # empty for per-run rows
    tables = {"metrics": table.reset_index(drop=True), "training": training,
              "spectra": weights, "epoch_metrics": per_epoch}
    return {name: with_design(t, design) for name, t in tables.items()}
