"""Datasets registry: each loader returns the train and test splits as in-memory tensors.

Keeping whole (small) datasets as tensors and slicing batches by index is much faster than a
``DataLoader`` for the models here (see benchmarks/), and makes shuffling exactly reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Splits:
    """A dataset's train and test splits, features as float32, labels as int64."""

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


def load_digits(test_fraction: float = 0.3) -> Splits:
    """scikit-learn's bundled 8×8 digits (1,797 images, 10 classes): offline, seconds to train.

    The train/test split is part of the dataset's definition, fixed and stratified, independent
    of the run's seed. Pixels are standardised with the train split's statistics.
    """
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    x, y = sk_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x.astype(np.float32), y, test_size=test_fraction, stratify=y, random_state=0
    )
    mean, std = x_tr.mean(axis=0), x_tr.std()
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    return Splits(
        "digits",
        torch.from_numpy(x_tr.reshape(-1, 1, 8, 8)),
        torch.from_numpy(y_tr).long(),
        torch.from_numpy(x_te.reshape(-1, 1, 8, 8)),
        torch.from_numpy(y_te).long(),
        num_classes=10,
    )


DATASETS: dict[str, Callable[..., Splits]] = {
    "digits": load_digits,
}


def load(name: str, **options) -> Splits:
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](**options)


def batches(
    x: Tensor, y: Tensor, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[tuple[Tensor, Tensor]]:
    """Mini-batches by slicing; shuffled with ``generator`` when one is given."""
    n = len(x)
    if generator is None:
        for i in range(0, n, batch_size):
            yield x[i:i + batch_size], y[i:i + batch_size]
        return
    order = torch.randperm(n, generator=generator).to(x.device)
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        yield x[idx], y[idx]


class Batches:
    """A re-iterable view of (x, y) in fixed order, for the multi-pass measurement."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return batches(self.x, self.y, self.batch_size)

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)
