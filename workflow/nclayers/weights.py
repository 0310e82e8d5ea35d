"""NC3 and weight spectra: how each layer's consuming weight lines up with the class means.

For a tapped layer ℓ with centred train class means M (rows μ_c − μ_G), the *consumer* is the
first ``Linear`` or ``Conv2d`` that reads ℓ's output (found by :func:`find_consumers`).
Convolutions are compared along their input-channel axis (rangamani2023 App. A): the kernel
(C_out, C_in, k_h, k_w) becomes a (C_out·k_h·k_w) × C_in matrix, and the means of features of
shape (C_in, H, W) become a C_in × (C·H·W) matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from nclayers.taps import INPUT, layer_names

WEIGHT_TYPES = (nn.Linear, nn.Conv2d)


def weight_matrix(module: nn.Module) -> Tensor:
    """The consumer's weight as (outputs × input features), float64; conv along C_in."""
    w = module.weight.detach().to(torch.float64)
    if w.dim() == 4:
        return w.permute(0, 2, 3, 1).reshape(-1, w.shape[1])
    return w


def mean_matrix(centred: Tensor, shape: Sequence[int], module: nn.Module) -> Tensor:
    """Centred class means as (input features × columns) in the consumer's input space."""
    if isinstance(module, nn.Conv2d) and len(shape) == 3 and shape[0] == module.in_channels:
        c_in = shape[0]
        return centred.reshape(len(centred), c_in, -1).permute(1, 0, 2).reshape(c_in, -1)
    return centred.T


def pabs(module: nn.Module, centred: Tensor, shape: Sequence[int]) -> float:
    """Mean cosine of the principal angles between the top-C right singular vectors of the
    consumer's weight and the top-(C−1) left singular vectors of the means (range(M)).

    NaN where the comparison is trivial (the weight's top-C space is the whole input space)
    or the shapes do not line up (a consumer that does not read these features directly).
    """
    w = weight_matrix(module)
    m = mean_matrix(centred, shape, module)
    C = len(centred)
    if w.shape[1] != m.shape[0] or min(C, w.shape[0]) >= w.shape[1]:
        return float("nan")
    # Right singular vectors = eigenvectors of WᵀW (C_in × C_in): cheaper than an SVD of a
    # tall (C_out·k·k) × C_in kernel matrix.
    v_w = torch.linalg.eigh(w.T @ w).eigenvectors[:, -C:]
    u_m, s_m, _ = torch.linalg.svd(m, full_matrices=False)
    rank = int((s_m > s_m[0] * 1e-8).sum()) if len(s_m) and s_m[0] > 0 else 0
    if rank == 0:
        return float("nan")
    u_m = u_m[:, :min(rank, C - 1)]
    return float(torch.linalg.svdvals(v_w.T @ u_m).mean())


def duality(classifier: nn.Linear, centred: Tensor) -> float:
    """NC3 self-duality ‖W/‖W‖_F − Mᵀ/‖M‖_F‖_F of the classifier W (C × p) and the means of
    the features it reads (rows of ``centred`` are μ_c − μ_G, i.e. Mᵀ)."""
    w = classifier.weight.detach().to(torch.float64)
    if w.shape != centred.shape:
        return float("nan")
    return float(torch.linalg.norm(w / torch.linalg.norm(w) - centred / torch.linalg.norm(centred)))


def classifier(model: nn.Module) -> nn.Linear | None:
    """The model's output layer: its ``classifier`` attribute, else its last ``nn.Linear``."""
    head = getattr(model, "classifier", None)
    if isinstance(head, nn.Linear):
        return head
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def spectrum(module: nn.Module) -> Tensor:
    """Singular values of the consumer's weight matrix, descending."""
    return torch.linalg.svdvals(weight_matrix(module))


@torch.no_grad()
def find_consumers(model: nn.Module, layers: Sequence[str | nn.Module],
                   example: Tensor) -> dict[str, nn.Module]:
    """For each layer, the first Linear/Conv2d run after it in a forward pass of ``example``
    that reads its output (or, failing that, the first one run after it: pooling or
    flattening may stand between them). Layers with none are left out."""
    names = layer_names(model, layers)
    modules = dict(model.named_modules())
    events: list[tuple[str, object, object]] = []  # (kind, key, tensor) in execution order
    handles = [model.register_forward_pre_hook(
        lambda _m, inputs: events.append(("out", INPUT, inputs[0])))] if INPUT in names else []
    for name in names:
        if name != INPUT:
            handles.append(modules[name].register_forward_hook(
                lambda _m, _i, out, name=name: events.append(("out", name, out))))
    for module in model.modules():
        if isinstance(module, WEIGHT_TYPES):
            handles.append(module.register_forward_pre_hook(
                lambda m, inputs: events.append(("in", m, inputs[0]))))
    was_training = model.training
    try:
        model.eval()
        model(example)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    consumers = {}
    for i, (kind, name, out) in enumerate(events):
        if kind != "out" or name in consumers:
            continue
        later = [(m, x) for k, m, x in events[i + 1:] if k == "in"]
        direct = [m for m, x in later if x is out]
        if direct or later:
            consumers[name] = direct[0] if direct else later[0][0]
    return consumers
