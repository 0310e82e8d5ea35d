"""Damaged files inside a finished experiment: the job that reads one fails with a message
naming the file (and line) and the fix, and the files it did not need stay as they were."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import copy_experiment, snakemake

RUN = Path("results/tiny/runs/digits-mlp6-s0")


@pytest.fixture
def finished(tiny_run, tmp_path) -> Path:
    return copy_experiment(tiny_run, tmp_path)


@pytest.mark.slow
def test_a_truncated_checkpoint_names_itself_and_the_fix(finished):
    checkpoint = finished / RUN / "checkpoints" / "epoch3.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    train_log = (finished / RUN / "train_log.csv").read_bytes()
    # A file changed inside the train job's output folder reruns nothing by itself: the
    # measure job that reads it is forced, as after a disk fault the user notices.
    proc = snakemake(finished, "--cores", "1", "--keep-going", "--forcerun", "measure",
                     check=False)
    assert proc.returncode != 0
    log = (finished / "results/tiny/logs/measure/digits-mlp6-s0.log").read_text()
    assert f"cannot read checkpoint {RUN / 'checkpoints' / 'epoch3.pt'}" in log, log
    fix = f"snakemake --cores all --forcerun {RUN / 'checkpoints'}"
    assert f"rebuild it, and what was computed from it, with `{fix}`" in log, log
    assert "Traceback" not in log, log
    assert (finished / RUN / "train_log.csv").read_bytes() == train_log  # not the train job's
    snakemake(finished, *fix.split()[1:])  # the fix the message gives
    assert (finished / RUN / "checkpoints" / "epoch3.pt").stat().st_size > 1000


def test_an_edited_metrics_csv_names_the_file_and_line(finished):
    table = finished / RUN / "metrics.csv"
    lines = table.read_text().splitlines()
    lines[3] = ",".join(lines[3].split(",")[:-1] + ["lots"])
    table.write_text("\n".join(lines) + "\n")
    proc = snakemake(finished, "--cores", "1", check=False)
    assert proc.returncode != 0
    log = (finished / "results/tiny/logs/aggregate/metrics.log").read_text()
    assert f"{RUN / 'metrics.csv'}, line 4: value = 'lots' is not a number" in log
    assert "Traceback" not in log, log
