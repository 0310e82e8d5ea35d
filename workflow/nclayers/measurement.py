"""``measure``: the NC metrics of every tapped layer of any torch model, in streaming passes."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import Tensor, nn
from tqdm import tqdm

from nclayers import vocabulary, weights
from nclayers.metrics import (
    GLOBAL_MEANS,
    MEAN_METRICS,
    PRECISIONS,
    SKETCH_COLUMNS,
    ClassMeans,
    MeanGeometry,
    SplitStats,
    labels,
    overflow_hint,
)
from nclayers.taps import Rows, layer_names, tap

LabelledBatches = Iterable[tuple[Tensor, Tensor]]  # re-iterable (inputs, labels)
OnLogits = Callable[[str, Tensor, Tensor], None]  # (split, logits, labels) of one batch
Subset = dict[str, Tensor]  # split → sorted row numbers of the split to measure
COLUMNS = ["layer", "layer_index", "split", "metric", "value"]


class NonFiniteActivations(ValueError):
    """A tapped layer's activations hold NaN or ±inf: the model diverged or the inputs hold NaN
    (a ValueError, so that callers can tell it from a measurement that cannot work at all)."""


def measure(
    model: nn.Module,
    train: LabelledBatches,
    test: LabelledBatches | None = None,
    *,
    layers: Sequence[str | nn.Module] | None = None,
    device: torch.device | str | None = None,
    consumers: dict[str, nn.Module] | None = None,
    metrics: Iterable[str] | None = None,
    progress: bool = False,
    on_logits: OnLogits | None = None,
    keep_bytes: int | None = None,
    subset: Subset | None = None,
    global_mean: str = "classes",
    precision: str = "float64",
) -> pd.DataFrame:
    """NC metrics of each layer on the train (and test) split, as a tidy DataFrame.

    ``train`` and ``test`` are re-iterable collections of ``(inputs, labels)`` batches (a list,
    a ``DataLoader``, :class:`nclayers.data.Batches`); the train batches are read twice, the test
    batches once. Class means come from the train split for both splits. ``layers`` are module
    names or modules of ``model`` (``"input"`` taps the input); by default
    ``model.tapped_layers``. The number of classes is the width of the model's output.

    Returns columns ``layer, layer_index, split, metric, value``; ``layer_index`` is the depth,
    as in the workflow's tables: 0 the input (tapped or not), then 1, 2, … for ``layers`` in
    their order (:func:`layer_indices`). Metrics of the class means alone (NC2, Tr Σ_B) and
    of the weights (NC3) appear under ``split == "train"`` only. ``consumers`` maps a layer to
    the module that reads its output (for NC3); by default
    :func:`nclayers.weights.find_consumers` finds them.
    ``metrics`` keeps only those rows; leaving out ``stable_rank`` also skips its sketch (the
    largest share of the arithmetic at large p) and leaving out the NC3 metrics their SVDs.
    ``on_logits(split, logits, labels)`` is called for every batch of the first reading of each
    split, in order: a caller gets the model's outputs on the whole split without a pass of its
    own (training logs its eval loss this way). The passes
    run under ``torch.inference_mode``: those logits are inference tensors (to read; clone them
    outside that mode to use them in autograd).

    ``keep_bytes``: where train's activations and logits of every tapped layer fit in that
    many bytes, they are kept from the first reading and read again instead of a second
    forward pass (the same numbers from a model whose forward pass is deterministic); by
    default a quarter of the memory free on the model's device (:func:`default_keep_bytes`),
    0 to always read train twice.

    ``subset``: ``{split: indices}``, sorted row numbers of a split as its batches give it: the
    metrics of those rows only. With ``on_logits`` a split's first reading forwards whole
    batches, so that it sees every row (training measures a fixed subsample in its evaluation
    passes this way); any other reading forwards the subset's rows alone.

    ``global_mean``: what centres the class means, "classes" (their unweighted mean) or
    "samples" (the train samples' mean; :data:`nclayers.metrics.GLOBAL_MEANS`, which papers use
    which); the two agree on balanced splits.

    ``precision``: the per-batch arithmetic, "float64" (the default: the dense float64
    reference's numbers to ~1e-14) or "float32" (faster, most of all on a GPU; ~1e-6 relative,
    :data:`nclayers.metrics.PRECISIONS`). The running totals are float64 in both.

    A ValueError says what cannot be measured: an unknown layer (listing known ones), fewer
    than two classes, a split without samples, a one-shot iterator as ``train``, or NaN or
    ±inf activations (naming the first such layer, the split and the batch; the accumulated
    sums are checked after each batch, O(C·p) per layer; :class:`NonFiniteActivations`).
    """
    if keep_bytes is None:
        keep_bytes = default_keep_bytes(device if device is not None else _model_device(model))
    rows = measure_rows(model, train, test, layers=layers, device=device, consumers=consumers,
                        metrics=metrics, progress=progress, on_logits=on_logits,
                        keep_bytes=keep_bytes, subset=subset, global_mean=global_mean,
                        precision=precision)
    return pd.DataFrame(rows, columns=COLUMNS)


def default_keep_bytes(device: torch.device | str) -> int:
    """A quarter of the memory free on ``device``: the GPU's free memory for CUDA, the
    system's available memory (``MemAvailable``) for the CPU; 0 where it cannot be read."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] // 4
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 4
    except OSError:
        pass
    return 0


def measure_rows(
    model: nn.Module,
    train: LabelledBatches,
    test: LabelledBatches | None = None,
    *,
    layers: Sequence[str | nn.Module] | None = None,
    device: torch.device | str | None = None,
    consumers: dict[str, nn.Module] | None = None,
    metrics: Iterable[str] | None = None,
    progress: bool = False,
    on_logits: OnLogits | None = None,
    keep_bytes: int = 0,
    subset: Subset | None = None,
    global_mean: str = "classes",
    precision: str = "float64",
) -> list[tuple[str, int, str, str, float]]:
    """:func:`measure`'s rows as tuples (``COLUMNS``), without the DataFrame: for a caller
    that measures after every epoch of a small model, where building it costs a few percent.

    ``keep_bytes`` > 0 keeps the activations and logits of train's first reading, if they fit
    in that many bytes, and reads them again instead of a second forward pass: the same numbers
    from a model whose forward pass is deterministic (on the CPU), a third fewer passes.
    """
    wanted = None if metrics is None else set(metrics)
    unknown = (wanted or set()) - set(vocabulary.METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; "
                         f"known: {', '.join(vocabulary.METRICS)}")
    if global_mean not in GLOBAL_MEANS:
        raise ValueError(f"global_mean={global_mean!r}: expected one of {', '.join(GLOBAL_MEANS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
    if isinstance(train, Iterator):
        raise ValueError("train must be re-iterable (a list, a DataLoader, nclayers.data.Batches), "
                         f"not a one-shot {type(train).__name__}: measure reads it twice")
    if layers is None:
        if not hasattr(model, "tapped_layers"):
            raise ValueError("pass layers=[...]: the model has no `tapped_layers` attribute")
        layers = model.tapped_layers
    names = layer_names(model, layers)
    if device is None:
        device = _model_device(model)
    was_training = model.training
    model.eval()
    try:
        if wanted is not None and not wanted & {"nc3_pabs", "nc3_duality"}:
            consumers = {}
        if consumers is None:
            consumers = weights.find_consumers(model, names, _first_inputs(train)[:2].to(device))
        sketch = SKETCH_COLUMNS if wanted is None or "stable_rank" in wanted else 0
        # inference_mode rather than no_grad: the same kernels, less dispatch per operation (a
        # light measurement of a small model is ~1,000 small ones); nothing here needs autograd.
        subset, selection = checked_subset(subset), Rows()
        with torch.inference_mode(), tap(model, names, rows=selection) as acts:
            reading = Reader(model, acts, selection, device, progress, subset.get("train"),
                             on_logits)
            geometry, kept = _class_means(reading, train, names, sketch, keep_bytes,
                                          global_mean, precision)
            rows = []
            for split, data in (("train", train), ("test", test)):
                if data is None:
                    continue
                # train's first reading gave on_logits the train logits
                reading = Reader(model, acts, selection, device, progress, subset.get(split),
                                 on_logits if split == "test" else None)
                stats = _split_stats(reading, data, names, geometry, split, wanted,
                                     kept if split == "train" else None)
                for index, name in zip(layer_indices(names), names, strict=True):
                    values = stats[name].compute()
                    if split == "train":
                        if wanted is None or wanted & set(MEAN_METRICS):
                            values.update(geometry[name].mean_metrics())
                        values.update(_nc3(model, geometry[name], consumers.get(name)))
                    rows += [(name, index, split, metric, value)
                             for metric, value in values.items()
                             if wanted is None or metric in wanted]
    finally:
        model.train(was_training)
    return rows


def _nc3(model: nn.Module, geometry: MeanGeometry, consumer: nn.Module | None) -> dict:
    if consumer is None:
        return {}
    out = {"nc3_pabs": weights.pabs(consumer, geometry.centred, geometry.shape)}
    if consumer is weights.classifier(model):
        out["nc3_duality"] = weights.duality(consumer, geometry.centred)
    return out


def layer_indices(names: Sequence[str]) -> list[int]:
    """Each tapped layer's depth: 0 the input, 1, 2, … the others in order (the input need not
    be tapped, but where it is, it comes first)."""
    if "input" in names[1:]:
        raise ValueError(f"layers {list(names)}: 'input' must come first (layers are listed "
                         "in depth order)")
    start = 0 if names and names[0] == "input" else 1
    return list(range(start, start + len(names)))


def weight_spectra(model: nn.Module, consumers: Mapping[str, nn.Module],
                   layers: Sequence[str]) -> pd.DataFrame:
    """Singular values σ_k of the weight that reads each of ``layers`` (module names, in depth
    order, as :func:`measure` takes them) and their shares σ_k/Σσ: columns ``layer,
    layer_index, k, sigma, share``. ``consumers`` maps a layer to the module that reads its
    output: ``nclayers.find_consumers(model, layers, inputs)`` finds them from one batch of
    inputs. A ValueError names the layers without a consumer where none has one."""
    if not isinstance(consumers, Mapping):
        raise TypeError(f"consumers must map layer names to modules, not a "
                        f"{type(consumers).__name__}: nclayers.find_consumers(model, layers, "
                        "inputs) finds them")
    rows = []
    for index, name in zip(layer_indices(layers), layers, strict=True):
        if name in consumers:
            sigma = weights.spectrum(consumers[name])
            share = sigma / sigma.sum()
            rows += [(name, index, k, float(v), float(f))
                     for k, (v, f) in enumerate(zip(sigma, share, strict=True))]
    if not rows:
        raise ValueError(f"no consumer for any of the layers {list(layers)} (consumers has "
                         f"{sorted(consumers) or 'none'}): nclayers.find_consumers(model, "
                         "layers, inputs) finds the module that reads each layer")
    return pd.DataFrame(rows, columns=["layer", "layer_index", "k", "sigma", "share"])


def _model_device(model: nn.Module) -> torch.device:
    """Where the model's first parameter (or buffer) lives; the CPU for a model of neither."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _no_samples(split: str, batches: int, reading: str = "") -> ValueError:
    what = "no batches" if batches == 0 else f"{batches} batches, all of zero rows"
    alone = "; or pass test=None to measure the train split alone" if split == "test" else ""
    return ValueError(f"the {split} split yielded no samples{reading} ({what}); measure needs "
                      f"(inputs, labels) batches with at least one row{alone}")


def _first_inputs(train: LabelledBatches) -> Tensor:
    """The inputs of the first non-empty train batch (for finding the consumers)."""
    count = 0
    for x, _ in train:
        if len(x):
            return x
        count += 1
    raise _no_samples("train", count)


def _num_classes(out: object) -> int:
    """The number of classes: the width of the model's output (batch, classes)."""
    if not isinstance(out, Tensor) or out.dim() != 2:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"the model's output must be logits of shape (batch, classes), got {got}")
    if out.shape[1] < 2:
        raise ValueError(f"NC metrics need at least two classes, but the model's output has width "
                         f"{out.shape[1]}: measure a classifier with one output per class")
    return out.shape[1]


def _activation(acts: dict, name: str, split: str, batch: int) -> Tensor:
    h = acts.get(name)
    if isinstance(h, Tensor):
        return h
    problem = ("did not run in the forward pass" if h is None
               else f"output a {type(h).__name__}, not a tensor")
    raise ValueError(f"layer {name!r} {problem} of {split} batch {batch}; tap modules that "
                     "output one tensor each forward pass")


class FirstNonFinite:
    """Where each layer's accumulated statistics first turned non-finite, tracked on the device:
    after each reading a test of every layer's :meth:`~nclayers.metrics.ClassMeans.total`,
    kept as the reading's number (a few operations per reading, O(C·p) or O(C) per layer,
    against the reading's O(n·p) work, and no read back: on an accelerator a read per batch
    would make the host wait for it at every one). :meth:`check` reads it once per split and
    names the first such reading and the earliest such layer of the forward pass."""

    def __init__(self, names: Sequence[str], precision: str = "float64") -> None:
        self.names = list(names)
        self.precision = precision  # the statistics' arithmetic: float32's products overflow
        self.first: Tensor | None = None  # per layer, the reading's index; −1: none yet
        self.readings: list[int | str] = []  # the readings' batch numbers, in order
        self.order: list[str] = []  # the layers in the order the forward pass ran them

    def add(self, accumulators: dict, acts: dict, batch: int | str) -> None:
        if not self.order:
            self.order = list(acts)  # filled by the hooks in the order of the forward pass
        totals = [accumulators[name].total() for name in self.names]
        totals = torch.stack([t.to(totals[0].device) for t in totals])  # layers on one device
        if self.first is None:
            self.first = torch.full_like(totals, -1, dtype=torch.long)
        newly = ~torch.isfinite(totals) & (self.first < 0)
        self.first = torch.where(newly, len(self.readings), self.first)
        self.readings.append(batch)

    def check(self, split: str) -> None:
        first = [] if self.first is None else self.first.tolist()
        bad = [(at, name) for at, name in zip(first, self.names, strict=True) if at >= 0]
        if not bad:
            return
        at = min(at for at, _ in bad)
        bad = [name for when, name in bad if when == at]
        name = min(bad, key=lambda n: self.order.index(n) if n in self.order else len(self.order))
        others = len(bad) - 1
        more = f" (and {others} other tapped layer{'s' * (others > 1)})" if others else ""
        overflow = overflow_hint(getattr(torch, self.precision))
        raise NonFiniteActivations(
            f"layer {name!r}{more} has non-finite activations in {split} batch "
            f"{self.readings[at]} (counting from 0): the model diverged or the inputs hold NaN"
            f"{overflow}")


def _forward(model, x, device):
    return model(x.to(device, non_blocking=True))


# One batch as read: (batch number, activations by layer, labels, logits); the activations and
# logits are None for a batch without rows (skipped, but counted in messages). Rows of a subset
# gathered from several batches are numbered by their span, e.g. "0–4".
Reading = tuple[int | str, dict | None, Tensor, Tensor | None]


@dataclass
class Reader:
    """Forward passes over a split with the layers tapped (``acts``, filled by the hooks):
    each batch's activations are valid until the next one. Hands ``on_logits`` the whole
    batch.

    With a ``subset`` (sorted row numbers of the split) only those rows are measured. A reading
    that hands logits to ``on_logits`` forwards whole batches, and the taps keep only the
    subset's rows (``rows``, the taps' :class:`~nclayers.taps.Rows`); one that does not forwards
    the subset's rows alone. The rows of consecutive batches are gathered into readings of at
    least a batch's size (less than two), so that a subsample's statistics take as few steps
    as if it had been read on its own."""

    model: nn.Module
    acts: dict
    rows: Rows
    device: torch.device | str
    progress: bool
    subset: Tensor | None = None
    on_logits: OnLogits | None = None
    # the subset's row numbers read once to the host, and copied once to each device: _rows
    _host: list[int] | None = field(default=None, init=False, repr=False)
    _copies: dict = field(default_factory=dict, init=False, repr=False)

    def __call__(self, data: LabelledBatches, desc: str, split: str) -> Iterator[Reading]:
        batches = tqdm(data, desc=desc, disable=not self.progress, leave=False)
        if self.subset is None:
            for batch, (x, y) in enumerate(batches):
                if not len(y):
                    yield batch, None, y, None
                    continue
                self.acts.clear()
                out = _forward(self.model, x, self.device)
                if self.on_logits is not None:
                    self.on_logits(split, out, y)
                yield batch, self.acts, y, out
            return
        yield from self._gathered(batches, split)

    def _gathered(self, batches, split: str) -> Iterator[Reading]:
        pieces: list[Reading] = []
        start, gathered, batch, y = 0, 0, -1, torch.zeros(0, dtype=torch.long)
        try:
            for batch, (x, y) in enumerate(batches):
                if not len(y):
                    continue
                piece = self._piece(batch, x, y, self._rows(start, len(y)), split)
                start += len(y)
                if piece is not None:
                    pieces.append(piece)
                if sum(len(labels) for _, _, labels, _ in pieces) >= len(y):
                    gathered += 1
                    yield _joined(pieces)
                    pieces = []
        finally:
            self.rows.index = None
        if int(self.subset[-1]) >= start:
            raise ValueError(f"subset row {int(self.subset[-1])} of the {split} split, which "
                             f"has {start} rows")
        if pieces or not gathered:  # none at all: the caller's message counts the batches
            yield _joined(pieces) if pieces else (batch, None, y[:0], None)

    def _piece(self, batch: int, x: Tensor, y: Tensor,
               rows: tuple[Callable[[torch.device], Tensor], int], split: str
               ) -> Reading | None:
        """The subset's ``rows`` of one batch (:meth:`_rows`): the whole batch forwarded where
        ``on_logits`` needs its logits, else those rows alone; None where the batch holds none
        of them."""
        self.acts.clear()
        on, count = rows
        whole = self.on_logits is not None
        if not whole:
            if not count:
                return None
            x, y = x.index_select(0, on(x.device)), y.index_select(0, on(y.device))
        self.rows.index = on(torch.device(self.device)) if whole else None
        out = _forward(self.model, x, self.device)
        _num_classes(out)
        if whole:
            self.on_logits(split, out, y)
            if not count:
                return None
            y, out = y.index_select(0, on(y.device)), out.index_select(0, on(out.device))
        return batch, dict(self.acts), y, out

    def _rows(self, start: int, n: int) -> tuple[Callable[[torch.device], Tensor], int]:
        """The subset's rows of the batch of ``n`` rows from row ``start`` of the split, as
        indices into the batch on a device asked for, and their number. They are sliced from
        a copy of the subset kept on that device: copying row numbers from the host for every
        batch would make it wait for an accelerator."""
        if self._host is None:
            self._host = self.subset.tolist()
        first, last = (bisect.bisect_left(self._host, k) for k in (start, start + n))

        def on(device: torch.device) -> Tensor:
            if device not in self._copies:
                self._copies[device] = self.subset.to(device)
            return self._copies[device][first:last] - start

        return on, last - first


def checked_subset(subset: Subset | None) -> Subset:
    """``subset`` as the readings take it: per split a 1-D int64 CPU tensor of strictly
    increasing row numbers ≥ 0 (a ValueError names the split and the problem)."""
    unknown = sorted(set(subset or {}) - {"train", "test"})
    if unknown:
        raise ValueError(f"subset has no split {', '.join(map(repr, unknown))}; its keys are "
                         "'train' and 'test'")
    checked = {}
    for split, rows in (subset or {}).items():
        rows = torch.as_tensor(rows).cpu()
        if rows.dim() != 1 or not len(rows) or rows.is_floating_point() or rows.is_complex():
            raise ValueError(f"subset[{split!r}] must be a non-empty 1-D array of row numbers, "
                             f"got shape {tuple(rows.shape)}, dtype {rows.dtype}")
        rows = rows.long()
        if int(rows[0]) < 0 or (len(rows) > 1 and not bool((rows[1:] > rows[:-1]).all())):
            raise ValueError(f"subset[{split!r}] must hold distinct row numbers ≥ 0 in "
                             "ascending order (sort it, e.g. torch.unique)")
        checked[split] = rows
    return checked


def _joined(pieces: list[Reading]) -> Reading:
    """Consecutive readings as one, numbered by the batches it spans (e.g. "0–4")."""
    if len(pieces) == 1:
        return pieces[0]
    acts = {}
    for name in pieces[0][1]:
        values = [piece[1].get(name) for piece in pieces]
        odd = [h for h in values if not isinstance(h, Tensor)]  # _activation names it
        acts[name] = odd[0] if odd else torch.cat(values)
    return (f"{pieces[0][0]}–{pieces[-1][0]}", acts, torch.cat([piece[2] for piece in pieces]),
            torch.cat([piece[3] for piece in pieces]))


def _class_means(reading: Reader, data, names, sketch: int, keep_bytes: int = 0,
                 global_mean: str = "classes", precision: str = "float64"
                 ) -> tuple[dict[str, MeanGeometry], list[Reading] | None]:
    """The train class means' geometry of each layer, and the readings themselves where
    ``keep_bytes`` holds all their activations and logits (else None)."""
    means: dict[str, ClassMeans] = {}
    kept: list[Reading] | None = [] if keep_bytes > 0 else None
    size, batch = 0, -1
    for batch, batch_acts, y, out in reading(data, "class means (train)", "train"):
        if out is None:
            continue
        if not means:
            num_classes = _num_classes(out)
            means = {name: ClassMeans(num_classes, sketch, global_mean, precision)
                     for name in names}
            non_finite = FirstNonFinite(names, precision)
        batch_labels = labels(y, num_classes, out.device)  # once for all layers
        for name in names:
            means[name].update(_activation(batch_acts, name, "train", batch), batch_labels)
        non_finite.add(means, batch_acts, batch)
        if kept is not None:  # references, not copies: the next forward makes new tensors
            size += out.nbytes + sum(batch_acts[name].nbytes for name in names)
            if size <= keep_bytes:
                kept.append((batch, dict(batch_acts), y, out))
            else:
                kept = None
    if not means:
        raise _no_samples("train", batch + 1)
    non_finite.check("train")
    return {name: acc.compute() for name, acc in means.items()}, kept


def _split_stats(reading: Reader, data, names, geometry, split, wanted=None,
                 kept: list[Reading] | None = None):
    """Each layer's :class:`SplitStats` on ``data``, or on the ``kept`` readings of it."""
    stats = {name: SplitStats(geometry[name], wanted) for name in names}
    first = next(iter(geometry.values()))
    num_classes = first.num_classes
    non_finite = FirstNonFinite(names, first.precision)
    batch, rows = -1, 0
    readings = kept if kept is not None else reading(data, f"statistics ({split})", split)
    for batch, batch_acts, y, out in readings:
        if out is None:
            continue
        pred = out.argmax(dim=1)
        batch_labels = labels(y, num_classes, out.device)  # once for all layers
        for name in names:
            stats[name].update(_activation(batch_acts, name, split, batch), batch_labels, pred)
        non_finite.add(stats, batch_acts, batch)
        rows += len(y)
    if not rows:
        raise _no_samples(split, batch + 1, " on its second reading" if split == "train" else "")
    non_finite.check(split)
    return stats
