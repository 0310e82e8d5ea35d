"""The papers' sections of a report: each paper's figures, tables and claims, drawn from the
experiment's tidy tables.

A paper is a module ``nclayers.papers.<paper>`` (the name is ``report.papers``' entry, e.g.
``rangamani2023``) with

- ``FIGURES``: ``{name: function(Tables) -> matplotlib Figure}``, drawn by one
  ``paper-figure`` job each into ``figures/<paper>/<name>.pdf``;
- ``TABLES``: ``{name: function(Tables) -> pandas DataFrame}``, always with ``"claims"``:
  written by one ``paper-tables`` job into ``tables/<paper>/<name>.csv`` and ``.tex``.

The names are listed, import-free, in ``nclayers.vocabulary.PAPER_FIGURES`` and
``PAPER_TABLES`` (the Snakefile reads them there; a test holds the modules to them). The
report's section of the paper is ``paper/sections/<paper>.tex``.

A claims table has the columns of :data:`CLAIM_COLUMNS`: the paper's claim in words, where
the paper makes it, what was measured (a short text with the numbers) and ``holds`` (True,
False, or None where the experiment cannot tell, e.g. a group the config leaves out). A
claim that does not hold is reported, never dropped.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

import pandas as pd

from nclayers.vocabulary import DEFAULT_THRESHOLDS, PAPER_FIGURES, Thresholds

CLAIM_COLUMNS = ["claim", "where", "measured", "holds"]
# The feature analysis's tables a paper's figures and claims may read (Tables.features).
FEATURE_PAPER_TABLES = ("clusters", "retention", "pca_summary")
# The aggregated tables (tables/<name>.csv) a paper may read besides runs.csv.
AGGREGATED = ("metrics", "training", "spectra", "epoch_metrics", "design")


@dataclass(frozen=True)
class Tables:
    """Everything a paper's figures and claims read: the aggregated tables of *all* runs
    (use :meth:`selected` for the selected ones; non-selected runs matter for e.g.
    rangamani2023's Fig. 8), the experiment's design and the config's thresholds."""

    metrics: pd.DataFrame  # tables/metrics.csv
    training: pd.DataFrame  # tables/training.csv
    spectra: pd.DataFrame  # tables/spectra.csv
    epoch_metrics: pd.DataFrame  # tables/epoch_metrics.csv (empty without train.epoch_metrics)
    runs: pd.DataFrame  # tables/runs.csv: group, axes, selected, diverged, final accuracies
    thresholds: Thresholds = DEFAULT_THRESHOLDS
    # tables/design.csv: each run's resolved recipe and its selected and compared axes
    design: pd.DataFrame = field(default_factory=pd.DataFrame)
    # The feature analysis's tables of the analysed runs (FEATURE_PAPER_TABLES, each
    # concatenated over runs and epochs, with run and epoch columns); empty where
    # features.runs is none.
    features: dict[str, pd.DataFrame] = field(default_factory=dict)

    def only(self, reads: tuple[str, ...], who: str) -> Tables:
        """These tables with only ``reads`` (names of fields and of feature tables) and
        ``runs`` left readable: any other fails when used, naming ``who`` and the table, so
        that a step cannot read a table its job does not wait for."""
        hidden = {name: Undeclared(name, who) for name in AGGREGATED if name not in reads}
        features = {name: self.features.get(name, pd.DataFrame()) if name in reads
                    else Undeclared(name, who) for name in FEATURE_PAPER_TABLES}
        return replace(self, **hidden, features=features)

    def selected(self, table: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``table`` that belong to selected runs."""
        return table[table["run"].isin(set(self.runs.loc[self.runs["selected"], "run"]))]

    @classmethod
    def read(cls, folder: str | Path, features: dict[str, list[str | Path]] | None = None,
             thresholds: Thresholds = DEFAULT_THRESHOLDS,
             reads: tuple[str, ...] | None = None, who: str = "") -> Tables:
        """The tables the ``aggregate``, ``select`` and ``design`` steps wrote to ``folder``,
        and the feature analysis's CSVs ``features`` ({table: [one file per run and
        epoch]}); with ``reads``, only those and runs.csv, for ``who`` (:meth:`only`)."""
        from nclayers.io import read_csv

        folder = Path(folder)
        read = {name: [read_csv(path) for path in paths]
                for name, paths in (features or {}).items() if paths}
        tables = cls(**{name: read_csv(folder / f"{name}.csv")
                        if reads is None or name in (*reads, "runs")
                        else pd.DataFrame() for name in (*AGGREGATED, "runs")},
                     features={name: pd.concat(frames, ignore_index=True)
                               for name, frames in read.items()},
                     thresholds=thresholds)
        return tables if reads is None else tables.only(reads, who)


class Undeclared:
    """A table a step was not given: using it in any way fails with what to declare."""

    def __init__(self, name: str, who: str):
        self._message = (f"{who} reads the table {name!r}, which nclayers.vocabulary."
                         f"PAPER_FIGURE_READS does not list for it: add it there, so that its "
                         f"job waits for the table")

    def _refuse(self, *args, **kwargs):
        raise LookupError(self._message)

    __getattr__ = __getitem__ = __len__ = __iter__ = __bool__ = __contains__ = _refuse


def paper(name: str) -> ModuleType:
    """The module of paper ``name``; a ValueError names the known papers."""
    if name not in PAPER_FIGURES:
        raise ValueError(f"unknown paper {name!r}; known: {', '.join(sorted(PAPER_FIGURES))}")
    return importlib.import_module(f"nclayers.papers.{name}")


def claims_frame(rows: list[dict]) -> pd.DataFrame:
    """A claims table from ``[{claim, where, measured, holds}]``, in that column order, and a
    ``seeds`` column where a row says how it weighed its seeds (``query.claim(seeds=...)``)."""
    if any("seeds" in row for row in rows):
        return pd.DataFrame(rows, columns=[*CLAIM_COLUMNS[:3], "seeds", CLAIM_COLUMNS[3]])
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)
