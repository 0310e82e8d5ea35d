"""``measure``: the NC metrics of every tapped layer of any torch model, in streaming passes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd
import torch
from torch import Tensor, nn
from tqdm import tqdm

from nclayers import weights
from nclayers.metrics import (
    MEAN_METRICS,
    SKETCH_COLUMNS,
    SPLIT_METRICS,
    ClassMeans,
    MeanGeometry,
    SplitStats,
)
from nclayers.taps import layer_names, tap

LabelledBatches = Iterable[tuple[Tensor, Tensor]]  # re-iterable (inputs, labels)
METRICS = (*SPLIT_METRICS, *MEAN_METRICS, "nc3_pabs", "nc3_duality")


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
) -> pd.DataFrame:
    """NC metrics of each layer on the train (and test) split, as a tidy DataFrame.

    ``train`` and ``test`` are re-iterable collections of ``(inputs, labels)`` batches (a list,
    a ``DataLoader``, :class:`nclayers.data.Batches`); the train batches are read twice, the test
    batches once. Class means come from the train split for both splits. ``layers`` are module
    names or modules of ``model`` (``"input"`` taps the input); by default
    ``model.tapped_layers``. The number of classes is the width of the model's output.

    Returns columns ``layer, layer_index, split, metric, value``; ``layer_index`` is the
    position in ``layers``. Metrics of the class means alone (NC2, Tr Σ_B) and of the weights
    (NC3) appear under ``split == "train"`` only. ``consumers`` maps a layer to the module that
    reads its output (for NC3); by default :func:`nclayers.weights.find_consumers` finds them.
    ``metrics`` keeps only those rows; leaving out ``stable_rank`` also skips its sketch (the
    largest share of the arithmetic at large p) and leaving out the NC3 metrics their SVDs.
    """
    wanted = None if metrics is None else set(metrics)
    unknown = (wanted or set()) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; known: {', '.join(METRICS)}")
    if layers is None:
        if not hasattr(model, "tapped_layers"):
            raise ValueError("pass layers=[...]: the model has no `tapped_layers` attribute")
        layers = model.tapped_layers
    names = layer_names(model, layers)
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        if wanted is not None and not wanted & {"nc3_pabs", "nc3_duality"}:
            consumers = {}
        if consumers is None:
            x0, _ = next(iter(train))
            consumers = weights.find_consumers(model, names, x0[:2].to(device))
        sketch = SKETCH_COLUMNS if wanted is None or "stable_rank" in wanted else 0
        with torch.no_grad(), tap(model, names) as acts:
            geometry = _class_means(model, train, names, acts, device, progress, sketch)
            rows = []
            for split, data in (("train", train), ("test", test)):
                if data is None:
                    continue
                stats = _split_stats(model, data, names, acts, geometry, device, split, progress)
                for index, name in enumerate(names):
                    values = stats[name].compute()
                    if split == "train":
                        values.update(geometry[name].mean_metrics())
                        values.update(_nc3(model, geometry[name], consumers.get(name)))
                    rows += [(name, index, split, metric, value)
                             for metric, value in values.items()
                             if wanted is None or metric in wanted]
    finally:
        model.train(was_training)
    return pd.DataFrame(rows, columns=["layer", "layer_index", "split", "metric", "value"])


def _nc3(model: nn.Module, geometry: MeanGeometry, consumer: nn.Module | None) -> dict:
    if consumer is None:
        return {}
    out = {"nc3_pabs": weights.pabs(consumer, geometry.centred, geometry.shape)}
    if consumer is weights.classifier(model):
        out["nc3_duality"] = weights.duality(consumer, geometry.centred)
    return out


def weight_spectra(model: nn.Module, consumers: dict[str, nn.Module],
                   layers: Sequence[str]) -> pd.DataFrame:
    """Singular values σ_k of each layer's consuming weight and their shares σ_k/Σσ."""
    rows = []
    for index, name in enumerate(layers):
        if name in consumers:
            sigma = weights.spectrum(consumers[name])
            share = sigma / sigma.sum()
            rows += [(name, index, k, float(v), float(f))
                     for k, (v, f) in enumerate(zip(sigma, share, strict=True))]
    return pd.DataFrame(rows, columns=["layer", "layer_index", "k", "sigma", "share"])


def _forward(model, x, device):
    return model(x.to(device, non_blocking=True))


def _class_means(model, data, names, acts, device, progress,
                 sketch: int) -> dict[str, MeanGeometry]:
    means: dict[str, ClassMeans] = {}
    for x, y in tqdm(data, desc="class means (train)", disable=not progress, leave=False):
        out = _forward(model, x, device)
        for name in names:
            means.setdefault(name, ClassMeans(out.shape[1], sketch)).update(acts[name], y)
    if not means:
        raise ValueError("the train batches are empty")
    return {name: acc.compute() for name, acc in means.items()}


def _split_stats(model, data, names, acts, geometry, device, split, progress):
    stats = {name: SplitStats(geometry[name]) for name in names}
    for x, y in tqdm(data, desc=f"statistics ({split})", disable=not progress, leave=False):
        pred = _forward(model, x, device).argmax(dim=1)
        for name in names:
            stats[name].update(acts[name], y, pred)
    return stats
