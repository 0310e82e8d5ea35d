"""File output and input of the steps: a result is either complete or absent, never
half-written, and a file that cannot be read is named in the error."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from nclayers.errors import UserError
from nclayers.vocabulary import RUN_COLUMNS, SPECTRA_COLUMNS, TIDY_COLUMNS


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_csv(path: str | os.PathLike, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


class TableError(UserError, ValueError):
    """A table on disk that cannot be used; the message names the file and what is wrong."""


# The columns the steps' tables always have, by file name (a table of a run or aggregated):
# a file without them was not written by a step, or was cut.
TABLE_COLUMNS = {
    "metrics.csv": TIDY_COLUMNS, "epoch_metrics.csv": TIDY_COLUMNS,
    "spectra.csv": SPECTRA_COLUMNS, "runs.csv": [*RUN_COLUMNS, "selected"],
    "training.csv": [*RUN_COLUMNS, "epoch"], "train_log.csv": [*RUN_COLUMNS, "epoch"],
}


def read_csv(path: str | os.PathLike, numeric: tuple[str, ...] = ()) -> pd.DataFrame:
    """A CSV written by a step; the ``numeric`` columns must hold numbers (or be empty). A
    file whose last line is cut (the steps end every file with a newline) or that lacks the
    columns of its kind (:data:`TABLE_COLUMNS`) is refused, naming it."""
    rebuild = "delete it and rerun the workflow to rebuild it"
    try:
        with open(path, "rb") as file:
            if file.seek(0, os.SEEK_END) > 0:
                file.seek(-1, os.SEEK_END)
                if file.read(1) != b"\n":
                    raise TableError(f"{path} is cut short (its last line is incomplete); "
                                     f"{rebuild}")
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise TableError(f"cannot read {path}: {e}; {rebuild}") from None
    missing = [c for c in TABLE_COLUMNS.get(Path(path).name, []) if c not in table]
    if missing:
        raise TableError(f"{path} lacks the column{'s' * (len(missing) > 1)} "
                         f"{', '.join(missing)} of a {Path(path).name}; {rebuild}")
    for column in numeric:
        if column not in table:
            raise TableError(f"{path} has no column {column!r}; delete it and rerun the "
                             "workflow to rebuild it")
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() & table[column].notna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise TableError(f"{path}, line {row + 2}: {column} = "
                             f"{table[column].iloc[row]!r} is not a number; delete the file "
                             "and rerun the workflow to rebuild it")
        table[column] = values
    return table
