"""What every dataset reader returns, :class:`Splits`, the error when it cannot,
:class:`DatasetUnavailable`, and the one class-balanced sampler, :func:`balanced_index`; apart
from the registry (``data``) so that the GLUE readers (``glue``), which the registry lists,
need not import it back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from nclayers.errors import UserError


class DatasetUnavailable(UserError, FileNotFoundError):
    """A dataset's files are missing, truncated or corrupt; the message names them and the fix."""


@dataclass(frozen=True)
class Splits:
    """A dataset's train and test splits, features as float32 (token ids as int64: the GLUE
    tasks), labels as int64."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device | str) -> Splits:
        return Splits(self.name, self.x_train.to(device), self.y_train.to(device),
                      self.x_test.to(device), self.y_test.to(device), self.num_classes)


class SmallClass(ValueError):
    """A class has fewer samples than a balanced sample takes of each."""

    def __init__(self, label: int, count: int) -> None:
        super().__init__(f"class {label} has only {count} samples")
        self.label, self.count = label, count


def balanced_index(y: Tensor, n: int, generator: torch.Generator,
                   classes: Iterable[int] | None = None) -> Tensor:
    """Sorted positions (the split's own order) of ``n`` random samples of each of ``classes``
    (default: those present in ``y``, ascending), drawn in class order with ``generator``, so
    that a seed gives the same sample on any machine. :class:`SmallClass` where a class has
    fewer than ``n``."""
    y = y.cpu()
    keep = []
    for c in torch.unique(y).tolist() if classes is None else classes:
        idx = torch.nonzero(y == c).flatten()
        if len(idx) < n:
            raise SmallClass(c, len(idx))
        keep.append(idx[torch.randperm(len(idx), generator=generator)[:n]])
    return torch.cat(keep).sort().values
