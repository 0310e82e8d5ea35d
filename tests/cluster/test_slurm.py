"""The SLURM profile against a real single-node SLURM (tests/cluster/slurm.sh), not a mock.

Needs root and the Debian packages that `bash tests/cluster/slurm.sh install` installs; without
them the tests are skipped with the reason, unless NCLAYERS_REQUIRE_CLUSTER=1 (CI) makes that
a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import ROOT, snakemake_command, straight_train_log, tiny_config, write_config

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SCRIPT = Path(__file__).with_name("slurm.sh")
PROFILE = ROOT / "profiles" / "slurm"
DAEMONS = ["munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd"]
RUN = "digits-mlp6-s0"
SINCE = (datetime.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")  # sacct -S


def _unavailable() -> str | None:
    if sys.platform != "linux":
        return "SLURM runs on Linux only"
    if os.geteuid() != 0:
        return "starting SLURM needs root"
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        script = SCRIPT.relative_to(ROOT)
        return f"{', '.join(missing)} missing: run `bash {script} install` as root"
    return None


UNAVAILABLE = _unavailable()
REQUIRED = os.environ.get("NCLAYERS_REQUIRE_CLUSTER") == "1"
if UNAVAILABLE and not REQUIRED:  # as a mark, so that no other fixture (a local run) starts
    pytestmark.append(pytest.mark.skip(reason=UNAVAILABLE))


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running single-node SLURM for this module; stopped (and checked stopped) after it."""
    if UNAVAILABLE:
        pytest.fail(f"NCLAYERS_REQUIRE_CLUSTER=1 but SLURM cannot run here: {UNAVAILABLE}")
    state = tmp_path_factory.mktemp("slurm")
    try:
        start = subprocess.run(["bash", str(SCRIPT), "start", str(state)], capture_output=True,
                               text=True, timeout=300)
    except subprocess.TimeoutExpired as timeout:
        start = subprocess.CompletedProcess(timeout.cmd, -1, timeout.stdout, timeout.stderr)
    if start.returncode != 0:
        subprocess.run(["bash", str(SCRIPT), "stop", str(state)], capture_output=True)
        pytest.fail(f"SLURM did not start:\n{start.stdout}\n{start.stderr}")
    yield dict(os.environ, SLURM_CONF=str(state / "slurm.conf"))
    subprocess.run(["bash", str(SCRIPT), "stop", str(state)], check=True, timeout=120)
    left = subprocess.run(["pgrep", "-a", "-x", "|".join([*DAEMONS[2:], "slurmstepd"])],
                          capture_output=True, text=True)
    assert left.stdout == "", f"SLURM daemons still running after stop: {left.stdout}"


def _scheduler_state(env: dict) -> str:
    """What the scheduler says, for failure messages."""
    out = []
    for cmd in (["squeue"],
                ["sacct", "-a", "-X", "-S", SINCE, "-o", "JobID,State,Comment%50,WorkDir%40"],
                ["sinfo"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        out.append(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return "\n".join(out)


@pytest.fixture
def start_profile_run(slurm):
    """Starts snakemake --profile profiles/slurm in a directory, in a session of its
    own; whatever is still running at the end of the test is killed, its jobs cancelled."""
    started = []

    def start(workdir: Path, env: dict, *args: str) -> subprocess.Popen:
        cmd, env = snakemake_command(
            workdir, "--profile", str(PROFILE),
            # The plugin waits 40 s before its first status query; no queue to spare here.
            "--slurm-init-seconds-before-status-checks", "3", *args, env=env)
        with open(workdir / "snakemake.out", "w") as log:
            started.append(subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True))
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            _kill(proc, slurm)


def _kill(proc: subprocess.Popen, env: dict) -> None:
    """Kill a snakemake run and its session, and cancel the jobs it left in the queue."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    subprocess.run(["scancel", "--user", "root"], env=env)


def finish(proc: subprocess.Popen, workdir: Path, env: dict, timeout: float) -> None:
    """Wait for the run; a run that neither ends nor fails in time is killed and reported with
    the scheduler's view, instead of hanging the test suite (the plugin waits silently when
    job status queries fail)."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc, env)
        pytest.fail(f"the SLURM run did not finish within {timeout:.0f} s; are job status "
                    f"queries answered?\n{_tail(workdir)}\n{_scheduler_state(env)}")
    assert proc.returncode == 0, f"the SLURM run failed:\n{_tail(workdir)}"


def _tail(workdir: Path) -> str:
    return (workdir / "snakemake.out").read_text()[-4000:]


def slurm_jobs(workdir: Path, env: dict) -> pd.DataFrame:
    """The jobs sacct recorded for ``workdir``: id, state, rule, partition, account and the
    memory, time and CPUs they asked for."""
    return _job_table(["sacct", "-a", "-X", "-n", "-P", "-S", SINCE, "-o",
                       "JobID,State,Comment,WorkDir,Partition,Account,ReqMem,Timelimit,"
                       "AllocCPUS"],
                      ["id", "state", "comment", "workdir", "partition", "account", "mem",
                       "time", "cpus"], workdir, env)


def running_jobs(workdir: Path, env: dict) -> pd.DataFrame:
    """squeue's running jobs of ``workdir`` (sacct has the comment only once a job ends)."""
    return _job_table(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k|%Z"],
                      ["id", "comment", "workdir"], workdir, env)


def _job_table(cmd: list[str], columns: list[str], workdir: Path, env: dict) -> pd.DataFrame:
    """The '|'-separated lines of ``cmd`` as a table, the jobs of ``workdir`` only, with the
    rule that the plugin wrote into each job's comment."""
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    jobs = pd.DataFrame([line.split("|") for line in out.splitlines() if line], columns=columns)
    jobs = jobs[jobs["workdir"] == str(workdir)].copy()
    jobs["rule"] = jobs["comment"].str.extract(r"^rule_([a-z_]+?)_wildcards")[0]
    return jobs


def test_tiny_workflow_through_slurm_equals_local(slurm, start_profile_run, tiny_run, tmp_path):
    """Every heavy job goes through sbatch, sacct has them COMPLETED, and the numbers are
    bitwise those of a local run. SBATCH_ACCOUNT/SBATCH_PARTITION are honoured (the plugin
    would otherwise pass the default partition explicitly)."""
    config = tiny_config()
    write_config(tmp_path, config)
    env = dict(slurm, SBATCH_ACCOUNT="other", SBATCH_PARTITION="alt")
    finish(start_profile_run(tmp_path, env), tmp_path, env, timeout=900)

    results = tmp_path / "results" / "tiny"
    assert (results / "report.pdf").read_bytes()[:5] == b"%PDF-"
    jobs = slurm_jobs(tmp_path, env)
    assert sorted(jobs["rule"]) == ["features", "measure", "train"], jobs
    assert (jobs["state"] == "COMPLETED").all(), jobs
    assert (jobs["partition"] == "alt").all() and (jobs["account"] == "other").all(), jobs
    # The profile's per-rule resources reached sbatch.
    asked = {rule: (mem, time, cpus) for rule, mem, time, cpus
             in jobs[["rule", "mem", "time", "cpus"]].itertuples(index=False)}
    assert asked == {"train": ("16000M", "12:00:00", "1"), "measure": ("16000M", "02:00:00", "1"),
                     "features": ("8000M", "02:00:00", "1")}, jobs

    local = tiny_run / "results" / "tiny"
    for table in ["tables/metrics.csv", f"runs/{RUN}/train_log.csv",
                  f"features/{RUN}/epoch3/clusters.csv"]:
        pd.testing.assert_frame_equal(pd.read_csv(results / table), pd.read_csv(local / table),
                                      check_exact=True, obj=table)


def test_cancelled_training_is_resubmitted_and_resumes(slurm, start_profile_run, tmp_path):
    """scancel a training job mid-run: Snakemake resubmits it (retries in the profile) and the
    new job continues from the saved state, ending where an uninterrupted run ends."""
    config = tiny_config()
    config["architectures"]["mlp6"].update(depth=4, width=128)
    config["train"].update(epochs=200, checkpoints=[0, 20, 200])  # long enough to catch
    write_config(tmp_path, config)
    run_dir = tmp_path / "results" / "tiny" / "runs" / RUN
    proc = start_profile_run(tmp_path, slurm, str(run_dir.relative_to(tmp_path) / "run.json"))

    deadline = time.time() + 300
    while True:
        assert proc.poll() is None, f"the run ended before its cancel:\n{_tail(tmp_path)}"
        assert time.time() < deadline, f"no state saved\n{_scheduler_state(slurm)}"
        try:
            state = torch.load(run_dir / ".resume/state.pt", weights_only=True)
            if state["epoch"] >= 25:
                break
        except (FileNotFoundError, RuntimeError, EOFError):
            pass
        time.sleep(0.2)
    running = running_jobs(tmp_path, slurm)
    assert list(running["rule"]) == ["train"], running
    subprocess.run(["scancel", running["id"].iloc[0]], env=slurm, check=True)
    finish(proc, tmp_path, slurm, timeout=600)

    jobs = slurm_jobs(tmp_path, slurm)
    # sacct says "CANCELLED by <uid>"
    assert jobs["state"].str.split().str[0].tolist() == ["CANCELLED", "COMPLETED"], jobs
    # No SBATCH_* variables: the default partition and root's default account.
    assert (jobs["partition"] == "main").all() and (jobs["account"] == "nclayers").all(), jobs
    log = (tmp_path / f"results/tiny/logs/train/{RUN}.log").read_text()
    assert f"resuming {RUN} after epoch" in log
    straight = straight_train_log(config, run_dir, tmp_path / "straight")
    pd.testing.assert_frame_equal(straight, pd.read_csv(run_dir / "train_log.csv"),
                                  check_exact=True)
