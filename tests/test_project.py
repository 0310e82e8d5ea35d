"""The project as a whole: one place of dependencies, and nothing that points outside it."""

from __future__ import annotations

import re
import subprocess
import tomllib

import yaml
from conftest import ROOT

# Needed by the process that runs Snakemake, not by the jobs' `python -m nclayers`.
RUNNER_ONLY = {"snakemake", "snakemake-executor-plugin-slurm", "jsonschema"}


def pins(requirements: list[str]) -> dict[str, str]:
    return dict(re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", r).groups() for r in requirements)


def test_conda_env_mirrors_pyproject():
    """envs/nclayers.yaml (what `--sdm conda` jobs get) pins what pyproject.toml pins, with
    the same versions, less the packages of the Snakemake process itself, plus the `bert` extra
    (the GLUE preset's jobs need it)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "envs" / "nclayers.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    needed = [*project["dependencies"], *project["optional-dependencies"]["bert"]]
    wanted = {k: v for k, v in pins(needed).items() if k not in RUNNER_ONLY}
    assert pins([p for p in pip if "==" in p]) == wanted
    assert f"python={project['requires-python'].removeprefix('>=')}" in env["dependencies"]


def test_nothing_points_outside_the_repository():
    """No tracked file names a machine path or a design file outside the repository."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    outside = re.compile(r"/work/|/home/|/root/|DESIGN\.md|\.\./shared/DESIGN")
    offenders = []
    for name in files:
        path = ROOT / name
        if path.suffix in {".py", ".md", ".smk", ".yaml", ".tex", ".rst", ".sh", ".toml"} or \
                name in ("Snakefile", "Makefile"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if outside.search(line) and name != "tests/test_project.py":
                    offenders.append(f"{name}:{number}: {line.strip()}")
    assert offenders == []
