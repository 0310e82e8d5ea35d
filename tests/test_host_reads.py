"""The measurement and the log's evaluation read nothing back to the host batch by batch
(issue 31 §1–2): on a GPU each such read makes the host wait for the device. Tested on the CPU,
where the code path is the same, by counting the reads while the number of batches changes."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from nclayers import measure
from nclayers.data import Batches
from nclayers.train import Tally, evaluate

READS = ("item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__")


@contextlib.contextmanager
def counted_reads():
    """Count the calls of the tensor methods that copy a value to the host."""
    counts = {"reads": 0}
    originals = {name: getattr(torch.Tensor, name) for name in READS}

    def counting(original):
        def read(self, *args, **kwargs):
            counts["reads"] += 1
            return original(self, *args, **kwargs)
        return read

    for name, original in originals.items():
        setattr(torch.Tensor, name, counting(original))
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                         nn.Linear(16, 3))


def data(n: int = 96):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 6, generator=g), torch.arange(n) % 3


def reads_of(run) -> int:
    with counted_reads() as counts:
        run()
    return counts["reads"]


@pytest.mark.parametrize("metrics", [None, ["nc1", "ncc_accuracy", "nc4_mismatch"]])
def test_measure_reads_back_the_same_whatever_the_number_of_batches(metrics):
    x, y = data()
    model = net()

    def run(batch_size):
        return lambda: measure(model, Batches(x, y, batch_size), Batches(x, y, batch_size),
                               layers=["1", "3"], metrics=metrics, keep_bytes=0)

    few, many = reads_of(run(48)), reads_of(run(8))  # 2 and 12 batches per split
    assert few == many


def test_the_log_evaluation_reads_back_once_per_split():
    x, y = data()
    model = net()
    loss = nn.functional.cross_entropy
    assert reads_of(lambda: evaluate(model, x, y, loss, 48)) == reads_of(
        lambda: evaluate(model, x, y, loss, 8))
    tally = Tally(loss)
    with counted_reads() as counts:
        for i in range(0, 96, 8):
            tally.add(model(x[i:i + 8]), y[i:i + 8])
    assert counts["reads"] == 0


def test_a_batch_of_bad_labels_is_refused_once_its_split_is_read():
    x, y = data()
    y = y.clone()
    y[50] = 3  # the model has 3 classes
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\], got range \[0, 3\]"):
        measure(net(), Batches(x, y, 16), layers=["1"])
