"""The architectures registry: shapes, tapped layers, parameter counts against references,
activations, fixed simplex-ETF layers, input-size errors, and a tiny training step each."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from nclayers import data, models
from nclayers.taps import tap
from nclayers.train import Recipe, fit

# Narrow versions of every architecture, and an input each can take (VGG needs >= 32 px).
SMALL = {
    "mlp": dict(depth=3, width=16),
    "convnet": dict(depth=3, width=8),
    "vgg11": dict(width=8),
    "resnet18": dict(width=8),
    "resnet34": dict(width=4),
    "resnet50": dict(width=4),
}
SHAPES = {
    "mlp": [(1, 8, 8), (1, 28, 28), (3, 32, 32)],
    "convnet": [(1, 8, 8), (1, 28, 28), (3, 96, 96)],
    "vgg11": [(3, 32, 32), (1, 32, 32), (3, 96, 96)],
    "resnet18": [(3, 32, 32), (1, 28, 28), (1, 8, 8)],
    "resnet34": [(3, 32, 32), (1, 28, 28)],
    "resnet50": [(3, 32, 32), (1, 28, 28)],
}
ACTIVATION_TYPES = {"relu": nn.ReLU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def small(name: str, input_shape, num_classes: int = 10, **options) -> nn.Module:
    torch.manual_seed(0)
    return models.build(name, input_shape, num_classes, **{**SMALL[name], **options})


def test_registry_options_are_explicit_keywords_with_defaults():
    """The config checks read each builder's options from its signature (after the input
    shape and the class count), so they must be keyword parameters with defaults."""
    expected = {
        "mlp": ["depth", "width", "batchnorm", "activation", "etf_layers"],
        "convnet": ["depth", "width", "batchnorm", "activation", "etf_layers"],
        "vgg11": ["width", "batchnorm", "activation"],
        "resnet18": ["width", "activation", "stem", "taps"],
        "resnet34": ["width", "activation", "stem", "taps"],
        "resnet50": ["width", "activation", "stem", "taps"],
        "bert": ["pretrained", "reduce"],  # tests/test_glue.py builds it
    }
    assert list(models.ARCHITECTURES) == list(expected)
    for name, builder in models.ARCHITECTURES.items():
        params = list(inspect.signature(builder).parameters.values())[2:]
        assert [p.name for p in params] == expected[name]
        assert all(p.default is not inspect.Parameter.empty for p in params), name


@pytest.mark.parametrize("name", list(SMALL))
def test_builds_for_several_inputs_and_class_counts(name):
    for input_shape, num_classes in zip(SHAPES[name], (10, 3, 100), strict=False):
        model = small(name, input_shape, num_classes).eval()
        out = model(torch.randn(2, *input_shape))
        assert out.shape == (2, num_classes)
        assert model.classifier is [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        assert model.classifier.out_features == num_classes


@pytest.mark.parametrize("name", list(SMALL))
def test_tapped_layers_fire_in_depth_order_and_end_at_the_classifier_input(name):
    input_shape = SHAPES[name][0]
    model = small(name, input_shape).eval()
    assert model.tapped_layers[0] == "input"
    with tap(model, model.tapped_layers) as acts:
        out = model(torch.randn(3, *input_shape))
    # The dict fills as the hooks fire, so its order is the order of the forward pass.
    assert list(acts) == model.tapped_layers
    assert all(a.shape[0] == 3 for a in acts.values())
    # The last tapped layer is what the classifier reads (flattened for the conv nets).
    penultimate = acts[model.tapped_layers[-1]].flatten(1)
    torch.testing.assert_close(model.classifier(penultimate), out)


def test_tapped_layer_names_per_architecture():
    assert small("mlp", (1, 8, 8)).tapped_layers == ["input", "layer1", "layer2", "layer3"]
    assert small("convnet", (1, 8, 8)).tapped_layers == ["input", "stem", "layer1", "layer2",
                                                         "layer3"]
    assert small("vgg11", (3, 32, 32)).tapped_layers == [
        "input", *(f"conv{i}" for i in range(1, 9)), "avgpool"]
    assert small("resnet18", (3, 32, 32)).tapped_layers == [
        "input", "stem", "layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1",
        "layer4.0", "layer4.1", "avgpool"]
    for name, blocks in (("resnet34", (3, 4, 6, 3)), ("resnet50", (3, 4, 6, 3))):
        layers = small(name, (3, 32, 32)).tapped_layers
        assert len(layers) == 2 + sum(blocks) + 1
        assert layers[2:5] == ["layer1.0", "layer1.1", "layer1.2"] and layers[-2] == "layer4.2"


def test_resnet_tapped_blocks_chain_without_in_place_changes():
    """Each tapped block output is exactly the next block's input: nothing later in the
    forward pass overwrites a kept activation."""
    model = small("resnet18", (3, 32, 32)).eval()
    with torch.no_grad(), tap(model, model.tapped_layers) as acts:
        model(torch.randn(2, 3, 32, 32))
        torch.testing.assert_close(model.layer1[0](acts["stem"]), acts["layer1.0"])
        torch.testing.assert_close(model.layer2[0](acts["layer1.1"]), acts["layer2.0"])
        torch.testing.assert_close(model.layer4[1](acts["layer4.0"]), acts["layer4.1"])


def test_vgg_taps_conv_outputs_before_pooling():
    model = small("vgg11", (3, 32, 32)).eval()
    with tap(model, model.tapped_layers) as acts:
        model(torch.randn(2, 3, 32, 32))
    sizes = [acts[f"conv{i}"].shape[1:] for i in range(1, 9)]
    assert sizes == [(8, 32, 32), (16, 16, 16), (32, 8, 8), (32, 8, 8), (64, 4, 4), (64, 4, 4),
                     (64, 2, 2), (64, 2, 2)]
    assert acts["avgpool"].shape == (2, 64)


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_resnet_parameters_match_torchvision_with_the_small_image_stem(name):
    for channels, num_classes in ((3, 10), (1, 100)):
        ref = getattr(torchvision.models, name)(num_classes=num_classes)
        ref.conv1 = nn.Conv2d(channels, 64, 3, 1, 1, bias=False)
        ref.maxpool = nn.Identity()
        model = models.build(name, (channels, 32, 32), num_classes)
        assert n_params(model) == n_params(ref)
        shapes = sorted(tuple(p.shape) for p in model.parameters())
        assert shapes == sorted(tuple(p.shape) for p in ref.parameters())
    assert model.eval()(torch.randn(1, channels, 32, 32)).shape == (1, num_classes)


def test_vgg11_parameters_match_torchvision_features_plus_a_linear_head():
    for batchnorm, reference in ((True, torchvision.models.vgg11_bn),
                                 (False, torchvision.models.vgg11)):
        for channels, num_classes in ((3, 10), (1, 100)):
            ref = reference().features
            ref[0] = nn.Conv2d(channels, 64, 3, padding=1)
            model = models.build("vgg11", (channels, 32, 32), num_classes, batchnorm=batchnorm)
            assert n_params(model) == n_params(ref) + 512 * num_classes + num_classes


def test_mlp_parameters_by_hand():
    d, w, c = 4, 32, 7
    for batchnorm in (True, False):
        model = models.build("mlp", (3, 8, 8), c, depth=d, width=w, batchnorm=batchnorm)
        # BN: no linear bias, 2 W per BN layer; without BN: a bias per linear layer.
        per_layer_extra = 2 * w if batchnorm else w
        expected = 192 * w + (d - 1) * w * w + d * per_layer_extra + w * c + c
        assert n_params(model) == expected


def test_convnet_parameters_by_hand():
    d, w, c = 3, 8, 10
    for (channels, h, wd), batchnorm in (((1, 28, 28), True), ((3, 32, 32), False),
                                         ((1, 8, 8), True)):
        model = models.build("convnet", (channels, h, wd), c, depth=d, width=w,
                             batchnorm=batchnorm)
        extra = 2 * w if batchnorm else w  # BN's scale and shift, or a conv bias
        stem = channels * w * 4 + w * w * 4 + 2 * extra
        blocks = d * (w * w * 9 + extra)
        head = w * (h // 4) * (wd // 4) * c + c
        assert n_params(model) == stem + blocks + head


@pytest.mark.parametrize("name", list(SMALL))
@pytest.mark.parametrize("activation", list(ACTIVATION_TYPES))
def test_activation_option_is_used_throughout(name, activation):
    model = small(name, SHAPES[name][0], activation=activation)
    used = {type(m) for m in model.modules() if type(m) in ACTIVATION_TYPES.values()}
    assert used == {ACTIVATION_TYPES[activation]}


def test_unknown_activation_names_the_known_ones():
    with pytest.raises(ValueError, match="resnet18: unknown activation 'gelu'.*leaky_relu"):
        models.build("resnet18", (3, 32, 32), 10, activation="gelu")


def test_too_small_inputs_say_which_architecture_size_and_fix():
    with pytest.raises(ValueError, match=r"vgg11 needs inputs of at least 32x32 pixels .*"
                                         r"got 28x28: set resize: 32 on the dataset"):
        models.build("vgg11", (1, 28, 28), 10)
    with pytest.raises(ValueError, match=r"convnet needs inputs of at least 4x4 .*got 3x3"):
        models.build("convnet", (1, 3, 3), 10)
    with pytest.raises(ValueError, match=r"vgg11 needs image inputs \(C, H, W\)"):
        models.build("vgg11", (64,), 10)


# --- fixed simplex-ETF layers ----------------------------------------------------------------

def etf_formula(k: int) -> np.ndarray:
    """sqrt(K/(K−1)) (I_K − 11ᵀ/K), written out independently of the library."""
    return math.sqrt(k / (k - 1)) * (np.eye(k) - np.ones((k, k)) / k)


def classifier_formula(c: int, d: int) -> np.ndarray:
    """W with Wᵀ = sqrt(C/(C−1)) P (I_C − 11ᵀ/C), P the first C columns of I_d."""
    p = np.eye(d)[:, :c]
    return (p @ etf_formula(c)).T


def test_etf_formulas_are_simplex_etfs():
    w = models.lifted_etf(10, 16).double().numpy()
    np.testing.assert_allclose(w, classifier_formula(10, 16), atol=1e-6)
    # The C rows are unit vectors at equal angles −1/(C−1): a simplex ETF.
    np.testing.assert_allclose(w @ w.T, 10 / 9 * (np.eye(10) - 1 / 10), atol=1e-6)
    h = models.simplex_etf(16).double().numpy()
    assert np.linalg.matrix_rank(h, tol=1e-5) == 15  # rank H − 1 (float32 entries)


@pytest.mark.parametrize("batchnorm", [True, False])
def test_mlp_etf_layers_are_fixed_and_stay_fixed_through_training(batchnorm):
    splits = data.load("digits")
    torch.manual_seed(0)
    model = models.build("mlp", splits.input_shape, 10, depth=3, width=16, batchnorm=batchnorm,
                         etf_layers=3)
    fixed = [model.layer2[0], model.layer3[0], model.classifier]
    np.testing.assert_allclose(model.classifier.weight.double().numpy(),
                               classifier_formula(10, 16), atol=1e-6)
    for layer in fixed[:2]:
        np.testing.assert_allclose(layer.weight.double().numpy(), etf_formula(16), atol=1e-6)
    fixed_params = [p for layer in fixed for p in layer.parameters()]
    assert all(not p.requires_grad for p in fixed_params)
    assert all(float(p.abs().max()) == 0 for layer in fixed if layer.bias is not None
               for p in [layer.bias])
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(trainable) == len(list(model.parameters())) - len(fixed_params)
    assert model.layer1[0].weight.requires_grad
    if batchnorm:  # BN in fixed blocks stays trainable
        assert model.layer3[1].weight.requires_grad
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    fit(model, splits, Recipe(epochs=2, batch_size=128, lr=0.01), seed=0, progress=False)
    for name, p in model.named_parameters():
        unchanged = torch.equal(p, before[name])
        assert unchanged == (not p.requires_grad), name


def test_mlp_etf_counts_from_the_classifier_down():
    model = models.build("mlp", (1, 8, 8), 10, depth=4, width=16, etf_layers=2)
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    assert frozen == ["layer4.0.weight", "classifier.weight", "classifier.bias"]
    assert all(p.requires_grad for p in models.build("mlp", (1, 8, 8), 10).parameters())


def test_convnet_can_fix_its_classifier():
    model = models.build("convnet", (1, 8, 8), 10, depth=2, width=8, etf_layers=1)
    np.testing.assert_allclose(model.classifier.weight.double().numpy(),
                               classifier_formula(10, 8 * 2 * 2), atol=1e-6)
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    assert frozen == ["classifier.weight", "classifier.bias"]


def test_etf_layers_out_of_range_say_what_is_allowed():
    with pytest.raises(ValueError, match="mlp: etf_layers must be between 0 and 3"):
        models.build("mlp", (1, 8, 8), 10, depth=3, etf_layers=4)
    with pytest.raises(ValueError, match="convnet: etf_layers must be between 0 and 1"):
        models.build("convnet", (1, 8, 8), 10, etf_layers=2)
    with pytest.raises(ValueError, match="at least as many features as classes, got 8 < 10"):
        models.build("mlp", (1, 8, 8), 10, width=8, etf_layers=1)


# --- every architecture trains at tiny scale -------------------------------------------------

@pytest.mark.parametrize("name", list(SMALL))
def test_each_architecture_takes_sgd_steps(name):
    input_shape = SHAPES[name][0]
    model = small(name, input_shape).train()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, *input_shape, generator=g), torch.arange(4) % 10
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01,
                                momentum=0.9, weight_decay=5e-4)
    before = model.classifier.weight.detach().clone()
    for _ in range(2):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        assert math.isfinite(loss.item())
    assert not torch.equal(model.classifier.weight, before)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_imagenet_stem_is_torchvisions(name):
    """stem: imagenet is torchvision's network as it is: the same parameter shapes, and the
    same feature-map sizes (96 px → 24 px after the stem, 3 px in the last stage)."""
    ref = getattr(torchvision.models, name)(num_classes=10)
    model = models.build(name, (3, 96, 96), 10, stem="imagenet")
    assert sorted(tuple(p.shape) for p in model.parameters()) == \
        sorted(tuple(p.shape) for p in ref.parameters())
    with tap(model.eval(), ["stem", "layer4"]) as acts:
        model(torch.randn(1, 3, 96, 96))
    assert acts["stem"].shape[-2:] == (24, 24) and acts["layer4"].shape[-2:] == (3, 3)
    with pytest.raises(ValueError, match="stem must be"):
        models.build(name, (3, 96, 96), 10, stem="tiny")


def test_resnet_stage_taps_are_the_papers_layers():
    """taps: stages gives Ben-Shaul & Dekel's Layer1-4, AvgPool, FC; measure reads them all."""
    from nclayers import measure

    model = small("resnet18", (3, 32, 32), 10, taps="stages")
    assert model.tapped_layers == ["input", "layer1", "layer2", "layer3", "layer4", "avgpool",
                                   "classifier"]
    torch.manual_seed(0)
    x, y = torch.randn(40, 3, 32, 32), torch.arange(40) % 10
    table = measure(model, [(x, y)], metrics=["nc1", "ncc_accuracy"])
    assert list(dict.fromkeys(table["layer"])) == model.tapped_layers
    with pytest.raises(ValueError, match="taps must be"):
        small("resnet18", (3, 32, 32), 10, taps="every")


@pytest.mark.parametrize(("name", "convs"), [("resnet18", 17), ("resnet50", 49)])
def test_resnet_conv_taps_follow_every_convolution(name, convs):
    """taps: convs (Parker et al., Rangamani et al.): the post-activation after each of the
    net's convolutions on the main path (ResNet18: 17, ResNet50: 49; the 1×1 shortcuts are
    not layers of their own), then AvgPool and FC; NC3 finds the weight reading each."""
    from nclayers import measure

    model = small(name, (3, 32, 32), 10, taps="convs")
    layers = model.tapped_layers
    assert layers[:2] == ["input", "stem"] and layers[-2:] == ["avgpool", "classifier"]
    assert len(layers) - 3 == convs
    assert layers[2:5] == (["layer1.0.act1", "layer1.0", "layer1.1.act1"] if name == "resnet18"
                           else ["layer1.0.act1", "layer1.0.act2", "layer1.0"])
    torch.manual_seed(0)
    x, y = torch.randn(20, 3, 32, 32), torch.arange(20) % 10
    table = measure(model, [(x, y)], metrics=["nc1", "nc3_pabs"])
    assert list(dict.fromkeys(table["layer"])) == layers
    pabs = table[table["metric"] == "nc3_pabs"]
    assert "layer1.0.act1" in set(pabs["layer"])  # read by the block's second convolution
