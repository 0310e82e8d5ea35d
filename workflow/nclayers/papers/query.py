"""The one way the papers read the experiment: which runs (by group, selection and design), their
per-layer rows, seed means, the derived per-run quantities that ``aggregate`` wrote, and the
words and panels every paper's claims and figures share.

Every paper module reads :class:`nclayers.papers.Tables` through these functions; a helper
that two papers need lives here, once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from nclayers import vocabulary
from nclayers.derived import last_epoch
from nclayers.papers import Tables

LOGITS = "classifier"  # a tapped network output: no feature layer (left out where asked)
ETF_AXIS = "etf_layers"
DERIVED = ("collapse_layer", "effective_depth", "interpolation_epoch")  # derived.py's rows
# The datasets as the papers write them, in their texts and tables
DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion MNIST", "stl10": "STL10",
                 "cifar10": "CIFAR10", "cifar100": "CIFAR100", "cola": "CoLA", "sst2": "SST-2",
                 "mrpc": "MRPC", "rte": "RTE"}

Verdict = tuple[str, bool | None]  # what was measured, and whether the claim holds


# --- which runs ---------------------------------------------------------------------------------

def in_group(groups: pd.Series, name: str) -> pd.Series:
    """Whether each group is ``name`` or one of its family (:func:`vocabulary.in_family`)."""
    return groups.astype(str).map(lambda group: vocabulary.in_family(group, name))


def runs(t: Tables, group: str | None = None, *, selected: bool | None = True) -> pd.DataFrame:
    """runs.csv's rows of the runs that did not diverge: of the groups ``group`` and
    ``group_…`` (None: every group); only the selected ones (``selected=True``), only the
    others (False) or both (None)."""
    rows = t.runs
    if rows.empty:
        return rows
    if group is not None:
        rows = rows[in_group(rows["group"], group)] if "group" in rows else rows.iloc[0:0]
    if selected is not None and "selected" in rows:
        rows = rows[rows["selected"].astype(bool) == selected]
    if "diverged" in rows:
        rows = rows[~rows["diverged"].astype(bool)]
    return rows


def etf_layers(rows: pd.DataFrame) -> pd.Series:
    """Each run's number of top layers fixed to a simplex ETF (0 where the axis is absent)."""
    if ETF_AXIS not in rows:
        return pd.Series(0, index=rows.index, dtype=int)
    return pd.to_numeric(rows[ETF_AXIS], errors="coerce").fillna(0).astype(int)


def compared_axes(t: Tables, run_ids: Iterable[str], selected: bool = False) -> list[str]:
    """The compared axes of ``run_ids`` as the design table says (``selected``: the axes
    selected over too), in the order of the runs' tables."""
    design = t.design
    if design.empty or "compared_axes" not in design:
        return []
    rows = design[design["run"].isin(set(run_ids))]
    columns = ("selected_axes", "compared_axes") if selected else ("compared_axes",)
    named = {a for column in columns if column in rows
             for cell in rows[column].dropna() for a in str(cell).split(";") if a}
    order = list(t.runs.columns)
    return sorted(named, key=lambda a: (order.index(a) if a in order else len(order), a))


def recipe(t: Tables, field: str) -> pd.Series:
    """Run → one of its resolved settings (a column of the design table, e.g. ``train.loss``);
    empty where the table has no such column."""
    return t.design.set_index("run")[field] if field in t.design else pd.Series(dtype=object)


# --- the models they train ---------------------------------------------------------------------

@dataclass(frozen=True, eq=False)  # identity: a model keys dicts of its numbers
class Model:
    """A trained model: the runs (one per seed) that share ``by``'s values (:func:`models`)."""

    label: str
    dataset: str
    arch: str
    key: dict  # the grouping columns' values, dataset and arch included
    runs: tuple[str, ...]

    def rows(self, table: pd.DataFrame, split: str | None = "train", logits: bool = True
             ) -> pd.DataFrame:
        """Its per-layer rows of a tidy table (:func:`layer_rows`)."""
        return layer_rows(table, self.runs, split, logits)

    def last(self, table: pd.DataFrame, split: str | None = "train", logits: bool = True
             ) -> pd.DataFrame:
        """Its per-layer rows at each run's last epoch there."""
        return last_epoch(self.rows(table, split, logits))

    def final(self, t: Tables, column: str) -> float:
        """The seed mean of a runs.csv column (e.g. ``final_test_acc``); NaN without runs."""
        values = t.runs.loc[t.runs["run"].isin(self.runs), column]
        return float(values.mean()) if len(values) else math.nan


def models(rows: pd.DataFrame, by: Sequence[str] = ("group", "dataset", "arch"),
           label: Callable[[dict], str] | None = None, sort: bool = False) -> list[Model]:
    """The models of runs.csv ``rows``: one per value of the columns ``by`` (seeds together),
    in the rows' order (``sort``: by those values); ``label`` names one from its values
    (default: :func:`vocabulary.model_label` of dataset, arch and the other values)."""
    if rows.empty:
        return []
    by = list(by)
    found = []
    for values, part in rows.groupby(by, sort=sort, dropna=False):
        key = dict(zip(by, values, strict=True))
        name = label(key) if label else vocabulary.model_label(
            str(key["dataset"]), str(key["arch"]),
            *[str(v) for k, v in key.items() if k not in ("dataset", "arch")])
        found.append(Model(name, str(key["dataset"]), str(key["arch"]), key,
                           tuple(part["run"])))
    return found


# --- their rows ---------------------------------------------------------------------------------

def layer_rows(table: pd.DataFrame, run_ids: Iterable[str], split: str | None = "train",
               logits: bool = True) -> pd.DataFrame:
    """The per-layer rows of ``run_ids`` (the derived per-run rows, without a layer, left out)
    of one split (None: every split); ``logits=False`` leaves a tapped classifier out."""
    if table.empty:
        return table
    rows = table[table["run"].isin(set(run_ids)) & table["layer_index"].notna()]
    if not logits:
        rows = rows[rows["layer"] != LOGITS]
    if split is not None and "split" in rows:
        rows = rows[rows["split"] == split]
    return rows


def first_epoch(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run at its first epoch (the initialisation where it was measured)."""
    return rows[rows["epoch"] == rows.groupby("run")["epoch"].transform("min")]


def by_layer(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean, sd (over seeds) and name of ``metric`` per layer index, sorted by depth."""
    part = rows[rows["metric"] == metric]
    out = part.groupby("layer_index").agg(mean=("value", "mean"), sd=("value", "std"),
                                          layer=("layer", "first"))
    return out.sort_index()


def derived(t: Tables, metric: str, epoch: str = "last") -> pd.Series:
    """Run → ``metric`` (one of :data:`DERIVED`), as ``aggregate`` wrote it into metrics.csv at
    the config's thresholds: at each run's last epoch (``epoch="last"``) or, for the per-epoch
    ones, indexed by (run, epoch) (``epoch="all"``)."""
    if metric not in DERIVED:
        raise ValueError(f"unknown derived metric {metric!r}; known: {', '.join(DERIVED)}")
    if t.metrics.empty:
        return pd.Series(dtype=float)
    rows = t.metrics[(t.metrics["metric"] == metric) & t.metrics["layer_index"].isna()]
    if epoch == "all":
        return rows.set_index(["run", "epoch"])["value"].astype(float).sort_index()
    rows = rows[rows["epoch"] == rows.groupby("run")["epoch"].transform("max")]
    return rows.set_index("run")["value"].astype(float)


def feature_table(t: Tables, name: str, run_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """A table of the feature analysis (``Tables.features``) of ``run_ids`` (None: every run),
    at each run's last analysed epoch; empty where there is none."""
    table = (t.features or {}).get(name, pd.DataFrame())
    if table.empty or "run" not in table:
        return pd.DataFrame()
    return last_epoch(table if run_ids is None else table[table["run"].isin(set(run_ids))])


# --- words --------------------------------------------------------------------------------------

def claim(text: str, where: str, measured: str, holds: bool | None, seeds: str | None = None
          ) -> dict:
    """One row of a claims table (:data:`nclayers.papers.CLAIM_COLUMNS`); ``seeds``: how a
    claim that weighs its seeds itself used them (e.g. "3 together, by a t-interval"), which
    :func:`nclayers.papers.seeds.over_seeds` then keeps instead of deciding it per seed."""
    row = {"claim": text, "where": where, "measured": measured,
           "holds": None if holds is None else bool(holds)}
    return row if seeds is None else {**row, "seeds": seeds}


def fmt(value: float, digits: int = 3) -> str:
    """A number in a claim's measured text; "-" for NaN."""
    return "-" if value != value else f"{value:.{digits}g}"


def percent(share: float) -> str:
    return f"{100 * share:g} %"


def layer_text(value: float | None) -> str:
    """A layer index in words ("none": not reached)."""
    return "none" if value is None or math.isnan(value) else str(int(value))


def all_told(values: Iterable[bool | None]) -> bool | None:
    """True/False over the cases that could tell; None if none could."""
    told = [v for v in values if v is not None]
    return None if not told else bool(all(told))


def majority(flags: Sequence[bool]) -> bool | None:
    """Whether more than half of ``flags`` hold; None without any."""
    return None if not flags else bool(sum(flags) > len(flags) / 2)


def spearman(x: Iterable[float], y: Iterable[float]) -> float:
    """Spearman rank correlation (NaN pairs dropped; NaN with fewer than 3 pairs or a
    constant side)."""
    pairs = pd.DataFrame({"x": list(x), "y": list(y)}).dropna()
    if len(pairs) < 3 or pairs["x"].nunique() < 2 or pairs["y"].nunique() < 2:
        return math.nan
    return float(pairs["x"].rank().corr(pairs["y"].rank()))


# --- panels -------------------------------------------------------------------------------------

def grid(count: int, cols: int, title: str | None = None, panel: tuple[float, float] = (3.0, 2.4),
         size: tuple[float, float] = (9.5, 11.0), margin: tuple[float, float] = (0.6, 0.9),
         **subplots) -> tuple[Figure, np.ndarray]:
    """``count`` panels in rows of ``cols`` within ``size`` inches (the report shows a figure
    at the text width), the unused ones hidden; ``subplots``: e.g. ``sharex``."""
    cols = max(1, min(cols, count))
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(min(size[0], margin[0] + cols * panel[0]),
                          min(size[1], margin[1] + rows * panel[1])), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, **subplots)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig, axes


def mean_line(ax: Axes, mean: pd.Series, sd: pd.Series | None = None, **style) -> Line2D:
    """A curve of seed means (``mean`` against its index) in a band of ± one sd over the seeds
    (``sd``, ddof 1: NaN with one seed, so no band), the report's one way to draw a curve over
    seeds; ``style`` goes to ``ax.plot``."""
    (line,) = ax.plot(mean.index, mean.to_numpy(), **style)
    if sd is not None and sd.notna().any():
        sd = sd.reindex(mean.index)
        ax.fill_between(mean.index, (mean - sd).to_numpy(), (mean + sd).to_numpy(),
                        color=line.get_color(), alpha=0.2, linewidth=0)
    return line


def legend_below(fig: Figure, axes: Iterable[Axes], ncol: int = 4) -> None:
    """One legend under the figure, from the labelled artists of ``axes`` (each label once)."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center",
                   ncol=min(ncol, len(seen)), fontsize="small")
