"""Shared fixtures: a tiny copy of the default config and a helper that runs snakemake."""

from __future__ import annotations

import json
import os

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")  # as `python -m nclayers` does, before torch

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from nclayers.experiment import expand_runs

# Small models on 2 cores run ~10x faster on one thread (no OpenMP hand-offs), and the rules
# run with one thread too (`--threads`), so the tests do the same.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(**overrides) -> dict:
    """The default config, cut down to seconds: one seed, 3 epochs, a narrow net."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["experiment"] = "tiny"
    config["seeds"] = [0]
    config["architectures"]["mlp6"].update(depth=3, width=32)
    config["train"].update(epochs=3, checkpoints=[0, 3])
    config["device"] = "cpu"
    config["features"]["per_class"] = 10
    config.update(overrides)
    return config


def write_config(directory: Path, config: dict) -> Path:
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake_command(workdir: Path, *args: str, env: dict | None = None) -> tuple[list, dict]:
    """The command line and environment that run the real snakemake of this environment on the
    project's Snakefile in ``workdir`` (its jobs find this environment's python first)."""
    env = dict(os.environ if env is None else env)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
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


def straight_train_log(config: dict, run_dir: Path, out_dir: Path) -> pd.DataFrame:
    """The train log of the run in ``run_dir`` trained again without interruption, in a process
    of its own like the workflow's (in a long-lived test process BLAS may take other code
    paths, which is not the claim). The spec comes from its run.json, defaults filled in."""
    info = json.loads((run_dir / "run.json").read_text())
    spec = {key: info[key] for key in expand_runs(config)[info["run"]]}
    subprocess.run([sys.executable, "-m", "nclayers", "train", "--spec", json.dumps(spec),
                    "--out-dir", str(out_dir)], check=True, capture_output=True)
    return pd.read_csv(out_dir / "train_log.csv")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A complete run of the tiny config to the PDF; returns its working directory."""
    workdir = tmp_path_factory.mktemp("tiny")
    config = write_config(workdir, tiny_config())
    snakemake(workdir, "--cores", "2", "--configfile", str(config))
    return workdir
