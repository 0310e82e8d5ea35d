"""What every dataset reader returns, :class:`Splits`, and the error when it cannot,
:class:`DatasetUnavailable`; apart from the registry (``data``) so that the GLUE readers
(``glue``), which the registry lists, need not import it back."""

from __future__ import annotations

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
