"""One trainer at a time per run (runs.hold_run): a second one is refused at once, names the
holder and touches nothing; the real case is the train job left running by a Snakemake killed
on its own (not its process group), beside which the README's recovery starts a second one."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import (
    snakemake,
    snakemake_command,
    straight_train_log,
    tiny_config,
    write_config,
)

from nclayers import experiment, runs

RUN = "digits-mlp6-s0"


def long_config(epochs: int, checkpoints: list[int]) -> dict:
    """The tiny experiment with a wider net trained long enough to catch it mid-run."""
    config = tiny_config()
    config["architectures"]["mlp6"].update(depth=4, width=128)
    config["train"].update(epochs=epochs, checkpoints=checkpoints)
    return config


def train_process(spec: dict, out_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nclayers", "train", "--spec",
                             json.dumps(spec), "--out-dir", str(out_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def saved_epoch(run_dir: Path) -> int:
    try:
        state = torch.load(run_dir / runs.RESUME_DIR / "state.pt", weights_only=True)
        return state["epoch"]
    except (FileNotFoundError, RuntimeError, EOFError):
        return -1


def wait_for_epoch(run_dir: Path, epoch: int, alive, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while saved_epoch(run_dir) < epoch:
        assert alive(), "the trainer ended before it saved the state awaited"
        assert time.time() < deadline, "training made no progress"
        time.sleep(0.05)


def snapshot(directory: Path) -> dict:
    """Every file under ``directory``: inode, links, size, mtime and bytes."""
    return {str(p.relative_to(directory)): (p.stat().st_ino, p.stat().st_nlink,
                                            p.stat().st_size, p.stat().st_mtime_ns,
                                            p.read_bytes())
            for p in sorted(directory.rglob("*")) if p.is_file()}


def lock_held(run_dir: Path) -> bool:
    """Whether some process holds the run's lock now (the OS says; a zombie holds nothing)."""
    fd = os.open(run_dir / runs.LOCK_FILE, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_held_run_is_refused_before_anything_is_touched(tmp_path):
    spec = next(iter(experiment.expand_runs(tiny_config()).values()))
    (tmp_path / runs.RESUME_DIR).mkdir()
    (tmp_path / runs.RESUME_DIR / "state.pt").write_bytes(b"somebody else's state")
    with runs.hold_run(tmp_path):
        assert runs.lock_holder(tmp_path) == (os.getpid(), os.uname().nodename)
        before = snapshot(tmp_path)
        with pytest.raises(runs.RunLocked, match=rf"process {os.getpid()} on host .*"
                                                 rf"kill {os.getpid()}"):
            runs.train_run(spec, tmp_path, progress=False)
        assert snapshot(tmp_path) == before
    assert runs.lock_holder(tmp_path) is None  # released: the file says nobody holds it


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from nclayers import runs\n"
                               "with runs.hold_run(sys.argv[1]):\n"
                               "    print('held', flush=True); time.sleep(600)",
                               str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        assert lock_held(tmp_path) and runs.lock_holder(tmp_path)[0] == holder.pid
    finally:
        holder.kill()
        holder.wait()
    assert not lock_held(tmp_path)
    assert runs.lock_holder(tmp_path)[0] == holder.pid  # the file still names the dead one
    with runs.hold_run(tmp_path):  # but the OS released its lock with the process
        assert runs.lock_holder(tmp_path)[0] == os.getpid()


def test_second_trainer_process_is_refused_and_the_first_ends_intact(tmp_path):
    """Two real `python -m nclayers train` on one run directory: the second stops at once with
    the first's pid, changes no file, and the first ends bitwise as an uninterrupted run."""
    config = long_config(epochs=60, checkpoints=[0, 2, 60])
    spec = next(iter(experiment.expand_runs(config).values()))
    shared, straight = tmp_path / "shared", tmp_path / "straight"
    first, reference = train_process(spec, shared), None
    try:
        wait_for_epoch(shared, 3, lambda: first.poll() is None)
        # Hold the first still (it keeps its lock) so that any change is the second's doing.
        first.send_signal(signal.SIGSTOP)
        before = snapshot(shared)
        assert runs.lock_holder(shared) == (first.pid, os.uname().nodename)
        start = time.perf_counter()
        second = subprocess.run([sys.executable, "-m", "nclayers", "train", "--spec",
                                 json.dumps(spec), "--out-dir", str(shared)],
                                capture_output=True, text=True, timeout=120)
        seconds = time.perf_counter() - start
        assert snapshot(shared) == before
        assert second.returncode != 0 and second.stdout == ""
        message = second.stderr.strip()
        assert "\n" not in message and "Traceback" not in message, message
        assert f"process {first.pid} on host" in message and f"kill {first.pid}" in message
        assert seconds < 60, f"the refusal took {seconds:.0f} s"
        first.send_signal(signal.SIGCONT)
        reference = train_process(spec, straight)
        out, _ = first.communicate(timeout=600)
        assert first.returncode == 0, out.decode()[-2000:]
        assert b"resuming" not in out
        reference.communicate(timeout=600)
    finally:
        for proc in (first, reference):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    a, b = (pd.read_csv(d / "train_log.csv") for d in (straight, shared))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert not (shared / runs.RESUME_DIR).exists()
    assert runs.lock_holder(shared) is None and not lock_held(shared)


@pytest.mark.slow
def test_orphan_of_a_killed_snakemake_keeps_its_run(tmp_path):
    """kill -9 of Snakemake alone leaves its train job running; the README's recovery then
    starts a second trainer, which must stop at once naming the orphan, leave `.resume/` to it,
    and a rerun after the orphan ended must give the numbers of an uninterrupted run."""
    config = long_config(epochs=200, checkpoints=[0, 20, 200])
    path = write_config(tmp_path, config)
    target = f"results/tiny/runs/{RUN}/run.json"
    run_dir = tmp_path / "results/tiny/runs" / RUN
    resume = run_dir / runs.RESUME_DIR
    train_log = tmp_path / f"results/tiny/logs/train/{RUN}.log"
    cmd, env = snakemake_command(tmp_path, target, "--cores", "1", "--configfile", str(path))
    workflow = subprocess.Popen(cmd, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    orphan = None
    try:
        wait_for_epoch(run_dir, 25, lambda: workflow.poll() is None)
        os.kill(workflow.pid, signal.SIGKILL)  # Snakemake only, not its process group
        workflow.wait()
        orphan, host = runs.lock_holder(run_dir)
        assert host == os.uname().nodename
        assert running(orphan) and lock_held(run_dir), "the train job died with Snakemake"
        assert b"nclayers" in Path(f"/proc/{orphan}/cmdline").read_bytes()
        assert (run_dir / "checkpoints/epoch20.pt").exists()

        # The README's recovery, while the orphan still trains. It is held still meanwhile (it
        # keeps its lock), so that on a slow machine it cannot end first, and so that any change
        # in .resume/ would be the rerun's doing.
        os.kill(orphan, signal.SIGSTOP)
        before = snapshot(resume)
        snakemake(tmp_path, "--unlock", "--configfile", str(path))
        rerun = snakemake(tmp_path, target, "--cores", "1", "--rerun-incomplete",
                          "--configfile", str(path), check=False)
        assert rerun.returncode != 0
        refusal = train_log.read_text(errors="replace")
        assert f"process {orphan} on host" in refusal and f"kill {orphan}" in refusal, refusal
        assert "resuming" not in refusal and "Traceback" not in refusal, refusal
        # Snakemake deleted the job's declared outputs before it started the second trainer
        # (its doing, out of reach): the checkpoints in .resume/ lost their second link. The
        # second trainer changed nothing there and re-linked nothing.
        assert not (run_dir / "checkpoints/epoch20.pt").exists()
        after = snapshot(resume)
        assert after.keys() == before.keys()
        for name, (inode, links, *rest) in before.items():
            assert after[name] == (inode, 1 if name.startswith("epoch") else links, *rest), name
        assert runs.lock_holder(run_dir) == (orphan, host) and lock_held(run_dir)
        epoch = saved_epoch(run_dir)
        os.kill(orphan, signal.SIGCONT)
        wait_for_epoch(run_dir, epoch + 1, lambda: running(orphan))  # it trains on

        deadline = time.time() + 600
        while lock_held(run_dir):
            assert time.time() < deadline, "the orphan never finished"
            time.sleep(0.2)
        # The orphan ended its run with every declared output (it re-linked the checkpoints
        # Snakemake had deleted) and removed .resume/; the refused job left no incomplete
        # marker, so the rerun has nothing to do and keeps the orphan's results.
        assert not resume.exists()
        for name in ("checkpoints/epoch0.pt", "checkpoints/epoch20.pt",
                     "checkpoints/epoch200.pt", "train_log.csv", "run.json"):
            assert (run_dir / name).exists(), name
        final = snakemake(tmp_path, target, "--cores", "1", "--rerun-incomplete",
                          "--configfile", str(path))
        assert "Nothing to be done" in final.stdout + final.stderr
    finally:
        with contextlib.suppress(ProcessLookupError):  # the orphan and its shell, if left
            os.killpg(workflow.pid, signal.SIGKILL)
        if orphan is not None and running(orphan):
            os.kill(orphan, signal.SIGKILL)
    assert json.loads((run_dir / "run.json").read_text())["final_epoch"] == 200
    straight = straight_train_log(config, run_dir, tmp_path / "straight")
    pd.testing.assert_frame_equal(straight, pd.read_csv(run_dir / "train_log.csv"),
                                  check_exact=True)


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_lock_that_is_not_a_plain_file_is_refused_and_left_alone(tmp_path, kind):
    """A .train.lock that is a link is neither followed nor truncated (the file it points to
    keeps its content), and a FIFO does not block: the trainer stops, saying what to do."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    precious = tmp_path / "precious.txt"
    precious.write_text("finished results\n")
    if kind == "symlink":
        (run_dir / runs.LOCK_FILE).symlink_to(precious)
    else:
        os.mkfifo(run_dir / runs.LOCK_FILE)
    with pytest.raises(runs.RunLocked, match="not a plain file.*remove it"), \
            runs.hold_run(run_dir):
        pass
    assert precious.read_text() == "finished results\n"


@pytest.mark.slow
def test_an_interrupted_snakemake_keeps_the_training_it_waited_for(tmp_path):
    """`kill -INT` of Snakemake's pid alone: it waits for its train job, which finishes, then
    marks the job's outputs incomplete. The README's `--rerun-incomplete` then publishes the
    kept training again (runs/<run>/.finished) instead of training from scratch."""
    config = long_config(epochs=150, checkpoints=[0, 20, 150])
    path = write_config(tmp_path, config)
    target = f"results/tiny/runs/{RUN}/run.json"
    run_dir = tmp_path / "results/tiny/runs" / RUN
    cmd, env = snakemake_command(tmp_path, target, "--cores", "1", "--configfile", str(path))
    workflow = subprocess.Popen(cmd, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_epoch(run_dir, 10, lambda: workflow.poll() is None)
        os.kill(workflow.pid, signal.SIGINT)  # Snakemake only, not its process group
        workflow.wait(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(workflow.pid, signal.SIGKILL)
    kept = (run_dir / runs.FINISHED_DIR / "train_log.csv").read_bytes()
    assert json.loads((run_dir / runs.FINISHED_DIR / "run.json").read_text())[
        "final_epoch"] == 150
    # Snakemake marks the job incomplete when the interrupt outran its bookkeeping (seen here,
    # not on every machine); then the rerun publishes the kept training, else it has nothing
    # to do. Either way nothing is trained again.
    rerun = snakemake(tmp_path, target, "--cores", "1", "--rerun-incomplete", "--configfile",
                      str(path))
    log = (tmp_path / f"results/tiny/logs/train/{RUN}.log").read_text()
    if "Nothing to be done" not in rerun.stdout + rerun.stderr:
        assert "published again" in log, log
    assert "resuming" not in log, log
    assert (run_dir / "train_log.csv").read_bytes() == kept
