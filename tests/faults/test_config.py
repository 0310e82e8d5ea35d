"""Faults a user can make in a config: each is refused before any job with a message naming the
key and the fix, and nothing finished is lost (checksums of every result before and after);
config edits that change nothing rerun nothing.

The config checks run in-process through :func:`nclayers.preflight.prepare`, the function the
Snakefile calls on its config; a few real `snakemake -n` runs prove that wiring (the message
reaches the user in one line, before any job, and nothing is written)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import (
    ROOT,
    copy_experiment,
    planned_jobs,
    snakemake,
    tiny_config,
    write_config,
)
from test_data import write_idx

from nclayers.experiment import ConfigError
from nclayers.preflight import check_yaml, coerce_numbers, prepare
from nclayers.vocabulary import PAPER_AXES, PAPER_GROUPS


def refused(config: dict | str, *needles: str) -> str:
    """``prepare`` (the Snakefile's check of its config, before any job is planned) refuses
    ``config``, saying each of ``needles``; returns the message as `snakemake -n` prints it."""
    with pytest.raises(ConfigError) as caught:
        prepare(yaml.safe_load(config) if isinstance(config, str) else config)
    out = f"invalid config: {caught.value}"
    for needle in needles:
        assert needle in out, out
    return out


def dry_run_refuses(tmp_path: Path, config: dict | str, *needles: str) -> str:
    """The real `snakemake -n` on ``config`` stops before planning any job, writes no result
    and says each of ``needles``; returns its output."""
    path = tmp_path / "config.yaml"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    proc = snakemake(tmp_path, "-n", "--configfile", str(path), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Job stats" not in out and not (tmp_path / "results").exists(), out
    assert "Traceback" not in out, out
    for needle in needles:
        assert needle in out, out
    return out


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """The working directory of the checks, as snakemake's is its --directory, and the data
    files' cache of each test its own (the user's is shared by every folder)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NCLAYERS_DATA_CACHE", str(tmp_path / "datafiles.json"))


def swap(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` replaced, which it must hold (a fault never silently absent)."""
    assert old in text, f"{old!r} not in the config: update the test"
    return text.replace(old, new)


def edit(change):
    config = tiny_config()
    change(config)
    return config


CASES = {
    "unknown-key": (lambda c: c.update(unknown_key=1), ["config key 'unknown_key'"]),
    "wrong-type": (lambda c: c["train"].update(epochs="many"),
                   ["config key 'train.epochs'", "'many'"]),
    "nested-unknown-key": (lambda c: c["train"].update(lr_typo=0.1),
                           ["config key 'train.lr_typo'", "unknown key"]),
    "unknown-dataset": (lambda c: c.update(datasets={"imagenet21k": {}}),
                        ["imagenet21k", "allowed: digits"]),
    "unknown-arch": (lambda c: c["architectures"]["mlp6"].update(name="transformer"),
                     ["architectures.mlp6", "transformer"]),
    "unknown-arch-option": (lambda c: c["architectures"]["mlp6"].update(dropout=0.5),
                            ["architectures.mlp6.dropout", "no option 'dropout'"]),
    "checkpoint-beyond-epochs": (lambda c: c["train"].update(checkpoints=[0, 99]),
                                 ["train.checkpoints", "[99]"]),
    "feature-epoch-beyond-epochs": (lambda c: c["features"].update(epochs=[7]),
                                    ["features.epochs", "[7]"]),
    "device-cuda-without-gpu": (lambda c: c.update(device="cuda"),
                                ["config key 'device'", "no CUDA device", "device: auto"]),
    "feature-sample-over-class-size": (lambda c: c["features"].update(per_class=100000),
                                       ["features.per_class", "lower it to at most 12"]),
    "feature-sample-over-memory": (
        lambda c: c.update(datasets={"blobs": {"name": "synthetic", "n_train": 200000}})
        or c["features"].update(per_class=50000) or c["architectures"]["mlp6"].update(depth=1),
        ["features.per_class", "GiB"]),
    "svsl-gamma-beyond-depth": (lambda c: c["train"].update(loss="svsl", svsl_gamma=9),
                                ["train.svsl_gamma", "3 hidden tapped layers", "1..3"]),
    "etf-layers-beyond-depth": (lambda c: c["architectures"]["mlp6"].update(etf_layers=7),
                                ["architectures.mlp6", "etf_layers"]),
    "resize-on-vectors": (lambda c: c.update(datasets={"blobs": {"name": "synthetic",
                                                                 "resize": 32}}),
                          ["datasets.blobs.resize", "not images"]),
    "image-arch-on-vectors": (lambda c: c.update(
        datasets={"blobs": {"name": "synthetic"}},
        architectures={"cnn": {"name": "convnet", "depth": 3, "width": 8}}),
        ["architectures.cnn", "blobs", "input shape (32,)"]),
    "per-class-over-dataset": (lambda c: c["datasets"].update(digits={"per_class": 500}),
                               ["datasets.digits.per_class", "smallest class"]),
    "test-per-class-over-dataset": (lambda c: c["datasets"].update(
        digits={"test_per_class": 100}), ["datasets.digits.test_per_class", "test split"]),
    "unknown-precision": (lambda c: c.setdefault("measure", {}).update(precision="float16"),
                          ["config key 'measure.precision'", "'float16'", "float64, float32"]),
    "negative-lr": (lambda c: c["train"].update(lr=-0.1),
                    ["config key 'train.lr'", "-0.1"]),
    "lr-list-with-a-word": (lambda c: c["train"].update(lr=[0.01, "fast"]),
                            ["train.lr", "'fast'"]),
    "multistep-without-milestones": (lambda c: c["train"].update(schedule="multistep"),
                                     ["train.milestones", "milestones: ["]),
    "warmup-with-constant": (lambda c: c["train"].update(warmup_epochs=5),
                             ["train.warmup_epochs", "schedule: multistep"]),
    "experiment-name-too-long": (lambda c: c.update(experiment="x" * 80),
                                 ["config key 'experiment'", "longer than 64"]),
    "label-too-long": (lambda c: c.update(datasets={"d" * 70: {"name": "digits"}}),
                       ["config key 'datasets'", "longer than 64"]),
    # NaN and infinities would train (a NaN lr makes NaN weights) or pass a range check
    "lr-nan": (lambda c: c["train"].update(lr=float("nan")),
               ["config key 'train.lr'", "nan is not a finite number"]),
    "lr-inf": (lambda c: c["train"].update(lr=float("inf")),
               ["config key 'train.lr'", "inf is not a finite number"]),
    "lr-list-with-inf": (lambda c: c["train"].update(lr=[0.1, float("-inf")]),
                         ["config key 'train.lr'", "-inf is not a finite number"]),
    "momentum-nan": (lambda c: c["train"].update(momentum=float("nan")),
                     ["config key 'train.momentum'", "nan"]),
    "label-noise-nan": (lambda c: c["datasets"].update(digits={"label_noise": float("nan")}),
                        ["config key 'datasets.digits.label_noise'", "nan"]),
    # what the train job would refuse, or silently ignore, refused before any job
    "adamw-beta1-of-1": (lambda c: c["train"].update(optimizer="adamw", momentum=1.0),
                         ["config key 'train.optimizer'", "momentum 1",
                          "Invalid beta parameter"]),
    "milestones-with-constant": (lambda c: c["train"].update(milestones=[2]),
                                 ["config key 'train.milestones'", "constant schedule ignores",
                                  "schedule: multistep"]),
    "milestone-at-the-end": (lambda c: c["train"].update(schedule="multistep", milestones=[3]),
                             ["config key 'train.milestones'", "[3]", "never decays"]),
    "warmup-as-long-as-the-run": (lambda c: c["train"].update(
        schedule="multistep", milestones=[2], warmup_epochs=3),
        ["config key 'train.warmup_epochs'", "whole run of 3"]),
    "onecycle-without-a-rising-step": (lambda c: c["train"].update(
        schedule="onecycle", onecycle_pct=0.25, epochs=4, batch_size=2000, checkpoints=[0, 4]),
        ["config key 'train.schedule'", "step 0 of 4", "division by zero"]),
    "one-sample-last-batch-under-batchnorm": (lambda c: c["train"].update(batch_size=1256),
                                              ["config key 'train.batch_size'", "1257",
                                               "cannot train on", "more than 1 value"]),
    "batches-of-one-under-batchnorm": (lambda c: c["train"].update(batch_size=1),
                                       ["config key 'train.batch_size'",
                                        "every batch holds one sample"]),
    "class-without-samples": (lambda c: c.update(datasets={"blobs": {"name": "synthetic",
                                                                     "n_train": 1}}),
                              ["config key 'datasets.blobs'", "no sample of class 1"]),
    "test-fraction-too-large": (lambda c: c["datasets"].update(digits={"test_fraction": 0.999}),
                                ["config key 'datasets.digits'", "test_fraction"]),
    "seed-too-large": (lambda c: c.update(seeds=[2**64]),
                       ["config key 'seeds.0'", "<= 4294967295"]),
    # names that would write outside results/ or cut the jobs' shell commands
    "experiment-dotdot": (lambda c: c.update(experiment=".."), ["config key 'experiment'"]),
    "experiment-dot": (lambda c: c.update(experiment="."), ["config key 'experiment'"]),
    "experiment-trailing-newline": (lambda c: c.update(experiment="tiny\n"),
                                    ["config key 'experiment'", "white space"]),
    "label-trailing-newline": (lambda c: c.update(datasets={"digits\n": {}}),
                               ["config key 'datasets'", "'digits\\n'"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_config_fault_is_refused_before_any_job(case):
    change, needles = CASES[case]
    refused(edit(change), *needles)


def test_missing_dataset_files_name_the_key_and_the_paths(tmp_path):
    config = tiny_config(datasets={"mnist": {}}, data={"root": str(tmp_path / "nowhere"),
                                                       "download": False})
    refused(config, "datasets.mnist", str(tmp_path / "nowhere"))


def test_unknown_top_level_key_is_one_line_from_snakemake(tmp_path):
    """The wiring: the Snakefile's check stops `snakemake -n` with prepare's message."""
    out = dry_run_refuses(tmp_path, edit(lambda c: c.update(epochs=3)), "config key 'epochs'",
                          "unknown key", "allowed here: architectures")
    assert len(out.strip().splitlines()) < 8, out  # not the schema


def test_a_preflight_fault_stops_snakemake_before_any_job(tmp_path):
    """A check beyond the schema (the dataset's class sizes), through the real dry run."""
    dry_run_refuses(tmp_path, edit(CASES["per-class-over-dataset"][0]),
                    *CASES["per-class-over-dataset"][1])


def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    text = swap((ROOT / ".test" / "config.yaml").read_text(), "lr: 0.1 ", "lr: [0.1 ")
    (tmp_path / "config.yaml").write_text(text)
    proc = snakemake(tmp_path, "-n", check=False)  # the default config.yaml of the folder
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "config.yaml, line" in out and "column" in out, out


@pytest.mark.parametrize(("text", "needles"), [
    ("experiment: a\nexperiment: b\n", ["line 2, column 1", "'experiment' is given twice",
                                         "first on line 1"]),
    ("train:\n  lr: 0.1\n  lr: 0.2\n", ["line 3", "'lr' is given twice"]),
    ("", ["holds nothing", "not a mapping"]),
    ("- experiment: a\n", ["holds a list", "not a mapping"]),
    ("__use_yte__: true\nexperiment: a\n?if True:\n  seeds: [0]\n", ["__use_yte__", "runs Python"]),
    ("lr: !!python/object/apply:os.system ['true']\n", ["line 1", "YAML syntax error"]),
    ("experiment: a\x07\n", ["not YAML text", "special characters are not allowed"]),
    ("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{k}: &{k} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, k in zip("abcdefg", "bcdefgh", strict=True)), ["aliases expand", "alias bomb"]),
], ids=["duplicate-top-key", "duplicate-nested-key", "empty", "list", "yte", "python-tag",
        "control-character", "alias-bomb"])
def test_a_config_files_text_is_refused_before_it_is_used(tmp_path, text, needles):
    """nclayers.preflight.check_yaml, which the Snakefile runs on each config file: what YAML
    would silently accept or run, each refused naming the file (and line)."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        check_yaml(path)
    for needle in [str(path), *needles]:
        assert needle in str(caught.value), caught.value


def test_a_config_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes("experiment: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        check_yaml(path)


def test_a_duplicate_key_in_a_configfile_stops_the_dry_run(tmp_path):
    """The wiring: the Snakefile checks each --configfile's text before the config is used."""
    text = (ROOT / ".test" / "config.yaml").read_text() + "seeds: [0, 1]\n"
    dry_run_refuses(tmp_path, text, "invalid config:", "'seeds' is given twice")


@pytest.mark.parametrize("where", ["results", "results/tiny"])
def test_a_file_where_the_results_folder_goes_stops_the_dry_run(tmp_path, where):
    (tmp_path / where).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / where).write_text("somebody's notes\n")
    config = tmp_path / "config.yaml"
    config.write_text((ROOT / ".test" / "config.yaml").read_text())
    proc = snakemake(tmp_path, "-n", "--configfile", str(config), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"{where} is a file" in out and "Traceback" not in out, out
    assert (tmp_path / where).read_text() == "somebody's notes\n"


def test_corrupt_idx_files_stop_the_dry_run(tmp_path):
    raw = tmp_path / "data" / "MNIST" / "raw"
    for prefix in ("train", "t10k"):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", np.zeros((20, 28, 28), np.uint8))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(20, dtype=np.uint8) % 10)
    label = raw / "train-labels-idx1-ubyte"
    label.write_bytes(label.read_bytes()[:-5])  # truncated
    config = tiny_config(datasets={"mnist": {}}, data={"root": str(tmp_path / "data"),
                                                       "download": False})
    refused(config, "train-labels-idx1-ubyte", "truncated")


@pytest.mark.parametrize(("images", "labels", "says"), [
    (np.zeros((20, 20, 20), np.uint8), np.arange(20, dtype=np.uint8) % 10,
     ["train-images-idx3-ubyte", "20×20 per sample", "images of 28×28"]),
    (np.zeros((20, 28, 28), np.uint8), np.arange(20, dtype=np.uint8) % 13,
     ["config key 'datasets': dataset 'mnist'", "train-labels-idx1-ubyte",
      "label 12, outside 0..9"]),
], ids=["images-of-another-size", "labels-out-of-range"])
def test_consistent_idx_files_of_another_dataset_are_refused(tmp_path, images, labels, says):
    """Files whose headers match their lengths but hold what MNIST does not: refused at -n
    naming the file (they were a traceback in the job, or "0 samples in the smallest
    class")."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    for prefix in ("train", "t10k"):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    config = tiny_config(datasets={"mnist": {}}, data={"root": str(tmp_path / "data"),
                                                       "download": False})
    out = refused(config, *says)
    assert "cannot be split" not in out  # said once, not wrapped in another message


def test_a_convnet_trains_on_a_last_batch_of_one(tmp_path):
    """BatchNorm2d normalises over the pixels too, so one sample trains: not refused."""
    config = tiny_config(architectures={"cnn": {"name": "convnet", "depth": 2, "width": 4}})
    config["train"]["batch_size"] = 4  # 1257 = 314 * 4 + 1
    prepare(config)


def test_scientific_notation_is_the_number_it_spells():
    """YAML 1.1 reads `lr: 1e-3` as the string "1e-3"; the workflow takes the number."""
    config = yaml.safe_load("experiment: 1e3\ntrain: {lr: 1e-3, weight_decay: [5e-4, 1E-2]}")
    assert config["train"]["lr"] == "1e-3"
    fixed = coerce_numbers(config)
    assert fixed["train"] == {"lr": 0.001, "weight_decay": [5e-4, 0.01]}
    assert fixed["experiment"] == "1e3"


def spelled(edits: list[tuple[str, str]]) -> dict:
    """The tiny experiment's specs, as JSON, with ``edits`` (old → new text) made to its
    YAML."""
    config = tiny_yaml()
    config.setdefault("measure", {})
    out = dump(config)
    for old, new in edits:
        out = swap(out, old, new)
    # as the train rule's params compare them (Python's 3.0 == 3 would hide a difference)
    return {run: json.dumps(spec, sort_keys=True)
            for run, spec in prepare(yaml.safe_load(out)).runs.items()}


@pytest.mark.parametrize("edits", [
    [("epochs: 3\n", "epochs: 3e0\n")],
    [("epochs: 3\n", "epochs: 3.0\n")],
    [("batch_size: 128\n", "batch_size: 128.0\n")],
    [("lr: 0.1\n", "lr: 0.1\n  mse_scale: 1\n")],
    [("digits: {}\n", "digits: {label_noise: 0.0, normalize: true, test_fraction: 0.3}\n")],
    [("    batchnorm: true\n", "")],
    [("    width: 32\n", "    width: 32\n    etf_layers: 0\n")],
], ids=["epochs-3e0", "epochs-3.0", "batch-size-128.0", "mse-scale-1", "dataset-defaults",
        "batchnorm-left-out", "etf-layers-0"])
def test_a_number_spelled_otherwise_or_a_default_written_out_is_the_same_run(edits):
    """Integer-valued floats are integers and options at their defaults are left out of the
    spec, so that none of these edits changes a run (and none reruns it)."""
    assert spelled(edits) == spelled([])


def test_lr_written_1e_3_gives_runs_with_lr_0_001():
    text = swap(yaml.safe_dump(tiny_config()), "lr: 0.1\n", "lr: 1e-3\n")
    runs = prepare(yaml.safe_load(text)).runs
    assert [spec["train"]["lr"] for spec in runs.values()] == [0.001]


# --- on a finished experiment: nothing lost ---------------------------------------------------

def checksums(workdir: Path) -> dict[str, str]:
    results = workdir / "results"
    return {str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(results.rglob("*")) if p.is_file() and "build" not in p.parts}


@pytest.fixture
def finished(tiny_run, tmp_path) -> Path:
    """A copy of the finished tiny experiment (times kept)."""
    return copy_experiment(tiny_run, tmp_path)


@pytest.mark.parametrize("case", ["device-cuda-without-gpu", "feature-sample-over-class-size",
                                  "svsl-gamma-beyond-depth"])
def test_a_refused_rerun_keeps_every_result(finished, case):
    before = checksums(finished)
    write_config(finished, edit(CASES[case][0]))
    proc = snakemake(finished, "--cores", "1", check=False)
    assert proc.returncode != 0
    assert checksums(finished) == before


@pytest.mark.slow
def test_a_deleted_run_json_is_rebuilt_and_its_training_published_not_redone(finished):
    """`rule all` asks for every run.json; the train job finds the run's finished training
    kept (runs/<run>/.finished) and publishes it again: the same checkpoints, byte for byte."""
    run = finished / "results" / "tiny" / "runs" / "digits-mlp6-s0"
    before = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    (run / "run.json").unlink()
    assert planned_jobs(snakemake(finished, "-n"))["train"] == 1
    snakemake(finished, "--cores", "2")
    assert (run / "run.json").is_file()
    assert {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()} == before
    log = (finished / "results" / "tiny" / "logs" / "train" / "digits-mlp6-s0.log").read_text()
    assert "published again" in log


def dump(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False)


def tiny_yaml() -> dict:
    return yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())


@pytest.mark.parametrize("text", [
    lambda c: dump(dict(reversed(list(c.items())))),  # every top-level key reordered
    lambda c: dump(c).replace("train:\n", "train:\n  mse_scale: 1.0\n  amp: false\n"),
    lambda c: dump(c) + "data:\n  root: elsewhere\n",
    lambda c: dump(c).replace("train:\n", "train:\n  resume_every: 7\n"),
    lambda c: swap(swap(dump(c), "epochs: 3\n", "epochs: 3e0\n"), "batch_size: 1024\n",
                   "batch_size: 1.024e3\n"),
    lambda c: swap(swap(swap(dump(c), "digits: {}\n",
                             "digits: {label_noise: 0.0, test_fraction: 0.3}\n"),
                        "    batchnorm: true\n", ""),
                   "    width: 32\n", "    width: 32\n    etf_layers: 0\n"),
], ids=["key-order", "defaults-written-out", "data-root-of-digits", "resume-every",
        "integer-valued-floats", "option-defaults"])
def test_an_edit_that_changes_no_run_reruns_nothing(finished, text):
    (finished / "config.yaml").write_text(text(tiny_yaml()))
    proc = snakemake(finished, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_new_runs_leave_the_finished_ones_alone(finished):
    config = tiny_yaml()
    config["seeds"] = [0, 1]
    (finished / "config.yaml").write_text(dump(config))
    assert planned_jobs(snakemake(finished, "-n"))["train"] == 1  # seed 1 only


def test_a_changed_lr_reruns_its_run(finished):
    config = tiny_yaml()
    config["train"]["lr"] = 0.02
    (finished / "config.yaml").write_text(dump(config))
    proc = snakemake(finished, "-n")
    assert planned_jobs(proc)["train"] == 1
    assert "params have changed" in (proc.stdout + proc.stderr).lower()


def test_train_settings_reach_the_train_job(tmp_path):
    """Through Snakemake's own reading of the file: `lr: 1e-3` (a string to YAML 1.1) is the
    number in the job's spec, and resume_every its own argument."""
    config = tiny_config()
    config["train"]["resume_every"] = 5
    path = write_config(tmp_path, config)
    path.write_text(swap(path.read_text(), "lr: 0.1\n", "lr: 1e-3\n"))
    proc = snakemake(tmp_path, "-n", "-p", "--configfile", str(path))
    assert "--resume-every 5" in proc.stdout + proc.stderr
    assert '"lr": 0.001' in proc.stdout + proc.stderr


# --- each paper's contract: the groups and axes its figures and tables read ------------------

def smoke_preset(paper: str) -> dict:
    return yaml.safe_load((ROOT / "workflow/presets" / paper / "smoke.yaml").read_text())


def renamed(config: dict, group: str, new: str) -> dict:
    config["groups"] = {new if name == group else name: entry
                        for name, entry in config["groups"].items()}
    return config


def test_a_preset_that_renames_a_group_its_paper_reads_is_refused_at_dry_run(tmp_path):
    config = renamed(smoke_preset("galanti2022"), "mlp_depth", "mlp_depths")
    out = dry_run_refuses(tmp_path, config, "group 'mlp_depth'")
    line = next(x for x in out.splitlines() if "group 'mlp_depth'" in x)
    assert "galanti2022" in line and "fig1_mlp_depth" in line and "claims" in line, line
    assert "report.left_out" in line, line


@pytest.mark.parametrize(("paper", "group"), [(paper, group) for paper, needs in
                                               PAPER_GROUPS.items() for group in needs])
def test_every_group_a_paper_reads_is_checked(paper, group):
    config = smoke_preset(paper)
    config["report"]["left_out"] = [g for g in config["report"].get("left_out", [])
                                    if g != group]
    config["groups"] = {name: entry for name, entry in config["groups"].items()
                        if not (name == group or name.startswith(group + "_"))}
    refused(config, f"holds {paper}", f"group {group!r}", PAPER_GROUPS[paper][group][0])


def fixed(entry, axis: str):
    """``entry`` with every list of values of ``axis`` cut to its first value."""
    if isinstance(entry, dict):
        return {k: v[0] if k == axis and isinstance(v, list) else fixed(v, axis)
                for k, v in entry.items()}
    return entry


@pytest.mark.parametrize(("paper", "axis"), [(paper, axis) for paper, needs in
                                              PAPER_AXES.items() for axis in needs])
def test_every_axis_a_paper_compares_is_checked(paper, axis):
    refused(fixed(smoke_preset(paper), axis), f"holds {paper}", f"axis {axis!r}",
            PAPER_AXES[paper][axis][0])


def test_the_smoke_presets_meet_their_papers_contracts():
    for paper in PAPER_GROUPS.keys() | PAPER_AXES.keys():
        prepare(smoke_preset(paper), local=False)


def test_a_feature_sample_over_the_memory_budget_is_refused_with_what_it_needs():
    config = edit(lambda c: c["features"].update(per_class=100, memory_gib=0.005))
    out = refused(config, "config key 'features.per_class'", "1,000 points",
                  "raise features.memory_gib to 0.1", "0.01 GiB")
    assert "\n" not in out
    prepare(edit(lambda c: c["features"].update(per_class=100, memory_gib=0.1)))


def test_a_minimal_config_is_told_every_missing_key_at_once():
    """An experiment, a dataset and an architecture: one message names every required key the
    config lacks (it used to name one per run)."""
    out = refused({"experiment": "mine", "datasets": {"digits": {}},
                   "architectures": {"mlp": {"name": "mlp"}}, "seeds": [0], "train": {}},
                  "config key 'train': missing epochs, batch_size, lr")
    assert "\n" not in out
    refused({"experiment": "mine", "datasets": {"digits": {}},
             "architectures": {"mlp": {"name": "mlp"}}},
            "config key '(top level)': missing seeds, train")


def test_config_overrides_as_the_readme_shows_them_reach_the_runs(tmp_path):
    """`snakemake --config` hands over untyped scalars ("0", "10"); they are the numbers
    they spell, and a section's override keeps the section's other keys."""
    config = write_config(tmp_path, tiny_config())
    proc = snakemake(tmp_path, "-n", "-p", "--configfile", str(config), "--config", "seeds=[0, 1]",
                     "train={epochs: 10}")
    out = proc.stdout + proc.stderr
    assert "digits-mlp6-s1" in out and '"epochs": 10' in out and '"lr": 0.1' in out, out
    assert coerce_numbers({"experiment": "7", "seeds": ["0"], "train": {"lr": "0.5",
                                                                        "amp": "false"}}) == {
        "experiment": "7", "seeds": [0], "train": {"lr": 0.5, "amp": False}}
