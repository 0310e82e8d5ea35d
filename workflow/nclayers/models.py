"""Architectures registry: MLP-d-W, ConvNet-d-W, VGG11 and ResNet18/34/50 for small images.

Every model is built as ``ARCHITECTURES[name](input_shape, num_classes, **options)`` where
``input_shape`` is (C, H, W) and the options are the builder's keyword parameters (the config
checks read them from the signature, so keep them explicit, with defaults). Every model has

- ``tapped_layers``: module names for :func:`nclayers.taps.tap`, in depth order, ``"input"``
  (layer 0) first, then the output of each block *after* its activation, ending with the
  penultimate features that ``classifier`` consumes (flattened for the conv nets);
- ``classifier``: the last ``nn.Linear``, whose weight NC3 compares with the class means.

Initialisation is PyTorch's default everywhere. No module works in place, so an activation a
tap keeps is never overwritten by a later layer.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from nclayers.sequence import bert

Activation = Callable[[], nn.Module]

ACTIVATIONS: dict[str, Activation] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,  # PyTorch's default negative slope, 0.01
}


def _activation(arch: str, name: str) -> Activation:
    if name not in ACTIVATIONS:
        raise ValueError(f"{arch}: unknown activation {name!r}; known: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def _image_shape(arch: str, input_shape: Sequence[int]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ValueError(f"{arch} needs image inputs (C, H, W), got shape {tuple(input_shape)}")
    c, h, w = input_shape
    return c, h, w


def _check_min_size(arch: str, input_shape: Sequence[int], min_size: int, why: str,
                    fix: str) -> None:
    """A ValueError that names the architecture, the input size and the fix."""
    _, h, w = _image_shape(arch, input_shape)
    if min(h, w) < min_size:
        raise ValueError(f"{arch} needs inputs of at least {min_size}x{min_size} pixels {why}, "
                         f"got {h}x{w}: {fix}")


class GlobalAvgPool(nn.Module):
    """(N, C, H, W) → (N, C): the mean over space. A module of its own, not a reshape in
    ``forward``, so that the flattened penultimate features can be tapped by name."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))


# --- fixed simplex-ETF layers (rangamani2023 §5.3) -----------------------------------------

def simplex_etf(k: int) -> Tensor:
    """The rank k−1 canonical simplex ETF sqrt(k/(k−1)) (I_k − 11ᵀ/k), a symmetric k×k matrix."""
    return math.sqrt(k / (k - 1)) * (torch.eye(k) - torch.full((k, k), 1.0 / k))


def lifted_etf(num_classes: int, dim: int) -> Tensor:
    """The C×d classifier weight W with Wᵀ = sqrt(C/(C−1)) P (I_C − 11ᵀ/C), P ∈ R^{d×C} the
    first C columns of I_d: a C×C simplex ETF on the first C features, zeros elsewhere."""
    return simplex_etf(num_classes) @ torch.eye(num_classes, dim)


def fix_linear(linear: nn.Linear, weight: Tensor) -> None:
    """Set ``linear`` to ``weight`` with a zero bias, and freeze both (``requires_grad=False``).

    Frozen parameters stay in ``parameters()`` and the state dict (so checkpoints and NC3 see
    them), but never get a ``.grad``; ``torch.optim.SGD`` skips parameters whose grad is None,
    weight decay and momentum included, so they never move. An optimizer may still be given
    only ``[p for p in model.parameters() if p.requires_grad]``.
    """
    with torch.no_grad():
        linear.weight.copy_(weight)
        if linear.bias is not None:
            linear.bias.zero_()
    linear.requires_grad_(False)


def _check_etf_layers(arch: str, etf_layers: int, most: int, why: str) -> None:
    if not 0 <= etf_layers <= most:
        raise ValueError(f"{arch}: etf_layers must be between 0 and {most} ({why}), "
                         f"got {etf_layers}")


def _fix_classifier(arch: str, classifier: nn.Linear) -> None:
    num_classes, dim = classifier.out_features, classifier.in_features
    if dim < num_classes:
        raise ValueError(f"{arch}: a fixed ETF classifier needs at least as many features as "
                         f"classes, got {dim} < {num_classes}; widen the network")
    fix_linear(classifier, lifted_etf(num_classes, dim))


# --- MLP-d-W ---------------------------------------------------------------------------------

class MLP(nn.Sequential):
    """MLP-d-W (galanti2022, rangamani2023, parker2023's MLP6): ``depth`` hidden blocks
    Linear → (BatchNorm) → activation of ``width`` units, then a linear classifier.

    Tapped: the input and every hidden block, ``layer1`` … ``layer{depth}``.

    ``etf_layers = k`` fixes the top k linear layers to canonical simplex ETFs
    (rangamani2023 §5.3): the classifier (k ≥ 1) to the lifted rank C−1 ETF, the top k−1
    hidden W×W layers to the rank W−1 ETF. ``layer1`` maps the input, not W → W, so at most
    ``depth`` layers can be fixed. Fixed layers have zero, fixed biases. BatchNorm in a fixed
    block stays trainable: §5.3 fixes the layers' weight matrices W_ℓ (its layer maps are
    σ(W_ℓ z), its ETFs are formulas for W_ℓ); BN's per-unit scale and shift are not part of
    W_ℓ, and the paper's MLP keeps BN in every hidden layer.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, depth: int = 6,
                 width: int = 256, batchnorm: bool = True, activation: str = "relu",
                 etf_layers: int = 0) -> None:
        act = _activation("mlp", activation)
        _check_etf_layers("mlp", etf_layers, depth,
                          f"the classifier and the W x W layers layer2 … layer{depth}")
        super().__init__()
        self.flatten = nn.Flatten()
        fan_in = math.prod(input_shape)
        hidden = [f"layer{i + 1}" for i in range(depth)]
        for name in hidden:
            # No bias under BatchNorm: BN's shift makes it redundant.
            layers: list[nn.Module] = [nn.Linear(fan_in, width, bias=not batchnorm)]
            if batchnorm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(act())
            self.add_module(name, nn.Sequential(*layers))
            fan_in = width
        self.classifier = nn.Linear(fan_in, num_classes)
        self.tapped_layers = ["input", *hidden]
        if etf_layers:
            _fix_classifier("mlp", self.classifier)
        for name in hidden[depth - etf_layers + 1:]:
            fix_linear(getattr(self, name)[0], simplex_etf(width))


# --- ConvNet-d-W -----------------------------------------------------------------------------

def _conv_block(c_in: int, c_out: int, kernel: int, stride: int, padding: int,
                batchnorm: bool, act: Activation | None, bias: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=bias)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(c_out))
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class ConvNet(nn.Sequential):
    """ConvNet-d-W of galanti2022 §4 (also rangamani2023 App. A, lindegaard2023 §3.2).

    ``stem``: a 2×2 convolution with stride 2 → BatchNorm → a second such convolution →
    BatchNorm → activation (no activation between the two: "all but the first downsampling
    use a ReLU"), so the image shrinks 4×; then ``depth`` blocks ``layer1`` … ``layer{depth}``
    of 3×3 convolution (stride 1, padding 1) → BatchNorm → activation, all ``width``
    channels; then a linear classifier. The papers only say "the last layer is linear" and
    mention no pooling, so the classifier reads the flattened last block (W·⌊H/4⌋·⌊W/4⌋
    features), which keeps ``layer{depth}`` the penultimate layer for NC.

    Tapped: the input, ``stem``, and ``layer1`` … ``layer{depth}`` (layer i = the paper's i-th
    hidden layer, at index i + 1). ``etf_layers`` is 0 or 1: only the classifier is a linear
    layer that an ETF can replace (see :class:`MLP`).
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, depth: int = 10,
                 width: int = 128, batchnorm: bool = True, activation: str = "relu",
                 etf_layers: int = 0) -> None:
        act = _activation("convnet", activation)
        _check_min_size("convnet", input_shape, 4, "(two stride-2 convolutions)",
                        "use larger images or set resize on the dataset")
        channels, h, w = _image_shape("convnet", input_shape)
        _check_etf_layers("convnet", etf_layers, 1, "only the classifier can be fixed")
        super().__init__()
        bias = not batchnorm  # BN's shift makes a conv bias redundant
        self.stem = nn.Sequential(
            *_conv_block(channels, width, 2, 2, 0, batchnorm, None, bias),
            *_conv_block(width, width, 2, 2, 0, batchnorm, act, bias))
        hidden = [f"layer{i + 1}" for i in range(depth)]
        for name in hidden:
            self.add_module(name, _conv_block(width, width, 3, 1, 1, batchnorm, act, bias))
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(width * (h // 4) * (w // 4), num_classes)
        self.tapped_layers = ["input", "stem", *hidden]
        if etf_layers:
            _fix_classifier("convnet", self.classifier)


# --- VGG11 -----------------------------------------------------------------------------------

VGG11_CONFIG: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M",
                                       512, 512, "M")


class VGG11(nn.Sequential):
    """VGG11 (configuration A of Simonyan & Zisserman) for small images, as in parker2023.

    ``conv1`` … ``conv8``: 3×3 convolution (padding 1, with bias, as torchvision's
    ``vgg11_bn`` so that ``features`` match it parameter for parameter) → BatchNorm →
    activation; ``pool1`` … ``pool5``: 2×2 max-pools, so inputs need ≥ 32 px. ``width``
    scales the channels (64 · (1, 2, 4, 8)); 64 is the standard net.

    Head: global average pooling → one ``nn.Linear(8·width, C)``. parker2023 does not give its
    head. ImageNet's 4096-4096 head with dropout was sized for 7×7×512 features at 224 px; at
    32 px the features are 1×1×512 and the CIFAR VGGs use a single linear layer. That makes
    the 512-d pooled features the penultimate layer, read by a linear classifier, as NC
    assumes, and adds no dropout noise to the features. The average pool is the identity at
    32 px and keeps the head 512-wide for larger inputs (STL10's 96 px leave 3×3).

    Tapped: the input, each ``conv{i}`` after its activation (before any pool: parker2023
    takes "post-activations after each convolutional layer"), then ``avgpool``, the flattened
    penultimate features.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int = 64,
                 batchnorm: bool = True, activation: str = "relu") -> None:
        act = _activation("vgg11", activation)
        _check_min_size("vgg11", input_shape, 32, "(five 2x2 max-pools)",
                        "set resize: 32 on the dataset")
        c_in, _, _ = _image_shape("vgg11", input_shape)
        super().__init__()
        convs, pools = 0, 0
        for v in VGG11_CONFIG:
            if v == "M":
                pools += 1
                self.add_module(f"pool{pools}", nn.MaxPool2d(2, 2))
            else:
                convs += 1
                c_out = int(v) // 64 * width
                self.add_module(f"conv{convs}",
                                _conv_block(c_in, c_out, 3, 1, 1, batchnorm, act, bias=True))
                c_in = c_out
        self.avgpool = GlobalAvgPool()
        self.classifier = nn.Linear(c_in, num_classes)
        self.tapped_layers = ["input", *(f"conv{i + 1}" for i in range(convs)), "avgpool"]


# --- ResNets ---------------------------------------------------------------------------------

def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module:
    """Identity, or a strided 1×1 convolution + BN where the shape changes (torchvision's)."""
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    """act(BN(conv3×3(act(BN(conv3×3(x))))) + shortcut(x)), for ResNet18/34."""

    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int, act: Activation) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = act()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _shortcut(c_in, planes, stride)
        self.act2 = act()

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        return self.act2(self.bn2(self.conv2(out)) + self.downsample(x))


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (carries the stride, as torchvision's "v1.5") → 1×1 expand by 4,
    each with BN, activations between, the shortcut added before the last; for ResNet50."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int, act: Activation) -> None:
        super().__init__()
        c_out = planes * self.expansion
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = act()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = act()
        self.conv3 = nn.Conv2d(planes, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.downsample = _shortcut(c_in, c_out, stride)
        self.act3 = act()

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        return self.act3(self.bn3(self.conv3(out)) + self.downsample(x))


class ResNet(nn.Module):
    """A ResNet for small images (the common CIFAR variant): torchvision's ResNet with the
    7×7 stride-2 stem and its max-pool replaced by one 3×3 stride-1 convolution, so a 32 px
    image reaches the last stage at 4×4 rather than 1×1. Any input size works (the stages
    stride by 2 with padding, the pool is global), so no minimum size is enforced.

    ``stem`` (conv → BN → activation), stages ``layer1`` … ``layer4`` of ``blocks`` residual
    blocks with ``width`` · (1, 2, 4, 8) planes (64: the standard nets), ``avgpool`` (global
    average, flattened), ``classifier``. ``stem="imagenet"`` keeps torchvision's own stem
    instead (7×7 stride-2 convolution → BN → activation → 3×3 stride-2 max-pool), for
    STL10-sized inputs and the ResNets with max-pool of lindegaard2023.

    Tapped (``taps="blocks"``): the input, ``stem``, every residual block's output
    (``layer1.0``, ``layer1.1``, …, ``layer4.{last}``), and ``avgpool``, the penultimate
    features; ``taps="stages"``: the input, ``layer1`` … ``layer4`` (each stage's output, as
    benshaul2022 and galanti2022 measure), ``avgpool`` and ``classifier`` (the logits, "FC");
    ``taps="convs"``: the post-activation after every convolution, as parker2023 and
    rangamani2023 measure: the stem, inside each block after each convolution but the last
    (``layer1.0.act1``; a bottleneck also ``.act2``), each block's output (its last
    convolution, added to the shortcut, then activated), then ``avgpool`` and ``classifier``.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int,
                 block: type[BasicBlock | Bottleneck], blocks: Sequence[int], arch: str,
                 width: int = 64, activation: str = "relu", stem: str = "cifar",
                 taps: str = "blocks") -> None:
        act = _activation(arch, activation)
        channels, _, _ = _image_shape(arch, input_shape)
        super().__init__()
        if stem == "cifar":
            self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, 1, 1, bias=False),
                                      nn.BatchNorm2d(width), act())
        elif stem == "imagenet":
            self.stem = nn.Sequential(nn.Conv2d(channels, width, 7, 2, 3, bias=False),
                                      nn.BatchNorm2d(width), act(), nn.MaxPool2d(3, 2, 1))
        else:
            raise ValueError(f"{arch}: stem must be 'cifar' (3x3, no max-pool) or 'imagenet' "
                             f"(7x7 stride 2 and max-pool), got {stem!r}")
        c_in = width
        for i, count in enumerate(blocks):
            planes = width * 2**i
            stage = []
            for j in range(count):
                stride = 2 if i > 0 and j == 0 else 1  # halve the size entering stages 2-4
                stage.append(block(c_in, planes, stride, act))
                c_in = planes * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = GlobalAvgPool()
        self.classifier = nn.Linear(c_in, num_classes)
        self.stages = [f"layer{i + 1}" for i in range(len(blocks))]
        residual_blocks = [f"{stage}.{j}" for stage, count in zip(self.stages, blocks, strict=True)
                           for j in range(count)]
        if taps == "blocks":
            self.tapped_layers = ["input", "stem", *residual_blocks, "avgpool"]
        elif taps == "stages":
            self.tapped_layers = ["input", *self.stages, "avgpool", "classifier"]
        elif taps == "convs":
            inner = [f"act{k}" for k in range(1, 2 if block is BasicBlock else 3)]
            convs = [name for b in residual_blocks for name in (*(f"{b}.{a}" for a in inner), b)]
            self.tapped_layers = ["input", "stem", *convs, "avgpool", "classifier"]
        else:
            raise ValueError(f"{arch}: taps must be 'blocks' (every residual block), 'stages' "
                             f"(layer1..4, avgpool, classifier) or 'convs' (after every "
                             f"convolution), got {taps!r}")

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = getattr(self, stage)(x)
        return self.classifier(self.avgpool(x))


# Builders with explicit options: the config checks read them from the signature.
def resnet18(input_shape: tuple[int, ...], num_classes: int, width: int = 64,
             activation: str = "relu", stem: str = "cifar", taps: str = "blocks") -> ResNet:
    return ResNet(input_shape, num_classes, BasicBlock, (2, 2, 2, 2), "resnet18", width,
                  activation, stem, taps)


def resnet34(input_shape: tuple[int, ...], num_classes: int, width: int = 64,
             activation: str = "relu", stem: str = "cifar", taps: str = "blocks") -> ResNet:
    return ResNet(input_shape, num_classes, BasicBlock, (3, 4, 6, 3), "resnet34", width,
                  activation, stem, taps)


def resnet50(input_shape: tuple[int, ...], num_classes: int, width: int = 64,
             activation: str = "relu", stem: str = "cifar", taps: str = "blocks") -> ResNet:
    return ResNet(input_shape, num_classes, Bottleneck, (3, 4, 6, 3), "resnet50", width,
                  activation, stem, taps)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "convnet": ConvNet,
    "vgg11": VGG11,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "bert": bert,  # a pretrained Hugging Face BERT on token ids (nclayers.sequence)
}


def arch_options(name: str) -> dict:
    """The options architecture ``name`` takes (its builder's parameters after the input shape
    and the number of classes), with their defaults (None where it has none)."""
    params = list(inspect.signature(ARCHITECTURES[name]).parameters.values())[2:]
    return {p.name: None if p.default is inspect.Parameter.empty else p.default for p in params}


def build(name: str, input_shape: tuple[int, ...], num_classes: int, **options) -> nn.Module:
    if name not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name](input_shape, num_classes, **options)
