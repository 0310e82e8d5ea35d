"""Forward hooks that hand over per-layer activations, batch by batch."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from torch import Tensor, nn

INPUT = "input"  # the model's input, tapped as layer 0


@dataclass
class Rows:
    """Which rows of the next batch the taps keep: ``index`` (None: all of them)."""

    index: Tensor | None = None


@contextmanager
def tap(model: nn.Module, layers: Sequence[str | nn.Module],
        detach: bool = True, rows: Rows | None = None) -> Iterator[dict[str, Tensor]]:
    """Within the block, every forward pass of ``model`` fills the yielded dict with the
    output of each layer, keyed by module name; ``"input"`` is the model's input.

    Only the latest batch is kept, so memory stays at one batch of activations per layer.
    Outputs are detached unless ``detach=False`` (for losses on intermediate features); an
    output that is not a tensor (a tuple, say) is kept as it is. With ``rows``, only the rows
    ``rows.index`` of each output are kept, as the forward pass makes it: the full outputs are
    freed layer by layer, as without the taps.

    A kept output is the module's own tensor (or, with ``rows``, a copy of those rows made when
    the module returns it): an in-place operation after the module (``ReLU(inplace=True)``
    after a tapped BatchNorm) changes the one and not the other. Tap the module after it.
    """
    modules = dict(model.named_modules())
    acts: dict[str, Tensor] = {}
    handles = []

    def kept(output):
        if not isinstance(output, Tensor):
            return output
        output = output.detach() if detach else output
        return output if rows is None or rows.index is None else output.index_select(
            0, rows.index)

    def keep(name: str):
        def hook(_module, _inputs, output):
            acts[name] = kept(output)
        return hook

    for layer in layer_names(model, layers):
        if layer == INPUT:
            handles.append(model.register_forward_pre_hook(
                lambda _m, inputs: acts.__setitem__(INPUT, kept(inputs[0].detach()))))
        else:  # layer_names checked that the model has it
            handles.append(modules[layer].register_forward_hook(keep(layer)))
    try:
        yield acts
    finally:
        for handle in handles:
            handle.remove()


# How many layer names an error message lists before it elides the rest.
SHOWN_NAMES = 12


def layer_names(model: nn.Module, layers: Sequence[str | nn.Module]) -> list[str]:
    """Module names for a mix of names and modules, in the given order; a ValueError for a name
    that is not one of the model's modules (nor ``"input"``)."""
    modules = dict(model.named_modules())
    names = {module: name for name, module in modules.items()}
    out = []
    for layer in layers:
        if isinstance(layer, nn.Module):
            if layer not in names:
                raise ValueError(f"module {type(layer).__name__} is not part of the model")
            out.append(names[layer])
        elif layer == INPUT or layer in modules:
            out.append(layer)
        else:
            raise ValueError(_unknown_layer(layer, modules))
    return out


def _unknown_layer(layer: object, modules: dict[str, nn.Module]) -> str:
    """The message for a layer name the model lacks: close matches, then its layer names,
    shallowest first (``conv1, layer1, ..., layer1.0.conv1``), a few of them if many."""
    known = sorted([INPUT, *(name for name in modules if name)], key=lambda n: n.count("."))
    close = difflib.get_close_matches(str(layer), known, n=2)
    hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
    shown = ", ".join(known[:SHOWN_NAMES])
    if len(known) > SHOWN_NAMES:
        shown += f", … ({len(known) - SHOWN_NAMES} more: see model.named_modules())"
    return f"model has no layer {layer!r}{hint}; its layers are: {shown}"
