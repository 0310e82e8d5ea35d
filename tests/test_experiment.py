"""The experiment model: groups, pairings, variant axes, run ids, selection over axes, and the
design columns of the tidy tables."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
from conftest import tiny_config

from nclayers import experiment
from nclayers.experiment import ConfigError
from nclayers.preflight import check_config
from nclayers.sweeps import run_records, select_best, with_design
from nclayers.vocabulary import by_model

BLOBS = {"name": "synthetic", "num_classes": 3, "n_train": 30, "n_test": 15, "dim": 8}


def two_groups(**more) -> dict:
    """Two groups: MSE on digits (lr selected over, depth compared) and CE on blobs (the lr
    grid kept whole, select: [])."""
    config = tiny_config(datasets={"digits": {}, "blobs": BLOBS},
                         architectures={"mlp": {"name": "mlp", "depth": [2, 3], "width": 8}})
    config["train"].update(lr=[0.01, 0.1])
    config["groups"] = {
        "mse": {"pairs": [["digits", "mlp"]], "train": {"epoch_metrics": {"every": 1}}},
        "ce": {"datasets": ["blobs"], "seeds": [0, 1], "select": [],
               "train": {"loss": "ce", "epochs": 4}},
        **more,
    }
    return config


def test_the_default_run_ids_and_specs_are_unchanged():
    """A config without groups is one group of every dataset × architecture: the run ids are
    today's, and the spec holds nothing of the group (so nothing reruns)."""
    specs = experiment.expand_runs(tiny_config(seeds=[0, 1]))
    assert list(specs) == ["digits-mlp6-s0", "digits-mlp6-s1"]
    spec = specs["digits-mlp6-s1"]
    assert set(spec) == {"run", "dataset", "arch", "seed", "train", "device"}
    # Options at their defaults (batchnorm: true, activation: relu) are left out.
    assert spec["arch"] == {"label": "mlp6", "name": "mlp", "depth": 3, "width": 32}
    assert (spec["train"]["lr"], spec["train"]["checkpoints"]) == (0.1, [0, 3])
    # Sections that are off are left out: a new option of them reruns no finished run.
    assert not {"epoch_metrics", "augment", "resume_every", "tag"} & set(spec["train"])


def test_groups_pair_cross_inherit_and_override():
    specs = experiment.expand_runs(two_groups())
    mse = [r for r in specs if r.startswith("mse-")]
    ce = [r for r in specs if r.startswith("ce-")]
    # mse: digits × mlp only, 2 depths × 2 lr × 1 seed; ce: blobs × mlp, 2 × 2 × 2 seeds.
    assert len(mse) == 4 and len(ce) == 8 and len(specs) == 12
    assert "mse-digits-mlp-d3-lr0.1-s0" in mse and "ce-blobs-mlp-d2-lr0.01-s1" in ce
    spec = specs["ce-blobs-mlp-d2-lr0.01-s1"]
    assert spec["train"]["loss"] == "ce" and spec["train"]["epochs"] == 4
    assert spec["train"]["checkpoints"] == [0, 3, 4]  # inherited [0, 3], and its last epoch
    assert spec["train"]["batch_size"] == 128  # inherited from the top level
    assert spec["arch"]["depth"] == 2 and spec["dataset"]["name"] == "synthetic"
    # A section a group sets is merged key by key over the top level's, defaults included.
    assert specs["mse-digits-mlp-d2-lr0.01-s0"]["train"]["epoch_metrics"] == {
        "every": 1, "log_points": 0, "per_class": None}
    assert "epoch_metrics" not in spec["train"]  # off: left out of the spec


def test_a_run_id_does_not_change_when_an_unrelated_group_is_added():
    before = experiment.expand_runs(two_groups())
    after = experiment.expand_runs(two_groups(
        svsl={"pairs": [["digits", "mlp"]], "train": {"loss": "svsl",
                                                      "svsl_alpha": [0.1, 0.01]}}))
    assert set(before) < set(after)
    assert all(after[run] == spec for run, spec in before.items())
    assert "svsl-digits-mlp-d2-lr0.01-alpha0.1-s0" in after


def test_any_list_is_an_axis_and_tags_are_short():
    config = tiny_config(datasets={"digits": {"label_noise": [0.0, 0.2]}},
                         architectures={"m": {"name": "mlp", "activation": ["relu", "tanh"],
                                              "batchnorm": [True, False], "depth": 2}})
    config["train"].update(loss=["mse", "ce"], momentum=[0.9], batch_size=[32, 64])
    runs = list(experiment.expand_runs(config))
    assert len(runs) == 2 * 2 * 2 * 2 * 2
    # dataset axes, then architecture axes, then train axes; a one-value list is a setting.
    assert runs[0] == "digits-m-noise0-relu-bn1-bs32-mse-s0"
    assert "digits-m-noise0.2-tanh-bn0-bs64-ce-s0" in runs


def test_design_gives_groups_and_axes_and_selection():
    design = experiment.run_design(two_groups())
    assert design["select"] == {"mse": ["lr", "weight_decay"], "ce": []}
    assert design["runs"]["ce-blobs-mlp-d3-lr0.1-s1"] == {
        "group": "ce", "axes": {"depth": 3, "lr": 0.1}}
    json.dumps(design)  # passed to the steps as JSON


def test_values_that_print_alike_are_refused():
    config = tiny_config()
    config["train"]["lr"] = [0.1, 0.10000001]
    with pytest.raises(ConfigError, match="names two different runs"):
        experiment.expand_runs(config)


@pytest.mark.parametrize(("change", "message"), [
    (lambda g: g["mse"].update(pairs=[["digits", "cnn"]]),
     "'groups.mse.pairs': no architecture 'cnn' in the config's architectures; its "
     "architectures: mlp"),
    (lambda g: g["ce"].update(datasets=["mnist"]),
     "'groups.ce.datasets': no dataset 'mnist'"),
    (lambda g: g["ce"].update(pairs=[["blobs", "mlp"]]),
     "'groups.ce': give pairs, or datasets and architectures"),
    (lambda g: g["ce"].update(select=["lrr"]),
     "'groups.ce.select': 'lrr' is not a setting that can be an axis"),
    (lambda g: g["ce"]["train"].update(milestones=[9]),
     "'groups.ce.train.milestones': epochs [9] lie beyond groups.ce.train.epochs = 4"),
    (lambda g: g["ce"]["train"].update(schedule="multistep"),
     "'train.milestones': schedule multistep needs milestones"),
    (lambda g: g["ce"]["train"].update(loss="svsl", svsl_gamma="layer9"),
     "'groups.ce.train.svsl_gamma' for architecture 'mlp'"),
])
def test_group_errors_name_the_key(change, message):
    config = two_groups()
    change(config["groups"])
    with pytest.raises(ConfigError) as error:
        check_config(config)
    assert message in str(error.value)


def test_the_two_group_config_passes_the_preflight():
    check_config(two_groups())


def records(design: dict, acc: dict[str, float], diverged: tuple[str, ...] = ()) -> pd.DataFrame:
    infos = []
    for run, entry in design["runs"].items():
        infos.append({"run": run, "dataset": {"label": run.split("-")[1]},
                      "arch": {"label": "mlp"}, "seed": int(run[-1]),
                      "train": {"lr": entry["axes"]["lr"], "weight_decay": 5e-4},
                      "diverged": run in diverged, "final_train_acc": 1.0,
                      "final_test_acc": acc.get(run, 0.5)})
    return run_records(infos, design)


def test_selection_is_over_the_selected_axes_per_compared_value():
    design = experiment.run_design(two_groups())
    table = select_best(records(design, {
        "mse-digits-mlp-d2-lr0.1-s0": 0.9, "mse-digits-mlp-d3-lr0.01-s0": 0.8,
        "mse-digits-mlp-d3-lr0.1-s0": 0.95}, diverged=("mse-digits-mlp-d3-lr0.1-s0",)),
        design)
    selected = set(table.loc[table["selected"], "run"])
    # mse: the best lr for each depth (depth is compared); the diverged run never, though best.
    assert {"mse-digits-mlp-d2-lr0.1-s0", "mse-digits-mlp-d3-lr0.01-s0"} <= selected
    assert "mse-digits-mlp-d3-lr0.1-s0" not in selected
    # ce: select: [] keeps every lr × depth setting (both seeds each).
    assert {r for r in selected if r.startswith("ce-")} == {
        r for r in design["runs"] if r.startswith("ce-")}
    assert len(selected) == 2 + 8
    assert list(table.columns[:7]) == ["run", "group", "dataset", "arch", "seed", "depth", "lr"]


def test_tidy_rows_carry_the_group_and_axis_values_and_models_are_told_apart():
    design = experiment.run_design(two_groups())
    rows = pd.DataFrame({"run": ["mse-digits-mlp-d2-lr0.01-s0", "ce-blobs-mlp-d3-lr0.1-s1"],
                         "dataset": ["digits", "blobs"], "arch": ["mlp", "mlp"],
                         "value": [1.0, 2.0]})
    table = with_design(rows, design)
    assert list(table.columns) == ["run", "dataset", "arch", "value", "group", "depth", "lr"]
    assert table["group"].tolist() == ["mse", "ce"] and table["depth"].tolist() == [2, 3]
    labels = [label for label, _ in by_model(table)]
    assert labels == ["digits / mlp / mse / depth=2 / lr=0.01",
                      "blobs / mlp / ce / depth=3 / lr=0.1"]
    # Without a design every run is the implicit group's, with no axis columns.
    assert with_design(rows, None)["group"].tolist() == ["main", "main"]


def test_the_config_is_not_changed_by_expanding_it():
    config = two_groups()
    before = copy.deepcopy(config)
    experiment.expand_runs(config)
    check_config(config)
    assert config == before


def test_augmenting_vectors_or_a_bad_step_is_refused_before_any_job():
    config = tiny_config(datasets={"blobs": BLOBS})
    config["train"]["augment"] = {"flip": True}
    with pytest.raises(ConfigError, match="'train.augment': augmentation needs images"):
        check_config(config)
    config = tiny_config()
    config["train"]["augment"] = {"rotate": 7}
    with pytest.raises(ConfigError, match="'train.augment': .*divisor of 360"):
        check_config(config)


def test_epoch_metrics_with_both_schedules_is_refused_before_any_job():
    config = two_groups()
    config["groups"]["ce"]["train"]["epoch_metrics"] = {"every": 2, "log_points": 5}
    with pytest.raises(ConfigError, match="'groups.ce.train.epoch_metrics': give every"):
        check_config(config)


def test_axis_tags_keep_their_order_when_the_config_is_reordered():
    entry = {"name": "mlp", "width": [8, 16], "depth": [2, 3]}
    reordered = {"depth": [2, 3], "name": "mlp", "width": [8, 16]}
    ids = [list(experiment.expand_runs(tiny_config(architectures={"m": e}))) for e in
           (entry, reordered)]
    assert ids[0] == ids[1] and ids[0][0] == "digits-m-d2-w8-s0"


def test_a_selected_axis_of_one_model_only_still_selects_in_the_others():
    """select: [lr, activation] where only one architecture varies its activation: the other
    still has its best lr selected."""
    config = tiny_config(architectures={
        "a": {"name": "mlp", "depth": 2, "activation": ["relu", "tanh"]},
        "b": {"name": "mlp", "depth": 2}}, select=["lr", "activation"])
    config["train"]["lr"] = [0.01, 0.1]
    design = experiment.run_design(config)
    infos = [{"run": run, "dataset": {"label": "digits"}, "arch": {"label": run.split("-")[1]},
              "seed": 0, "train": {"lr": entry["axes"]["lr"], "weight_decay": 5e-4},
              "final_train_acc": 1.0, "final_test_acc": 0.5 + entry["axes"]["lr"]}
             for run, entry in design["runs"].items()]
    table = select_best(run_records(infos, design), design)
    assert set(table.loc[table["selected"], "run"]) == {"digits-a-relu-lr0.1-s0",
                                                        "digits-b-lr0.1-s0"}


def test_changing_select_or_turning_sections_off_changes_no_spec():
    """What is selected is the tables' business (run_design), not the runs': no retraining."""
    config = two_groups()
    before = experiment.expand_runs(config)
    config["groups"]["mse"]["select"] = []
    config["groups"]["ce"]["train"]["augment"] = {"crop": 0, "flip": False}  # still off
    assert experiment.expand_runs(config) == before
    assert experiment.run_design(config)["select"]["mse"] == []
