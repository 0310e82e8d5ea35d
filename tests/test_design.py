"""The experiment's resolved design as a table (tables/design.csv): a row per run with every
setting, defaults filled in, and which of its axes are selected and which compared."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import yaml
from conftest import ROOT, tiny_config

from nclayers.design import FRONT, design_table, option_defaults
from nclayers.preflight import prepare


def experiment_design(config: dict) -> pd.DataFrame:
    """The design table of ``config``'s runs, their specs standing in for the run.json files
    (which hold the spec and what training measured)."""
    experiment = prepare(config)
    return design_table(list(experiment.runs.values()), experiment.design)


def test_the_tiny_run_has_every_setting_with_the_defaults_filled_in():
    table = experiment_design(tiny_config())
    assert list(table.columns[:len(FRONT)]) == FRONT
    row = table.iloc[0]
    assert (row["run"], row["group"], row["seed"]) == ("digits-mlp6-s0", "main", 0)
    # given in .test/config.yaml
    assert (row["arch.depth"], row["arch.width"], row["train.lr"]) == (3, 32, 0.1)
    # left out: the schema's default (train) and the builder's or the dataset's (entries)
    assert row["train.momentum"] == 0.9 and row["train.loss"] == "mse"
    assert row["train.mse_reduction"] == "mean"
    assert row["arch.activation"] == "relu" and row["arch.etf_layers"] == 0
    assert row["dataset.normalize"] and row["dataset.label_noise"] == 0.0
    assert json.loads(row["train.checkpoints"]) == [0, 3]
    assert row["selected_axes"] == "" and row["compared_axes"] == ""


def test_groups_say_which_axes_are_selected_and_which_compared():
    table = experiment_design(yaml.safe_load((ROOT / ".test" / "groups.yaml").read_text()))
    mse, ce = table[table["group"] == "mse"], table[table["group"] == "ce"]
    assert len(mse) == 4 and len(ce) == 8
    assert set(mse["selected_axes"]) == {"lr"} and set(mse["compared_axes"]) == {"depth"}
    assert set(ce["selected_axes"]) == {""} and set(ce["compared_axes"]) == {"depth;lr"}
    assert set(mse["train.loss"]) == {"mse"} and set(ce["train.epochs"]) == {4}
    assert sorted(set(ce["train.lr"])) == [0.01, 0.05] and set(ce["seed"]) == {0, 1}
    assert set(ce["dataset.name"]) == {"synthetic"} and set(ce["dataset.num_classes"]) == {3}
    # a section's fields, resolved per group
    assert set(ce["train.epoch_metrics.log_points"]) == {3}
    assert set(mse["train.epoch_metrics.log_points"]) == {0}
    assert set(mse["train.epoch_metrics.every"]) == {1}


def test_a_section_that_is_off_is_empty():
    """Augmentation off (left out of the spec) in one group and on in the other."""
    config = tiny_config(groups={"plain": {"pairs": [["digits", "mlp6"]]},
                                 "flipped": {"pairs": [["digits", "mlp6"]],
                                             "train": {"augment": {"flip": True}}}})
    table = experiment_design(config).set_index("group")
    assert table.loc["flipped", "train.augment.flip"]
    assert pd.isna(table.loc["plain", "train.augment.flip"])


def test_the_design_step_writes_the_table(tmp_path):
    from nclayers.cli import main

    experiment = prepare(tiny_config(seeds=[0, 1]))
    infos = []
    for run, spec in experiment.runs.items():
        infos.append(tmp_path / f"{run}.json")
        infos[-1].write_text(json.dumps({**spec, "diverged": False}))
    out = tmp_path / "tables" / "design.csv"
    main(["design", "--infos", *map(str, infos), "--design", json.dumps(experiment.design),
          "--out", str(out)])
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table["run"]) == ["digits-mlp6-s0", "digits-mlp6-s1"]
    assert list(table["seed"]) == [0, 1]


def test_the_design_job_takes_the_defaults_from_the_workflow_and_imports_no_torch(tmp_path):
    experiment = prepare(tiny_config())
    infos = []
    for run, spec in experiment.runs.items():
        path = tmp_path / f"{run}.json"
        path.write_text(json.dumps(spec))
        infos.append(str(path))
    defaults = json.dumps(option_defaults(list(experiment.runs.values())))
    design = json.dumps(experiment.design)
    code = ("import sys; from nclayers.cli import main; main(sys.argv[1:]); "
            "print('torch' in sys.modules)")
    given = subprocess.run(
        [sys.executable, "-c", code, "design", "--infos", *infos, "--design", design,
         "--defaults", defaults, "--out", str(tmp_path / "given.csv")],
        capture_output=True, text=True, check=True).stdout
    assert given.split()[-1] == "False"
    subprocess.run([sys.executable, "-m", "nclayers", "design", "--infos", *infos, "--design",
                    design, "--out", str(tmp_path / "computed.csv")], check=True,
                   capture_output=True)
    assert (tmp_path / "given.csv").read_text() == (tmp_path / "computed.csv").read_text()
