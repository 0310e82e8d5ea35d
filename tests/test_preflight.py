"""The checks made before any job runs, in-process (tests/faults/ runs them through Snakemake)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_config
from test_data import write_idx

from nclayers import data
from nclayers.experiment import ConfigError
from nclayers.preflight import DIGITS_COUNTS, check_config, describe


def test_digits_counts_are_the_loaders():
    s = data.load("digits")
    assert tuple(np.bincount(s.y_train.numpy())) == DIGITS_COUNTS[0]
    assert tuple(np.bincount(s.y_test.numpy())) == DIGITS_COUNTS[1]


def test_describe_applies_subsets_and_resize(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    for prefix, n in (("train", 30), ("t10k", 20)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", np.zeros((n, 28, 28), np.uint8))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10)
    shape = describe("m", {"name": "mnist", "resize": 32}, str(tmp_path))
    assert (shape.input_shape, shape.num_classes) == ((1, 32, 32), 10)
    assert shape.train_counts == (3,) * 10 and shape.test_counts == (2,) * 10
    assert describe("m", {"name": "mnist", "per_class": 2}, str(tmp_path)).train_counts == \
        (2,) * 10
    with pytest.raises(ConfigError, match="datasets.m.per_class.*at most 3"):
        describe("m", {"name": "mnist", "per_class": 4}, str(tmp_path))
    blobs = describe("b", {"name": "synthetic", "num_classes": 3, "n_train": 30}, None)
    assert blobs.input_shape == (32,) and blobs.train_counts == (10, 10, 10)
    cifar = describe("c", {"name": "cifar100"}, str(tmp_path))  # counts read by the job
    assert cifar.train_counts is None and cifar.input_shape == (3, 32, 32)


def test_the_default_and_tiny_experiments_pass():
    check_config(tiny_config())


@pytest.mark.parametrize(("arch", "match"), [
    ({"name": "mlp", "depth": 2, "etf_layers": 3}, "etf_layers"),
    ({"name": "convnet", "depth": 3, "width": 8}, r"input shape \(32,\)"),
    ({"name": "resnet18", "width": 8}, r"input shape \(32,\)"),
])
def test_architectures_that_cannot_take_the_data(arch, match):
    config = tiny_config(datasets={"blobs": {"name": "synthetic"}},
                         architectures={"net": arch})
    with pytest.raises(ConfigError, match=match):
        check_config(config)


def test_cuda_is_checked_locally_only():
    import torch

    config = tiny_config(device="cuda")
    check_config(config, local=False)  # a cluster node checks for itself
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            check_config(config)


def test_features_runs_must_name_runs_of_the_experiment():
    config = tiny_config()
    config["features"]["runs"] = ["digits-mlp6-s0"]
    check_config(config)
    config["features"]["runs"] = ["digits-mlp6-s7"]
    with pytest.raises(ConfigError, match="features.runs.*digits-mlp6-s7.*digits-mlp6-s0"):
        check_config(config)


def test_svsl_gamma_names_a_layer():
    config = tiny_config()
    config["train"].update(loss="svsl", svsl_gamma="layer2")
    check_config(config)
    config["train"]["svsl_gamma"] = "avgpool"
    with pytest.raises(ConfigError, match="train.svsl_gamma.*layer1, layer2, layer3"):
        check_config(config)
