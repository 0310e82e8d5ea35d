"""Forward hooks that hand over per-layer activations, batch by batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from torch import Tensor, nn

INPUT = "input"  # the model's input, tapped as layer 0


@contextmanager
def tap(model: nn.Module, layers: Sequence[str | nn.Module],
        detach: bool = True) -> Iterator[dict[str, Tensor]]:
    """Within the block, every forward pass of ``model`` fills the yielded dict with the
    output of each layer, keyed by module name; ``"input"`` is the model's input.

    Only the latest batch is kept, so memory stays at one batch of activations per layer.
    Outputs are detached unless ``detach=False`` (for losses on intermediate features).
    """
    modules = dict(model.named_modules())
    acts: dict[str, Tensor] = {}
    handles = []

    def keep(name: str):
        def hook(_module, _inputs, output):
            acts[name] = output.detach() if detach else output
        return hook

    for layer in layer_names(model, layers):
        if layer == INPUT:
            handles.append(model.register_forward_pre_hook(
                lambda _m, inputs: acts.__setitem__(INPUT, inputs[0].detach())))
        elif layer in modules:
            handles.append(modules[layer].register_forward_hook(keep(layer)))
        else:
            raise ValueError(f"model has no layer {layer!r}; layers are: "
                             f"{', '.join(n for n in modules if n)}")
    try:
        yield acts
    finally:
        for handle in handles:
            handle.remove()


def layer_names(model: nn.Module, layers: Sequence[str | nn.Module]) -> list[str]:
    """Module names for a mix of names and modules, in the given order."""
    names = {module: name for name, module in model.named_modules()}
    out = []
    for layer in layers:
        if isinstance(layer, nn.Module) and layer not in names:
            raise ValueError(f"module {type(layer).__name__} is not part of the model")
        out.append(names[layer] if isinstance(layer, nn.Module) else layer)
    return out
