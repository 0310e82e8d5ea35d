"""``measure``: the NC metrics of every tapped layer of any torch model, in streaming passes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd
import torch
from torch import Tensor, nn
from tqdm import tqdm

from nclayers.metrics import ClassMeans, MeanGeometry, SplitStats
from nclayers.taps import layer_names, tap

Batches = Iterable[tuple[Tensor, Tensor]]


def measure(
    model: nn.Module,
    train: Batches,
    test: Batches | None = None,
    *,
    layers: Sequence[str | nn.Module] | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """NC metrics of each layer on the train (and test) split, as a tidy DataFrame.

    ``train`` and ``test`` are re-iterable collections of ``(inputs, labels)`` batches (a list,
    a ``DataLoader``, :class:`nclayers.data.Batches`); the train batches are read twice, the test
    batches once. Class means come from the train split for both splits. ``layers`` are module
    names or modules of ``model`` (``"input"`` taps the input); by default
    ``model.tapped_layers``. The number of classes is the width of the model's output.

    Returns columns ``layer, layer_index, split, metric, value``; ``layer_index`` is the
    position in ``layers``. Metrics of the class means alone (NC2, Tr Σ_B) appear under
    ``split == "train"`` only.
    """
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
        with torch.no_grad(), tap(model, names) as acts:
            geometry = _class_means(model, train, names, acts, device, progress)
            rows = []
            for split, data in (("train", train), ("test", test)):
                if data is None:
                    continue
                stats = _split_stats(model, data, names, acts, geometry, device, split, progress)
                for index, name in enumerate(names):
                    values = stats[name].compute()
                    if split == "train":
                        values.update(geometry[name].mean_metrics())
                    rows += [(name, index, split, metric, value)
                             for metric, value in values.items()]
    finally:
        model.train(was_training)
    return pd.DataFrame(rows, columns=["layer", "layer_index", "split", "metric", "value"])


def _forward(model, x, device):
    return model(x.to(device, non_blocking=True))


def _class_means(model, data, names, acts, device, progress) -> dict[str, MeanGeometry]:
    means: dict[str, ClassMeans] = {}
    for x, y in tqdm(data, desc="class means (train)", disable=not progress, leave=False):
        out = _forward(model, x, device)
        for name in names:
            means.setdefault(name, ClassMeans(out.shape[1])).update(acts[name], y)
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
