"""Faults a user can make give one clear message naming the problem and the fix, no traceback:
the steps (``python -m nclayers``, in a process of its own as the workflow runs them) and the
library (``measure``, the streaming metrics, the taps, ``from nclayers import measure``)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_config
from torch import nn

from nclayers import experiment, measure
from nclayers.cli import user_message
from nclayers.io import TableError
from nclayers.metrics import ClassMeans, MeanGeometry, SplitStats
from nclayers.vocabulary import TIDY_COLUMNS

# ------------------------------------------------------------------------------ the steps


def step(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nclayers", *args], capture_output=True,
                          text=True, cwd=cwd)


def one_error(proc: subprocess.CompletedProcess, name: str, status: int) -> str:
    """The single error line of a failed step, after checking its form and exit status."""
    assert proc.returncode == status, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"nclayers {name}: error: "), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def spec() -> dict:
    return next(iter(experiment.expand_runs(tiny_config()).values()))


@pytest.fixture
def info(tmp_path, spec) -> Path:
    """A run.json as the train step writes it (the spec and more); no run behind it."""
    path = tmp_path / "run.json"
    path.write_text(json.dumps({**spec, "diverged": False}))
    return path


def measure_step(tmp_path: Path, info: Path, checkpoint: str, *extra: str):
    out = tmp_path / "metrics.csv"
    proc = step("measure", "--info", str(info), "--checkpoint", checkpoint, "--out", str(out),
                "--spectra", str(tmp_path / "spectra.csv"), *extra, cwd=tmp_path)
    assert not out.exists() and not (tmp_path / "spectra.csv").exists()
    return proc


def test_train_with_a_spec_that_is_not_json(tmp_path):
    proc = step("train", "--spec", "{run: x}", "--out-dir", str(tmp_path / "run"), cwd=tmp_path)
    line = one_error(proc, "train", 2)
    assert "argument --spec: not JSON" in line and "one JSON object" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("drop", ["seed", "train"])
def test_train_with_a_spec_lacking_a_key_names_it(tmp_path, spec, drop):
    partial = {k: v for k, v in spec.items() if k != drop}
    proc = step("train", "--spec", json.dumps(partial), "--out-dir", str(tmp_path / "run"),
                cwd=tmp_path)
    line = one_error(proc, "train", 2)
    assert f"the spec lacks '{drop}'" in line
    assert "run, dataset, arch, seed, train, device" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("change", "says"), [
    (lambda s: s["dataset"].update(name="imagenet"), "unknown dataset 'imagenet'"),
    (lambda s: s["train"].update(lr=-1), "spec key 'train.lr': -1 is out of range"),
    (lambda s: s["train"].update(epochs="3"), "spec key 'train.epochs': '3' is not of type"),
    (lambda s: s["train"].update(optimizer="adamw", momentum=1), "Invalid beta parameter"),
    (lambda s: s["arch"].update(width=0), "spec key 'arch.width': 0 is out of range"),
    (lambda s: s["train"].update(checkpoints=[0, 3, 9]),
     "spec key 'train.checkpoints': epochs [9] lie beyond train.epochs = 3"),
], ids=["unknown-dataset", "negative-lr", "epochs-a-string", "adamw-beta1-of-1", "width-0",
        "checkpoint-beyond-epochs"])
def test_train_checks_its_spec_as_the_dry_run_checks_a_config(tmp_path, spec, change, says):
    """`train --spec` runs nclayers.preflight.check_spec (the checks of `snakemake -n`) before
    it writes anything: one line, no traceback, no run folder."""
    bad = json.loads(json.dumps(spec))
    change(bad)
    proc = step("train", "--spec", json.dumps(bad), "--out-dir", str(tmp_path / "run"),
                cwd=tmp_path)
    assert says in one_error(proc, "train", 1)
    assert not (tmp_path / "run").exists()


def test_train_with_a_spec_lacking_a_nested_key_names_it(tmp_path, spec):
    partial = {**spec, "train": {k: v for k, v in spec["train"].items() if k != "checkpoints"}}
    proc = step("train", "--spec", json.dumps(partial), "--out-dir", str(tmp_path / "run"),
                cwd=tmp_path)
    assert "lacks 'train.checkpoints'" in one_error(proc, "train", 2)
    assert not (tmp_path / "run").exists()


def test_measure_with_a_missing_checkpoint_names_it(tmp_path, info):
    proc = measure_step(tmp_path, info, "nowhere.pt")
    line = one_error(proc, "measure", 1)
    assert "argument --checkpoint: nowhere.pt does not exist" in line and "rerun" in line


def test_measure_with_an_unreadable_checkpoint_names_it_and_the_fix(tmp_path, info):
    broken = tmp_path / "epoch3.pt"
    broken.write_bytes(b"not a checkpoint")
    proc = measure_step(tmp_path, info, str(broken))
    line = one_error(proc, "measure", 1)
    assert f"cannot read checkpoint {broken}" in line
    assert f"with `snakemake --cores all --forcerun {tmp_path}`" in line


@pytest.mark.parametrize(("content", "held"), [(torch.ones(3), "holds a Tensor"),
                                               ([1, 2], "holds a list"),
                                               ({"weights": 1}, "holds a dict of weights")])
def test_measure_with_a_checkpoint_of_something_else_names_it_and_the_fix(tmp_path, info,
                                                                         content, held):
    other = tmp_path / "epoch3.pt"
    torch.save(content, other)
    line = one_error(measure_step(tmp_path, info, str(other)), "measure", 1)
    assert f"checkpoint {other} {held}, not the epoch and model weights" in line
    assert "--forcerun" in line


@pytest.mark.parametrize("size", ["0", "-3", "many"])
def test_measure_with_a_batch_size_that_is_not_positive(tmp_path, info, size):
    proc = measure_step(tmp_path, info, "nowhere.pt", "--batch-size", size)
    line = one_error(proc, "measure", 2)
    assert "argument --batch-size: must be a positive integer" in line and size in line


def test_features_with_zero_per_class(tmp_path, info):
    proc = step("features", "--info", str(info), "--checkpoint", "nowhere.pt", "--per-class",
                "0", "--out-dir", str(tmp_path / "features"), cwd=tmp_path)
    assert "argument --per-class: must be a positive integer, got 0" in one_error(
        proc, "features", 2)
    assert not (tmp_path / "features").exists()


def test_features_with_an_unknown_ward_scaling(tmp_path, info):
    proc = step("features", "--info", str(info), "--checkpoint", "nowhere.pt", "--per-class",
                "5", "--ward-scaling", "bogus", "--out-dir", str(tmp_path / "features"),
                cwd=tmp_path)
    line = one_error(proc, "features", 2)
    assert "--ward-scaling: invalid choice: 'bogus'" in line and "'mean_norm'" in line
    assert not (tmp_path / "features").exists()


def test_an_unknown_feature_figure_is_named_before_anything_is_drawn(tmp_path):
    (tmp_path / "features").mkdir()
    proc = step("feature-figures", "umap_class", "umap_cosin", "--dir", "features",
                "--out-dir", "figures", cwd=tmp_path)
    line = one_error(proc, "feature-figures", 1)
    assert "no feature figure 'umap_cosin'" in line and "umap_cosine" in line
    assert not (tmp_path / "figures").exists()


def test_measure_with_a_missing_run_json_names_it(tmp_path):
    proc = measure_step(tmp_path, tmp_path / "runs" / "run.json", "nowhere.pt")
    line = one_error(proc, "measure", 1)
    assert f"argument --info: {tmp_path / 'runs' / 'run.json'} does not exist" in line


@pytest.mark.parametrize("content, says", [
    ('{"run": "x", ', "is not valid JSON"),
    ("{}", "lacks 'run', 'dataset', 'arch', 'seed', 'train', 'device'"),
])
def test_measure_with_a_broken_run_json_names_it(tmp_path, content, says):
    info = tmp_path / "run.json"
    info.write_text(content)
    checkpoint = tmp_path / "epoch0.pt"
    checkpoint.write_bytes(b"")
    line = one_error(measure_step(tmp_path, info, str(checkpoint)), "measure", 1)
    assert f"{info} {says}" in line and "delete it and rerun the workflow" in line


def test_a_missing_csv_is_named_with_its_argument(tmp_path):
    present = tmp_path / "present.csv"
    present.write_text("a\n1\n")
    outs = {name: tmp_path / f"out_{name}" for name in ("clusters", "retention", "pca")}
    proc = step("feature-tables", "--clusters", str(present), str(tmp_path / "gone.csv"),
                "--retention", str(present), "--pca-summary", str(present),
                "--out-clusters", str(outs["clusters"]), "--out-retention",
                str(outs["retention"]), "--out-pca-summary", str(outs["pca"]), cwd=tmp_path)
    line = one_error(proc, "feature-tables", 1)
    assert f"argument --clusters: {tmp_path / 'gone.csv'} does not exist" in line
    assert not any(path.exists() for path in outs.values())


@pytest.mark.parametrize(("damage", "says"), [
    (lambda text: text[:-7], "is cut short (its last line is incomplete)"),
    (lambda text: text.replace(",metric,", ",what,", 1),
     "lacks the column metric of a metrics.csv"),
], ids=["cut", "no-metric-column"])
def test_a_damaged_table_is_refused_where_it_is_read(tmp_path, damage, says):
    """A figure step on a metrics.csv cut mid-line or without its metric column: one line
    naming the file and the fix, before any drawing."""
    metrics = tmp_path / "metrics.csv"
    rows = [f"r,digits,mlp,0,3,layer{k},{k},train,nc1,{0.5 / k}" for k in (1, 2)]
    metrics.write_text(",".join([*TIDY_COLUMNS, "group"]) + "\n"
                       + "".join(f"{row},main\n" for row in rows))
    metrics.write_text(damage(metrics.read_text()))
    runs = tmp_path / "runs.csv"
    runs.write_text("run,dataset,arch,seed,selected\nr,digits,mlp,0,True\n")
    out = tmp_path / "nc1.pdf"
    proc = step("figure", "nc1_by_layer", "--metrics", str(metrics), "--runs-table", str(runs),
                "--out", str(out), cwd=tmp_path)
    line = one_error(proc, "figure", 1)
    assert f"{metrics} {says}" in line and "rerun the workflow to rebuild it" in line
    assert not out.exists()


def test_an_unreadable_csv_is_named_with_the_fix(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    outs = {name: tmp_path / f"out_{name}" for name in ("clusters", "retention", "pca")}
    proc = step("feature-tables", "--clusters", str(empty), "--retention", str(empty),
                "--pca-summary", str(empty), "--out-clusters", str(outs["clusters"]),
                "--out-retention", str(outs["retention"]), "--out-pca-summary",
                str(outs["pca"]), cwd=tmp_path)
    line = one_error(proc, "feature-tables", 1)
    assert f"cannot read {empty}" in line and "rerun the workflow" in line
    assert not any(path.exists() for path in outs.values())


def _raise_value_error():
    raise ValueError("from outside nclayers")


def test_only_nclayers_own_errors_lose_their_traceback():
    """Errors for users (nclayers.errors.UserError) become one line; anything else is a bug or
    a library call's own error and keeps its traceback (main re-raises it)."""
    with pytest.raises(ValueError) as caught:
        _raise_value_error()  # raised here, not by nclayers
    assert user_message(caught.value) is None
    with pytest.raises(RuntimeError) as caught:
        torch.zeros(2) @ torch.zeros(3)  # raised inside torch
    assert user_message(caught.value) is None
    assert user_message(TableError("metrics.csv, line 4: ...")) == "metrics.csv, line 4: ..."
    with pytest.raises(FileNotFoundError) as caught:
        Path("nowhere.csv").read_text()
    assert user_message(caught.value) == "No such file or directory: nowhere.csv"
    assert user_message(KeyError("x")) is None  # a missing dict key is a bug


# ---------------------------------------------------------------------------- the library


def small_net(outputs: int = 3) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 8), nn.Tanh(),
                         nn.Linear(8, outputs))


def labelled(n: int, seed: int = 0, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    return torch.randn(n, 5, generator=g) + 2.0 * torch.eye(3, 5)[y % 3], y


def batched(x, y, size: int = 10) -> list:
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def test_a_one_class_model_needs_two_classes():
    x, y = labelled(30)
    with pytest.raises(ValueError, match="at least two classes, but the model's output has "
                                         "width 1"):
        measure(small_net(outputs=1), batched(x, y * 0), layers=["1"])


def test_data_of_a_single_class_needs_two_classes():
    x, _ = labelled(30)
    with pytest.raises(ValueError, match="at least two classes, but the train split holds "
                                         "samples of class 0 only"):
        measure(small_net(), batched(x, torch.zeros(30, dtype=torch.long)), layers=["1"])


@pytest.mark.parametrize("consumers", [None, {}])  # with and without finding the consumers
def test_no_train_batches_say_so(consumers):
    with pytest.raises(ValueError, match=r"the train split yielded no samples \(no batches\)"):
        measure(small_net(), [], layers=["1"], consumers=consumers)


def test_train_batches_of_zero_rows_say_so():
    empty = (torch.zeros(0, 5), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"the train split yielded no samples \(2 batches, all "
                                         "of zero rows\\)"):
        measure(small_net(), [empty, empty], layers=["1"])


def test_no_test_batches_say_so():
    x, y = labelled(30)
    with pytest.raises(ValueError, match="the test split yielded no samples"):
        measure(small_net(), batched(x, y), [], layers=["1"])


def test_a_one_shot_iterator_as_train_split_is_refused():
    x, y = labelled(30)
    with pytest.raises(ValueError, match="re-iterable.*generator: measure reads it twice"):
        measure(small_net(), (batch for batch in batched(x, y)), layers=["1"])


def test_nan_inputs_name_the_first_layer_and_the_train_batch():
    x, y = labelled(40)
    x[25, 2] = float("nan")  # batch 2 of 10 rows
    with pytest.raises(ValueError, match=r"layer '1' \(and 1 other tapped layer\) has "
                                         r"non-finite activations in train batch 2"):
        measure(small_net(), batched(x, y), layers=["3", "1"])  # named in another order


def test_a_diverged_layer_is_named_with_the_test_batch():
    x, y = labelled(40)
    test_x, test_y = labelled(30, seed=1)
    test_x[12, 0] = float("inf")
    with pytest.raises(ValueError, match=r"layer '0' \(and 1 other tapped layer\) has "
                                         r"non-finite activations in test batch 1 "
                                         r"\(counting from 0\): the model diverged"):
        measure(small_net(), batched(x, y), batched(test_x, test_y), layers=["1", "0"])


def test_float32_overflow_of_finite_activations_names_precision_float64():
    """Finite inputs of ~1e20: float64 measures them; in float32 arithmetic their products
    overflow, and the error names the batch and the way out."""
    x, y = labelled(40)
    x = x * 1e20
    measure(small_net(), batched(x, y), layers=["input"])
    with pytest.raises(ValueError, match=r"layer 'input' has non-finite activations in train "
                                         r"batch 0 .*use precision float64"):
        measure(small_net(), batched(x, y), layers=["input"], precision="float32")


def test_infinite_weights_name_the_layer_after_them():
    net = small_net()
    with torch.no_grad():
        net[2].weight[0, 0] = float("inf")
    x, y = labelled(30)
    with pytest.raises(ValueError, match=r"layer '2' has non-finite activations in train batch 0"):
        measure(net, batched(x, y), layers=["input", "1", "2"])


def test_streaming_statistics_refuse_non_finite_features():
    h, y = torch.randn(6, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    means = ClassMeans(3)
    means.update(h, y)
    stats = SplitStats(means.compute())
    h[3, 1] = float("inf")
    stats.update(h, y)
    assert not stats.finite()
    with pytest.raises(ValueError, match="non-finite features"):
        stats.compute()
    means.update(h, y)
    assert not means.finite()
    with pytest.raises(ValueError, match="non-finite features"):
        means.compute()


def test_one_class_streaming_statistics_are_refused():
    with pytest.raises(ValueError, match="at least two classes, got 1"):
        ClassMeans(1)
    with pytest.raises(ValueError, match="at least two classes, got 1"):
        MeanGeometry.from_means(torch.zeros(1, 4, dtype=torch.float64))


def test_an_unknown_layer_lists_known_ones_and_a_close_match():
    net = nn.Sequential()
    for i in range(20):
        net.add_module(f"fc{i}", nn.Linear(4, 4))
    net.add_module("head", nn.Linear(4, 3))
    x, y = torch.randn(12, 4), torch.arange(12) % 3
    with pytest.raises(ValueError) as caught:
        measure(net, [(x, y)], layers=["fc2", "fc_2"])
    message = str(caught.value)
    assert message.startswith("model has no layer 'fc_2' (did you mean 'fc2'")
    assert "its layers are: input, fc0, fc1, fc2" in message
    assert "… (10 more: see model.named_modules())" in message


class WithSpare(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body, self.spare = small_net(), nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # self.spare never runs


def test_a_layer_that_does_not_run_is_named():
    x, y = labelled(20)
    with pytest.raises(ValueError, match="layer 'spare' did not run in the forward pass of "
                                         "train batch 0"):
        measure(WithSpare(), batched(x, y), layers=["body.1", "spare"])


def test_a_model_without_parameters_is_measured_on_the_cpu():
    x, y = labelled(30)
    model = nn.Sequential(nn.Flatten(), nn.Softmax(dim=1))  # neither parameters nor buffers
    table = measure(model, batched(x[:, :3], y), layers=["0"])
    assert set(table["layer"]) == {"0"} and len(table)


# --------------------------------------------------------------- from nclayers import measure

IMPORT_ORDERS = {
    "function first": """
        import sys
        import nclayers
        assert "torch" not in sys.modules  # import nclayers stays cheap
        from nclayers import measure, weight_spectra
        from nclayers.measurement import measure as direct, weight_spectra as spectra
        """,
    "module first": """
        import nclayers.measurement
        from nclayers.measurement import measure as direct, weight_spectra as spectra
        from nclayers import measure, weight_spectra
        """,
}


@pytest.mark.parametrize("order", IMPORT_ORDERS)
def test_from_nclayers_import_measure_gives_the_function_in_either_order(order):
    check = textwrap.dedent(IMPORT_ORDERS[order]) + textwrap.dedent("""
        import inspect
        import nclayers
        assert inspect.isfunction(measure) and measure is direct, measure
        assert nclayers.measure is direct and weight_spectra is spectra
        """)
    subprocess.run([sys.executable, "-c", check], check=True)


def test_check_config_names_the_line_of_a_yaml_error_and_passes_a_good_file(tmp_path):
    """`python -m nclayers check-config FILE`, what the README offers for a --configfile whose
    YAML Snakemake reports in its own words."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment: x\ntrain: {lr: [0.1\n")
    line = one_error(step("check-config", str(bad), cwd=tmp_path), "check-config", 1)
    assert f"{bad}, line 3, column 1: YAML syntax error" in line
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(tiny_config()))
    proc = step("check-config", str(good), cwd=tmp_path)
    assert proc.returncode == 0 and f"{good}: valid; experiment 'tiny' of 1 runs" in proc.stdout
    gone = one_error(step("check-config", "gone.yaml", cwd=tmp_path), "check-config", 1)
    assert "gone.yaml does not exist" in gone
