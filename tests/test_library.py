"""The library on its own: taps, measure() on any model, data, models, training, config."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_config
from torch import nn

from nclayers import data, experiment, models, runs
from nclayers.measurement import measure
from nclayers.metrics_dense import dense_metrics
from nclayers.taps import Rows, tap
from nclayers.train import Recipe, fit


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))


def blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 5, generator=g) + 2.0 * torch.eye(3, 5)[y]
    return x, y


def test_measure_matches_dense_reference_through_taps():
    """measure() on an arbitrary model equals the dense formulas on the same activations."""
    net = small_net()
    (xtr, ytr), (xte, yte) = blobs(90, 1), blobs(45, 2)
    layers = ["input", "1", net[3]]  # by name, and by module
    table = measure(net, data.Batches(xtr, ytr, 16), data.Batches(xte, yte, 7), layers=layers)
    assert list(table.columns) == ["layer", "layer_index", "split", "metric", "value"]
    assert list(table.drop_duplicates("layer")["layer"]) == ["input", "1", "3"]
    with torch.no_grad():
        feats = {"input": (xtr, xte), "1": (net[:2](xtr), net[:2](xte)),
                 "3": (net[:4](xtr), net[:4](xte))}
        pred_tr, pred_te = net(xtr).argmax(1).numpy(), net(xte).argmax(1).numpy()
    for layer, (htr, hte) in feats.items():
        for split, h, y, pred in (("train", htr, ytr, pred_tr), ("test", hte, yte, pred_te)):
            ref = dense_metrics(htr.numpy(), ytr.numpy(), h.numpy(), y.numpy(), pred, 3)
            got = table[(table["layer"] == layer) & (table["split"] == split)]
            for metric, value in zip(got["metric"], got["value"], strict=True):
                if metric in ("nc3_pabs", "nc3_duality"):  # tested in test_nc3.py
                    continue
                # p ≤ 16 here, inside the stable rank's exact regime (SKETCH_COLUMNS = 24)
                assert math.isclose(value, ref[metric], rel_tol=1e-6, abs_tol=1e-9), (
                    layer, split, metric)


def test_layer_index_is_the_depth_with_the_input_at_zero_tapped_or_not():
    net = small_net()
    x, y = blobs(30, 0)
    with_input = measure(net, [(x, y)], layers=["input", "1", "3"])
    without = measure(net, [(x, y)], layers=["1", "3"])
    depth = {"input": [0], "1": [1], "3": [2]}
    for table in (with_input, without):
        found = table.groupby("layer")["layer_index"].unique().map(list).to_dict()
        assert found == {layer: depth[layer] for layer in found}
    assert set(without["layer"]) == {"1", "3"}
    with pytest.raises(ValueError, match="'input' must come first"):
        measure(net, [(x, y)], layers=["1", "input"])


def test_weight_spectra_reads_the_consumers_and_refuses_none():
    from nclayers import find_consumers, weight_spectra

    net = small_net()
    x, _ = blobs(4, 0)
    spectra = weight_spectra(net, find_consumers(net, ["1", "3"], x), ["1", "3"])
    assert spectra.groupby("layer")["k"].count().to_dict() == {"1": 8, "3": 3}  # 8x16, 3x8
    assert spectra.groupby("layer")["layer_index"].first().to_dict() == {"1": 1, "3": 2}
    assert np.allclose(spectra.groupby("layer")["share"].sum(), 1.0)
    with pytest.raises(TypeError, match="consumers must map layer names to modules, not a list"):
        weight_spectra(net, [(x, None)], ["1", "3"])  # batches where the consumers go
    with pytest.raises(ValueError, match=r"no consumer for any of the layers \['1', '3'\]"):
        weight_spectra(net, {"5": net[4]}, ["1", "3"])


def test_measure_restores_training_mode_and_needs_layers():
    net = small_net().train()
    x, y = blobs(30, 0)
    measure(net, [(x, y)], layers=["1"])
    assert net.training
    with pytest.raises(ValueError, match="tapped_layers"):
        measure(net, [(x, y)])


def test_tap_names_unknown_layer_and_lists_known_ones():
    net = small_net()
    with pytest.raises(ValueError, match=r"no layer 'fc9'.*0, 1, 2"), tap(net, ["fc9"]):
        pass


def test_tap_keeps_only_latest_batch_and_removes_hooks():
    net = small_net()
    with tap(net, ["0"]) as acts:
        net(torch.zeros(2, 5))
        net(torch.ones(4, 5))
        assert acts["0"].shape == (4, 16)
    assert not net[0]._forward_hooks


def test_tap_keeps_the_chosen_rows_of_each_batch():
    net = small_net()
    rows = Rows()
    x = torch.randn(6, 5)
    with tap(net, ["input", "0"], rows=rows) as acts:
        rows.index = torch.tensor([1, 4])
        out = net(x)
        assert len(out) == 6  # the model's output is whole
        assert torch.equal(acts["input"], x[[1, 4]])
        assert torch.equal(acts["0"], net[0](x)[[1, 4]].detach())
        rows.index = None
        net(x)
        assert acts["0"].shape == (6, 16)


def test_digits_split_is_fixed_stratified_and_standardised():
    a, b = data.load("digits"), data.load("digits")
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert (len(a.y_train), len(a.y_test)) == (1257, 540)
    assert a.input_shape == (1, 8, 8)
    counts = torch.bincount(a.y_test, minlength=10)
    assert counts.min() >= 50 and counts.max() <= 56
    assert abs(float(a.x_train.mean())) < 1e-5


def test_unknown_registry_names_say_what_exists():
    with pytest.raises(KeyError, match="known: digits"):
        data.load("mnist_typo")
    with pytest.raises(KeyError, match="known: mlp"):
        models.build("resnet1000", (1, 8, 8), 10)


def test_mlp_taps_every_hidden_block_in_depth_order():
    net = models.build("mlp", (1, 8, 8), 10, depth=3, width=16, batchnorm=False)
    assert net.tapped_layers == ["input", "layer1", "layer2", "layer3"]
    assert sum(p.numel() for p in net.parameters()) == 64 * 16 + 16 + 2 * (16 * 16 + 16) + 170


def train_tiny(seed: int) -> tuple[dict, list[dict]]:
    spec = experiment.expand_runs(tiny_config(seeds=[seed]))[f"digits-mlp6-s{seed}"]
    splits = runs.load_data(spec)
    model = runs.build_model(spec, splits)
    log = fit(model, splits, runs.recipe(spec), seed=seed, progress=False)
    return model.state_dict(), log


def test_training_is_deterministic_on_cpu():
    (w1, log1), (w2, log2) = train_tiny(0), train_tiny(0)
    assert pd.DataFrame(log1).equals(pd.DataFrame(log2))  # NaN-aware: epoch 0 has no train loss
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    w3, _ = train_tiny(1)
    assert not torch.equal(w1["classifier.weight"], w3["classifier.weight"])


def test_training_learns_digits():
    splits = data.load("digits")
    torch.manual_seed(0)
    model = models.build("mlp", splits.input_shape, 10, depth=2, width=64)
    log = fit(model, splits, Recipe(epochs=15, batch_size=64, lr=0.01), seed=0, progress=False)
    assert log[0]["epoch"] == 0 and log[-1]["epoch"] == 15
    assert log[0]["test_acc"] < 0.5 < 0.9 < log[-1]["test_acc"]


def test_divergence_is_detected_and_stops_training():
    splits = data.load("digits")
    torch.manual_seed(0)
    model = models.build("mlp", splits.input_shape, 10, depth=2, width=64, batchnorm=False)
    log = fit(model, splits, Recipe(epochs=50, batch_size=64, lr=1e3), seed=0, progress=False)
    assert log[-1]["diverged"] and len(log) < 51


def test_checkpoints_are_called_at_chosen_epochs():
    splits = data.load("digits")
    torch.manual_seed(0)
    model = models.build("mlp", splits.input_shape, 10, depth=1, width=8)
    seen = []
    fit(model, splits, Recipe(epochs=4, batch_size=256, lr=0.01), seed=0, checkpoints=[0, 2, 4],
        on_checkpoint=lambda epoch, m: seen.append(epoch), progress=False)
    assert seen == [0, 2, 4]


def test_expand_runs_one_per_dataset_arch_seed_with_first_and_last_checkpoint():
    config = tiny_config(seeds=[3, 7])
    config["train"]["checkpoints"] = [2]
    specs = experiment.expand_runs(config)
    assert list(specs) == ["digits-mlp6-s3", "digits-mlp6-s7"]
    assert specs["digits-mlp6-s7"]["train"]["checkpoints"] == [0, 2, 3]
    # batchnorm: true and activation: relu are the defaults, left out of the spec
    assert specs["digits-mlp6-s7"]["arch"] == {"label": "mlp6", "name": "mlp", "depth": 3,
                                               "width": 32}


@pytest.mark.parametrize(("key", "entry", "message"), [
    ("datasets", {"cifar": {}}, "config key 'datasets.cifar': unknown dataset 'cifar'; "
                                "allowed: digits"),
    ("architectures", {"m": {"name": "mlp", "heads": 4}},
     "config key 'architectures.m.heads': architecture 'mlp' has no option 'heads'"),
])
def test_check_names_messages_name_key_value_and_allowed(key, entry, message):
    config = tiny_config(**{key: entry})
    with pytest.raises(experiment.ConfigError) as error:
        experiment.check_names(config)
    assert message in str(error.value)


def test_numpy_reference_agrees_on_separated_clusters():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 10)
    h = rng.normal(size=(40, 6)) * 0.01 + 10 * np.eye(4, 6)[y]
    ref = dense_metrics(h, y, h, y, y, 4)
    assert ref["ncc_accuracy"] == 1.0 and ref["nc4_mismatch"] == 0.0
