"""Architectures registry. Every model lists its tapped layers, in depth order, in
``tapped_layers``: module names for :func:`nclayers.taps.tap`, with ``"input"`` as layer 0."""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import Tensor, nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
}


class MLP(nn.Module):
    """``depth`` hidden blocks Linear → (BatchNorm) → activation of ``width`` units, then a
    linear classifier. Tapped: the input and the output of every hidden block."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, depth: int = 6,
                 width: int = 256, batchnorm: bool = True, activation: str = "relu") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; known: {sorted(ACTIVATIONS)}")
        self.flatten = nn.Flatten()
        fan_in = math.prod(input_shape)
        self.hidden = [f"layer{i + 1}" for i in range(depth)]
        for name in self.hidden:
            layers: list[nn.Module] = [nn.Linear(fan_in, width, bias=not batchnorm)]
            if batchnorm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(ACTIVATIONS[activation]())
            self.add_module(name, nn.Sequential(*layers))
            fan_in = width
        self.classifier = nn.Linear(fan_in, num_classes)
        self.tapped_layers = ["input", *self.hidden]

    def forward(self, x: Tensor) -> Tensor:
        x = self.flatten(x)
        for name in self.hidden:
            x = getattr(self, name)(x)
        return self.classifier(x)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
}


def build(name: str, input_shape: tuple[int, ...], num_classes: int, **options) -> nn.Module:
    if name not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[name](input_shape, num_classes, **options)
