"""A paper's claims decided per seed: "holds in k of n seeds", the measured numbers as
mean ± sd over the seeds, and one rule (:data:`RULE`, which the report prints) that turns k of n
into a verdict.

Every paper's ``claims(t)`` is evaluated on all seeds together (its curves are seed means) and on
each seed's runs alone (:func:`seed_tables`); the rows are matched by claim and place. Where the
seeds' measured texts differ only in their numbers, each number becomes its mean ± sd; else the
seed means' text stays.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd

from nclayers.papers import CLAIM_COLUMNS, Tables

# The claims table with the seeds' tally, as ``paper_table`` writes it (claims.csv).
SEED_CLAIM_COLUMNS = [*CLAIM_COLUMNS[:3], "seeds", CLAIM_COLUMNS[3]]

RULE = ("A claim is decided in each seed on its own and reported as holding in k of the n seeds "
        "that can tell. It holds where it holds in every one of them (k = n), fails where it "
        "fails in every one (k = 0), and is not decided where the seeds disagree. A claim about "
        "the seeds together (e.g. that a layer is the same in every seed), which no seed can "
        "tell alone, is decided on all of them, and so is a claim that weighs its seeds itself "
        "(the synthesis' shifts, by their 95 % t-interval over the seeds). The measured numbers "
        "are means ± sd over those seeds; with n = 1 there is no spread, and the verdict rests "
        "on one seed.")

# A number in a measured text: not part of a word or a name (``layer3``, ``s0``).
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w.])")


def verdict(k: int, n: int) -> bool | None:
    """:data:`RULE`: True where all ``n`` seeds that tell hold, False where none does, None where
    they disagree or none tells."""
    if n == 0 or 0 < k < n:
        return None
    return k == n


def seed_tables(t: Tables, seed: int) -> Tables:
    """``t`` restricted to the runs of ``seed`` (their selection and design kept)."""
    runs = set(t.runs.loc[t.runs["seed"] == seed, "run"])

    def keep(table: pd.DataFrame) -> pd.DataFrame:
        return table[table["run"].isin(runs)] if "run" in table.columns else table

    return replace(t, metrics=keep(t.metrics), training=keep(t.training),
                   spectra=keep(t.spectra), epoch_metrics=keep(t.epoch_metrics),
                   runs=keep(t.runs), design=keep(t.design),
                   features={name: keep(table) for name, table in t.features.items()})


def over_seeds(claims: Callable[[Tables], pd.DataFrame], t: Tables) -> pd.DataFrame:
    """``claims(t)`` with a ``seeds`` column ("k of n") and the verdict of :data:`RULE`."""
    together = claims(t).reset_index(drop=True)
    seeds = sorted(t.runs["seed"].dropna().unique()) if "seed" in t.runs.columns else []
    per_seed = {seed: _keyed(claims(seed_tables(t, seed))) for seed in seeds}
    rows = []
    for key, row in zip(_keys(together), together.itertuples(index=False), strict=True):
        if isinstance(getattr(row, "seeds", None), str):  # it weighed its seeds itself
            rows.append(row._asdict())
            continue
        told = [(seed, found) for seed, table in per_seed.items()
                if (found := table.get(key)) is not None and _decided(found["holds"])]
        k = sum(bool(found["holds"]) for _, found in told)
        if told:
            measured = _mean_sd([found["measured"] for _, found in told]) or row.measured
            tally, holds = f"{k} of {len(told)}", verdict(k, len(told))
        else:  # no seed tells alone: a claim about the seeds together, or none can tell
            measured, holds = row.measured, row.holds
            tally = "all together" if _decided(holds) else "none tells"
        rows.append({"claim": row.claim, "where": row.where, "measured": measured,
                     "seeds": tally, "holds": None if not _decided(holds) else bool(holds)})
    return pd.DataFrame(rows, columns=SEED_CLAIM_COLUMNS)


def _decided(holds: object) -> bool:
    return holds is not None and holds == holds  # None and NaN: not decided


def _keys(table: pd.DataFrame) -> list[tuple[str, str, int]]:
    """(claim, where, occurrence): a row's identity, the same in every seed's table."""
    seen: dict[tuple[str, str], int] = {}
    keys = []
    for claim, where in zip(table["claim"], table["where"], strict=True):
        seen[claim, where] = seen.get((claim, where), -1) + 1
        keys.append((claim, where, seen[claim, where]))
    return keys


def _keyed(table: pd.DataFrame) -> dict[tuple[str, str, int], dict]:
    table = table.reset_index(drop=True)
    return dict(zip(_keys(table), table.to_dict("records"), strict=True))


def _mean_sd(texts: list[str]) -> str | None:
    """The seeds' texts as one, each number its mean ± sd over them (one seed: the text); None
    where the texts differ in more than their numbers."""
    if len(texts) == 1:
        return texts[0]
    skeletons = {NUMBER.sub("#", text) for text in texts}
    if len(skeletons) != 1:
        return None
    tokens = [NUMBER.findall(text) for text in texts]
    parts = NUMBER.split(texts[0])
    out = [parts[0]]
    for column, tail in zip(zip(*tokens, strict=True), parts[1:], strict=True):
        out.append(_number(column) + tail)
    return "".join(out)


def _number(tokens: tuple[str, ...]) -> str:
    """A number as every seed wrote it (e.g. "eq. 2.20", "layer 3"), else its mean ± sd."""
    if len(set(tokens)) == 1:
        return tokens[0]
    values = np.array([float(x) for x in tokens])
    if np.all(values == values[0]):
        return f"{values[0]:.4g}"
    return f"{values.mean():.3g} ± {values.std(ddof=1):.2g}"
