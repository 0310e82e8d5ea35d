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


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("metrics", [None, ["nc1", "ncc_accuracy", "nc4_mismatch"]])
def test_measure_reads_back_the_same_whatever_the_number_of_batches(metrics, precision):
    x, y = data()
    model = net()

    def run(batch_size):
        return lambda: measure(model, Batches(x, y, batch_size), Batches(x, y, batch_size),
                               layers=["1", "3"], metrics=metrics, keep_bytes=0,
                               precision=precision)

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


def test_a_subset_measured_on_the_evaluations_passes_reads_back_the_same():
    # The per-epoch metrics' way (epoch_metrics): rows of each split, whole batches forwarded
    # so that on_logits sees every row.
    x, y = data()
    model = net()
    subset = {"train": torch.arange(0, 96, 5), "test": torch.arange(3, 96, 7)}
    tallies = {}

    def run(batch_size):
        def go():
            tallies.clear()
            measure(model, Batches(x, y, batch_size), Batches(x, y, batch_size),
                    layers=["1", "3"], metrics=["nc1", "ncc_accuracy"], keep_bytes=0,
                    subset=subset, on_logits=lambda split, out, labels: tallies.setdefault(
                        split, Tally(nn.functional.cross_entropy)).add(out, labels))
        return go

    assert reads_of(run(48)) == reads_of(run(8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (benchmarks/gpu_session.sh)")
def test_on_cuda_the_waits_for_the_device_do_not_grow_with_the_batches():
    # CUDA's own count of the operations that make the host wait (bincount, masks, blocking
    # copies, reads): what the read count above cannot see.
    import warnings

    x, y = (t.cuda() for t in data())
    model = net().cuda()
    subset = {"train": torch.arange(0, 96, 5), "test": torch.arange(3, 96, 7)}

    def waits(batch_size, **options):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                measure(model, Batches(x, y, batch_size), Batches(x, y, batch_size),
                        layers=["1", "3"], keep_bytes=0, **options)
                tally = Tally(nn.functional.cross_entropy)
                for i in range(0, 96, batch_size):
                    tally.add(model(x[i:i + batch_size]), y[i:i + batch_size])
                tally.result()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    waits(48)  # warm up
    assert waits(48) == waits(8)
    assert waits(48, precision="float32") == waits(8, precision="float32")
    assert waits(48, subset=subset, on_logits=lambda *_: None) == waits(
        8, subset=subset, on_logits=lambda *_: None)
