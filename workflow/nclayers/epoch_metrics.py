"""NC metrics of every tapped layer during training, at chosen epochs (``train.epoch_metrics``).

A run spec's train section may hold ``epoch_metrics: {every: k, log_points: n, per_class: m}``:
at epochs 0, k, 2k, … and the last (or at about n log-spaced epochs, 0 and the last), the light
metrics :data:`~nclayers.vocabulary.EPOCH_METRICS` of every layer of ``model.tapped_layers`` on
train and test, by :func:`nclayers.measurement.measure`'s own code (``measure_rows``, never a
second implementation), on the full splits or on a fixed class-balanced subsample of m per
class (drawn from the run's seed; clamped to the smallest class, said once). Either way the
measurement's forward passes read the full splits in the batches of ``train.evaluate`` and give
the log row its eval loss and accuracy, so that a measured epoch costs no evaluation passes of
its own: a subsample is the rows the statistics take from those passes
(``measure_rows(subset=...)``).

:class:`EpochMetrics` is the recorder that :func:`nclayers.train.fit` fills: its rows are part of
the training state, so that a killed and resumed run records exactly what an uninterrupted
one does. They are kept as one float64 tensor rather than as tidy rows because the state is
saved after every epoch: pickling 28,000 Python tuples took 49 ms per save at epoch 400 of the
default run (an epoch there takes 50 ms), one tensor of the same numbers 1 ms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor, nn

from nclayers.data import Batches, Splits
from nclayers.errors import UserError
from nclayers.measurement import OnLogits, measure_rows
from nclayers.splits import balanced_index
from nclayers.vocabulary import EPOCH_METRICS

LIGHT = EPOCH_METRICS
SPLITS = ("train", "test")
# The batch size of the measurement: that of train.evaluate, so that on the full splits the
# measurement's passes see the same batches and give the log bitwise the same numbers.
BATCH_SIZE = 1024
# The train activations kept from the measurement's first reading for its second, instead of a
# forward pass (measurement.measure_rows): small models on small splits, where every pass counts.
KEEP_BYTES = 256 * 2**20
COLUMNS = ["epoch", "layer", "layer_index", "split", "metric", "value"]


class EpochMetricsError(UserError, ValueError):
    """A ``train.epoch_metrics`` value that cannot work; the message names the key."""


@dataclass(frozen=True)
class EpochMetricsConfig:
    """The ``train.epoch_metrics`` section of a run spec; off when ``every`` and ``log_points``
    are both 0."""

    every: int = 0
    log_points: int = 0
    per_class: int | None = None

    def __post_init__(self) -> None:
        for key in ("every", "log_points"):
            value = getattr(self, key)
            if not _is_int(value) or value < 0:
                raise EpochMetricsError(f"train.epoch_metrics.{key} must be an integer ≥ 0, "
                                        f"got {value!r}")
        if self.every and self.log_points:
            raise EpochMetricsError("train.epoch_metrics: give every (a fixed step) or "
                                    "log_points (log-spaced epochs), not both")
        n = self.per_class
        if n is not None and (not _is_int(n) or n < 1):
            raise EpochMetricsError("train.epoch_metrics.per_class must be a positive integer "
                                    f"or null (the full splits), got {n!r}")

    @classmethod
    def from_spec(cls, entry: dict | None) -> EpochMetricsConfig:
        """The config of a spec's ``train.epoch_metrics`` entry (absent or null: off)."""
        entry = entry or {}
        unknown = sorted(set(entry) - {"every", "log_points", "per_class"})
        if unknown:
            raise EpochMetricsError(f"train.epoch_metrics has no key {', '.join(unknown)}; "
                                    "allowed: every, log_points, per_class")
        return cls(**entry)

    @property
    def enabled(self) -> bool:
        return self.every > 0 or self.log_points > 0


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def measured_epochs(epochs: int, every: int = 0, log_points: int = 0) -> list[int]:
    """The epochs to measure, ascending: 0, ``every``, 2·``every``, … and ``epochs``; or with
    ``log_points`` = n the n log-spaced epochs 1 … ``epochs`` (rounded, so fewer where they
    coincide), 0 and ``epochs``; none when both are 0."""
    if epochs < 0 or every < 0 or log_points < 0:
        raise ValueError(f"epochs, every and log_points must be ≥ 0, got {epochs}, {every}, "
                         f"{log_points}")
    if every and log_points:
        raise ValueError("give every or log_points, not both")
    if every:
        return sorted({*range(0, epochs + 1, every), epochs})
    if log_points:
        steps = max(log_points - 1, 1)
        spaced = {round(epochs ** (i / steps)) for i in range(log_points)} if epochs else set()
        return sorted({0, *spaced, epochs})
    return []


def balanced_subsample(y: Tensor, per_class: int, generator: torch.Generator
                       ) -> tuple[Tensor, int]:
    """(indices, n): n = min(``per_class``, the smallest class present in ``y``) random samples
    of each class present, drawn with ``generator``, in ascending order (the split's own)."""
    y = y.cpu()
    n = min(per_class, int(torch.bincount(y)[torch.unique(y)].min()))
    return balanced_index(y, n, generator), n


class EpochMetrics:
    """Measures a run's layers at the epochs of its config and keeps the values.

    ``due(epoch)`` says whether to measure; ``measure(model, data)`` returns the values (raising
    :class:`nclayers.measurement.NonFiniteActivations` for a diverged model); ``record(epoch,
    values)`` keeps them; ``state_dict``/``load_state_dict`` carry them through a resume;
    ``table()`` gives them as tidy rows. With ``per_class`` the subsample is drawn on first use
    from ``seed`` with a generator of its own (the training generator is left alone), and is the
    same for every epoch and after a resume.
    """

    def __init__(self, config: EpochMetricsConfig, epochs: int, seed: int,
                 log: Callable[[str], None] = print, measure_options: dict | None = None
                 ) -> None:
        self.config, self.seed, self.log = config, seed, log
        # measurement.measure's global_mean and precision (runs.measure_options)
        self.measure_options = measure_options or {}
        self.epochs = set(measured_epochs(epochs, config.every, config.log_points))
        self.layers: list[str] = []
        self.measured: list[int] = []
        self.values = torch.zeros(0, 0, len(SPLITS), len(LIGHT), dtype=torch.float64)
        self._data: Splits | None = None
        self._batches: tuple[Batches, Batches] | None = None
        self._subset: dict[str, Tensor] | None = None

    def due(self, epoch: int) -> bool:
        return epoch in self.epochs

    def measure(self, model: nn.Module, data: Splits, on_logits: OnLogits | None = None
                ) -> Tensor:
        """The metrics of ``model`` on ``data`` (or its subsample): (layers, splits, metrics);
        ``on_logits`` sees the logits of every row of both splits."""
        train, test = self._splits(data)
        rows = measure_rows(model, train, test, metrics=LIGHT, consumers={},
                            on_logits=on_logits, keep_bytes=KEEP_BYTES, subset=self._subset,
                            **self.measure_options)
        self.layers = list(dict.fromkeys(layer for layer, *_ in rows))
        got = {(index, split, metric): value for _, index, split, metric, value in rows}
        return torch.tensor([[[got[i, s, m] for m in LIGHT] for s in SPLITS]
                             for i in range(len(self.layers))], dtype=torch.float64)

    def record(self, epoch: int, values: Tensor) -> None:
        if not self.measured:
            self.values = values.new_zeros((0, *values.shape))
        self.measured.append(epoch)
        self.values = torch.cat([self.values, values[None].cpu()])

    def state_dict(self) -> dict:
        return {"layers": list(self.layers), "measured": list(self.measured),
                "values": self.values.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.layers, self.measured = list(state["layers"]), list(state["measured"])
        self.values = state["values"].to("cpu", torch.float64).clone()

    def table(self) -> pd.DataFrame:
        """Columns ``epoch, layer, layer_index, split, metric, value``, sorted by epoch, split,
        layer_index and metric (in :data:`LIGHT`'s order)."""
        values = self.values.tolist()
        rows = [(epoch, layer, index, split, metric, per_epoch[index][s][m])
                for epoch, per_epoch in zip(self.measured, values, strict=True)
                for s, split in enumerate(SPLITS)
                for index, layer in enumerate(self.layers)
                for m, metric in enumerate(LIGHT)]
        return pd.DataFrame(rows, columns=COLUMNS)

    def _splits(self, data: Splits) -> tuple[Batches, Batches]:
        """The batches of the full splits; the subsample, if any, is drawn on first use."""
        if self._data is not data:
            self._data = data
            pairs = [(data.x_train, data.y_train), (data.x_test, data.y_test)]
            self._batches = tuple(Batches(x, y, BATCH_SIZE) for x, y in pairs)
            if self.config.per_class is not None:
                # One generator for both splits, of its own: the subsample is fixed by the seed.
                generator = torch.Generator().manual_seed(self.seed)
                self._subset = {split: self._subsample(y, split, generator)
                                for (_, y), split in zip(pairs, SPLITS, strict=True)}
        return self._batches

    def _subsample(self, y: Tensor, split: str, generator: torch.Generator) -> Tensor:
        index, n = balanced_subsample(y, self.config.per_class, generator)
        if n < self.config.per_class:
            self.log(f"epoch_metrics.per_class = {self.config.per_class}, but the smallest "
                     f"class of the {split} split has {n} samples: measuring {n} per class there")
        return index
