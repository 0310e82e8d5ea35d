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
    AGGREGATE_TABLES,
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
    spectra files, the runs' train logs and per-epoch metrics (:func:`aggregate_table` each)."""
    files = {"metrics": metrics, "train_logs": train_logs, "spectra": spectra,
             "epoch_metrics": epoch_metrics}
    return {name: aggregate_table(name, thresholds=thresholds, design=design, **files)
            for name in AGGREGATE_TABLES}


def aggregate_table(name: str, *, metrics: Paths = (), train_logs: Paths = (),
                    spectra: Paths = (), epoch_metrics: Paths = (),
                    thresholds: Thresholds = DEFAULT_THRESHOLDS,
                    design: dict | None = None) -> pd.DataFrame:
    """One tidy table of ``AGGREGATE_TABLES`` from the files it reads (``AGGREGATE_READS``
    of :mod:`nclayers.vocabulary`): ``metrics`` the measured rows and the per-run rows derived from
    them and the train logs, ``training`` the train logs, ``spectra``, ``epoch_metrics``;
    ``design`` (``experiment.run_design``) gives each row its run's group and axis values. A
    file that cannot be read, or a number that is not one, raises
    :class:`nclayers.io.TableError` naming the file and the line."""
    if name == "metrics":
        measured = _concat(metrics, ("epoch", "layer_index", "value", "seed"), TIDY_COLUMNS)
        training = _concat(train_logs, ("epoch", "train_acc", "test_acc"))
        table = pd.concat([measured, derived_metrics(measured, training, thresholds)],
                          ignore_index=True)
        table = table.sort_values(TIDY_ORDER, na_position="first", kind="stable")
        table["layer_index"] = table["layer_index"].astype("Int64")  # empty for per-run rows
        table = table.reset_index(drop=True)
    elif name == "training":
        table = _concat(train_logs, ("epoch", "train_acc", "test_acc"))
    elif name == "spectra":
        table = _concat(spectra, ("epoch", "layer_index", "k", "sigma", "share"),
                        SPECTRA_COLUMNS)
    elif name == "epoch_metrics":
        table = _concat(epoch_metrics, ("epoch", "layer_index", "value", "seed"), TIDY_COLUMNS)
    else:
        raise ValueError(f"no aggregated table {name!r}; the tables: "
                         f"{', '.join(AGGREGATE_TABLES)}")
    return with_design(table, design)
