"""Shared fixtures: the tiny experiment of .test/, built once per session and read-only for
every test (a test that changes results works on a copy: :func:`copy_experiment`), and a helper
that runs snakemake."""

from __future__ import annotations

import json
import os
import re
import shutil

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")  # as `python -m nclayers` does, before torch

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from filelock import FileLock

from nclayers.experiment import expand_runs
from nclayers.preflight import prepare

# Small models on 2 cores run ~10x faster on one thread (no OpenMP hand-offs), and the rules
# run with one thread too (`--threads`), so the tests do the same.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]


def assert_on_page(fig, what: str = "figure") -> None:
    """Nothing of ``fig`` is drawn beyond its page: the workflow saves a figure as it is laid
    out, without ``bbox_inches="tight"`` (``cli._save``), so what sticks out is cut off."""
    width, height = fig.get_size_inches()
    drawn = fig.get_tightbbox(fig._get_renderer())
    assert drawn.x0 >= -0.02 and drawn.y0 >= -0.02 and drawn.x1 <= width + 0.02 \
        and drawn.y1 <= height + 0.02, f"{what}: drawn beyond the page, {drawn} in"


def tiny_config(**overrides) -> dict:
    """The tiny experiment of .test/config.yaml (the default one cut down to seconds: one seed,
    3 epochs, a narrow net) with the schema's defaults filled in, as the workflow sees it, and
    top-level keys replaced by ``overrides``."""
    config = prepare(yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())).config
    config.update(overrides)
    return config


def write_config(directory: Path, config: dict) -> Path:
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


VENV_BIN = Path(sys.executable).parent


def without_venv(path: str) -> str:
    """``path`` (a PATH value) without this environment's bin folder: a new user's shell."""
    return os.pathsep.join(p for p in path.split(os.pathsep)
                           if p and Path(p).resolve() != VENV_BIN.resolve())


def snakemake_command(workdir: Path, *args: str, env: dict | None = None) -> tuple[list, dict]:
    """The command line and environment that run this environment's ``snakemake`` script
    (``.venv/bin/snakemake`` as the README says) on the project's Snakefile in ``workdir``,
    from a shell whose PATH lacks the environment: the jobs must find its python anyway."""
    env = dict(os.environ if env is None else env)
    env["PATH"] = without_venv(env["PATH"])
    env.pop("VIRTUAL_ENV", None)
    cmd = [str(VENV_BIN / "snakemake"), "-s", str(ROOT / "Snakefile"),
           "--directory", str(workdir), *args]
    return cmd, env


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real snakemake of this environment on the project's Snakefile in ``workdir``."""
    cmd, env = snakemake_command(workdir, *args)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def planned_jobs(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts from the 'Job stats' table of a dry run."""
    text = proc.stdout + proc.stderr
    stats = text.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)
            if m[1] != "total"}


def straight_train_log(config: dict, run_dir: Path, out_dir: Path) -> pd.DataFrame:
    """The train log of the run in ``run_dir`` trained again without interruption, in a process
    of its own like the workflow's (in a long-lived test process BLAS may take other code
    paths, which is not the claim). The spec comes from its run.json, defaults filled in."""
    info = json.loads((run_dir / "run.json").read_text())
    spec = {key: info[key] for key in expand_runs(config)[info["run"]]}
    subprocess.run([sys.executable, "-m", "nclayers", "train", "--spec", json.dumps(spec),
                    "--out-dir", str(out_dir)], check=True, capture_output=True)
    return pd.read_csv(out_dir / "train_log.csv")


def copy_experiment(source: Path, dest: Path) -> Path:
    """A copy of the finished experiment in ``source`` (its config, its results and
    Snakemake's records of them, modification times kept: nothing in it is out of date) in
    ``dest``, for a test that changes results; returns ``dest``."""
    shutil.copytree(source / "results", dest / "results", symlinks=True)
    shutil.copytree(source / ".snakemake", dest / ".snakemake", symlinks=True,
                    ignore=shutil.ignore_patterns("locks", "log", "incomplete"))
    shutil.copy2(source / "config.yaml", dest / "config.yaml")
    return dest


def _fingerprint(folder: Path) -> dict[str, list[int]]:
    """Every file under ``folder`` with its size and modification time."""
    return {str(p.relative_to(folder)): [p.stat().st_size, p.stat().st_mtime_ns]
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _shared_state(workdir: Path) -> dict:
    """What a test must not change in a shared experiment: its results and Snakemake's
    records of them (which decide what a copy plans)."""
    return {name: _fingerprint(workdir / name) for name in ("results", ".snakemake/metadata")}


def shared_folder(tmp_path_factory, name: str, build) -> Path:
    """A folder that ``build(folder)`` fills once per test session: with pytest-xdist, the
    first worker to ask builds it (under a file lock) and the others wait and read it."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by the workers of this session
    folder, done = base / name, base / f"{name}.built"
    with FileLock(str(base / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed in another worker
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session", autouse=True)
def data_files_cache(tmp_path_factory):
    """The data files' facts of this test session in a file of its own (NCLAYERS_DATA_CACHE,
    which snakemake and its jobs inherit), shared by its pytest-xdist workers: the tests
    neither read what the user's cache holds nor leave their temporary files' entries there."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by the workers of this session
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NCLAYERS_DATA_CACHE", str(base / "datafiles.json"))
        # and the plans of its snakemake calls (nclayers.parsecache), in a folder of its own
        patch.setenv("NCLAYERS_PARSE_CACHE", str(base / "plans"))
        yield base / "datafiles.json"


def _build_tiny(workdir: Path) -> None:
    shutil.copy(ROOT / ".test" / "config.yaml", workdir / "config.yaml")
    snakemake(workdir, "--cores", "2")
    (workdir / "fingerprint.json").write_text(json.dumps(_shared_state(workdir)))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A complete run of the tiny experiment to the PDF, as the README runs it by hand
    (``snakemake --directory .test --cores all``, on a copy of .test/); returns its working
    directory. Built once per session and read-only: tests that change results change a copy
    (:func:`copy_experiment`); that no test changed it is checked at the end."""
    workdir = shared_folder(tmp_path_factory, "tiny", _build_tiny)
    yield workdir
    built = json.loads((workdir / "fingerprint.json").read_text())
    assert _shared_state(workdir) == built, \
        "a test changed the shared tiny run's results: copy it first (copy_experiment)"


def bands_at(ax, x: float) -> list[tuple[float, float]]:
    """(low, high) at ``x`` of each ± sd band (fill_between's polygon) of ``ax``: what
    ``query.mean_line`` drew there."""
    from matplotlib.collections import PolyCollection

    out = []
    for band in (c for c in ax.collections if isinstance(c, PolyCollection)):
        vertices = band.get_paths()[0].vertices
        ys = vertices[np.isclose(vertices[:, 0], x), 1]
        out.append((ys.min(), ys.max()))
    return out
