"""Every command the README, docs/*.md and the report's "Reproducing this report" show,
collected from the documents themselves and run exactly as written: the same words in the
same order, no flag added, in a copy of the project, from a shell as the README leaves it
(`make` without the environment on PATH; the Snakemake commands in the activated environment,
as "Using the workflow" says).

A command that cannot run here (a SLURM cluster, the 30-minute `make evidence`) or that runs
this very suite (`make test`) names the test or script that runs it as written instead; the
fast test below holds every documented command to one of the two, so that a new command in a
document cannot stay untested.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, VENV_BIN, without_venv

DOCUMENTS = ("README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")),
             "paper/report.tex")
COMMAND_WORDS = ("make", "snakemake", "python", "bash", "pip", "source", "export", ".venv/bin/")
FENCE = re.compile(r"^```(bash|sh|shell|console)?\n(.*?)^```", re.M | re.S)
VERBATIM = re.compile(r"\\(?:sub)?section\{Reproducing this report\}.*?\\begin\{verbatim\}\n(.*?)"
                      r"\\end\{verbatim\}", re.S)


def documented() -> list[tuple[str, str]]:
    """(document, command) for every command line of the documents' shell blocks (a fenced
    block marked bash or unmarked in Markdown, the verbatim block of the report's
    "Reproducing this report"): lines joined at a trailing backslash, a trailing comment cut,
    in the documents' order."""
    found = []
    for name in DOCUMENTS:
        text = (ROOT / name).read_text()
        blocks = ([m[1] for m in VERBATIM.finditer(text)] if name.endswith(".tex")
                  else [m[2] for m in FENCE.finditer(text)])
        for block in blocks:
            for line in re.sub(r"\\\n\s*", "", block).splitlines():
                command = re.sub(r"\s+#\s.*$", "", line).strip()
                if command.startswith(COMMAND_WORDS):
                    found.append((name, command))
    return found


@dataclass(frozen=True)
class Run:
    """A command run here, in the project's copy: ``before`` prepares it (files deleted or
    written), ``made`` lists files it must leave behind, and ``same_as`` runs the command with
    the documents' placeholders filled in (<experiment>, <name>)."""
    before: tuple[str, ...] = ()
    made: tuple[str, ...] = ()
    write: dict[str, str] = field(default_factory=dict)
    same_as: str | None = None
    activated: bool = True


@dataclass(frozen=True)
class Elsewhere:
    """A command run as written by another file (a test, CI's script): ``needle`` is in it."""
    where: str
    needle: str
    why: str


MINE = yaml.safe_dump(dict(yaml.safe_load((ROOT / ".test" / "config.yaml").read_text()),
                           experiment="mine"))
FIGURE = "results/default/figures/nc1_by_layer.pdf"
SMOKE_FIGURE = "results/rangamani2023-smoke/figures/rangamani2023/fig2_traces.pdf"
# How each documented command is tested, in the order the documents show them (the copy's
# results carry over from one to the next: `make run` first builds the default experiment).
HOW: dict[str, Run | Elsewhere] = {
    "make run": Run(made=("results/default/report.pdf",), activated=False),
    "make test": Elsewhere(".ci/run", "make test-all",
                           "it runs this suite; CI runs `make test-all`, which runs it first"),
    "snakemake --cores all": Run(),
    "snakemake --cores all --configfile my_experiment.yaml": Run(
        write={"my_experiment.yaml": MINE}, made=("results/mine/report.pdf",)),
    f"snakemake {FIGURE}": Run(before=(FIGURE,), made=(FIGURE,)),
    "snakemake results/default/tables/metrics.csv": Run(
        before=("results/default/tables/metrics.csv",),
        made=("results/default/tables/metrics.csv",)),
    "snakemake -n": Run(),
    "snakemake --report report.html": Run(made=("report.html",)),
    "snakemake --directory .test --cores all": Run(made=(".test/results/tiny/report.pdf",)),
    "snakemake --cores all --configfile workflow/presets/rangamani2023/smoke.yaml": Run(
        made=("results/rangamani2023-smoke/report.pdf",)),
    "make smoke": Elsewhere("tests/test_presets.py", '["make", "smoke"]',
                            "the slow tier's smoke fixture runs it (every smoke preset)"),
    "make evidence": Elsewhere(
        "tests/test_evidence.py", "def test_an_mnist_preset_builds_its_report_and_claims_on",
        "about 30 minutes (five presets on real MNIST, which it downloads); its parts are "
        "tested: every preset planned, the page written, one preset end to end"),
    "snakemake --profile profiles/slurm --configfile workflow/presets/rangamani2023/full.yaml":
        Elsewhere("tests/test_presets.py", '"--profile", str(ROOT / "profiles" / "slurm")',
                  "a GPU cluster's hours; the slow tier plans it with the same profile"),
    "snakemake --profile profiles/local": Run(),
    "make install && source .venv/bin/activate": Run(activated=False),
    "export SBATCH_ACCOUNT=myaccount SBATCH_PARTITION=gpu": Run(activated=False),
    "snakemake --profile profiles/slurm -n": Run(),
    "snakemake --profile profiles/slurm": Elsewhere(
        "tests/cluster/test_slurm.py", '"--profile", str(PROFILE)',
        "it submits to SLURM: the cluster tests run it on a real single-node SLURM, with the "
        "plugin's first status query brought forward"),
    f"snakemake {SMOKE_FIGURE} --configfile workflow/presets/rangamani2023/smoke.yaml": Run(
        before=(SMOKE_FIGURE,), made=(SMOKE_FIGURE,)),
    "snakemake --cores all --forceall": Run(made=("results/default/report.pdf",)),
    "snakemake results/<experiment>/figures/<name>.pdf": Run(
        before=(FIGURE,), made=(FIGURE,), same_as=f"snakemake {FIGURE}"),
}


def test_every_documented_command_is_run_as_written_here_or_elsewhere():
    commands = [command for _, command in documented()]
    assert "make run" in commands and "snakemake --cores all --forceall" in commands
    assert sorted(set(commands)) == sorted(HOW), "a documented command without its test in HOW"
    for command, how in HOW.items():
        if isinstance(how, Elsewhere):
            assert how.needle in (ROOT / how.where).read_text(), (command, how.where)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The project as a clone holds it (tracked and untracked-but-not-ignored files), its
    environment linked in, in a folder of its own; file times kept, so that make sees the
    environment as installed."""
    copy = tmp_path_factory.mktemp("project")
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for rel in files.splitlines():
        if (ROOT / rel).is_file():
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, copy / rel)
    (copy / ".venv").symlink_to(VENV_BIN.parent)
    # make must find the environment installed: else `make run` would reinstall ours from the
    # copy (`pip install -e` pointing it there)
    assert subprocess.run(["make", "-q", ".venv/.installed", ".venv/.installed-test"],
                          cwd=copy).returncode == 0, "the linked environment looks out of date"
    return copy


def shell(project: Path, activated: bool) -> dict:
    """A new user's environment: without ours on PATH; with the copy's activated if asked."""
    env = dict(os.environ, PATH=without_venv(os.environ["PATH"]))
    env.pop("VIRTUAL_ENV", None)
    if activated:  # what `source .venv/bin/activate` sets
        env.update(PATH=f"{project / '.venv' / 'bin'}{os.pathsep}{env['PATH']}",
                   VIRTUAL_ENV=str(project / ".venv"))
    return env


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c, how in HOW.items() if isinstance(how, Run)])
def test_documented_command_runs_as_written(project, command):
    how = HOW[command]
    for rel in how.before:
        (project / rel).unlink()
    for rel, text in how.write.items():
        (project / rel).write_text(text)
    proc = subprocess.run(["bash", "-c", how.same_as or command], cwd=project, text=True,
                          capture_output=True, env=shell(project, how.activated))
    assert proc.returncode == 0, f"{command}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    for rel in how.made:
        assert (project / rel).is_file() and (project / rel).stat().st_size > 0, (command, rel)
