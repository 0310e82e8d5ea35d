"""The papers' presets (workflow/presets/<paper>/): the full ones plan the paper's runs per
group with the SLURM profile, and `make smoke` builds every smoke preset's report with its
paper's figures and claims, as CI runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, snakemake, without_venv

from nclayers.vocabulary import PAPER_FIGURES, PAPER_TABLES

PRESETS = ROOT / "workflow" / "presets"
PAPERS = sorted(p.name for p in PRESETS.iterdir() if (p / "smoke.yaml").exists())


def planned_runs_per_group(workdir: Path, preset: Path) -> tuple[Counter, dict[str, set]]:
    """The train jobs ``snakemake -n`` plans with the SLURM profile, counted per group (an
    explicit group prefixes its run ids), and each group's seeds (a run id ends in ``-s<seed>``)."""
    proc = snakemake(workdir, "-n", "--profile", str(ROOT / "profiles" / "slurm"),
                     "--configfile", str(preset))
    runs = re.findall(r"rule train:\n(?:\s+\S.*\n)*?\s+wildcards: run=(\S+)", proc.stdout)
    assert runs, proc.stdout[-2000:]
    seeds: dict[str, set] = {}
    for run in runs:
        seeds.setdefault(run.split("-")[0], set()).add(int(re.search(r"-s(\d+)$", run)[1]))
    return Counter(run.split("-")[0] for run in runs), seeds


# The runs each full preset plans per group and seed, as the paper's design implies; every group
# trains FULL_SEEDS (no paper states a number of seeds but Lindegaard's grid, 3).
FULL_SEEDS = {0, 1, 2}
FULL_RUNS = {
    "synthesis": {
        # one group per recipe: MNIST, FashionMNIST, CIFAR10 × MLP, ResNet18 × 3 lr; mse_step
        # also the MLP with its top k = 1, 3, 5, 7, 9 layers fixed to ETFs (× 3 lr)
        "mse_onecycle": 3 * 2 * 3,
        "mse_step": 3 * (2 + 5) * 3,
        "ce_step_aug": 3 * 2 * 3,
        "ce_step": 3 * 2 * 3,
        "svsl_step": 3 * 2 * 3,
        # Q1's one-factor contrasts: ce_step with the loss, the schedule, augmentation changed
        "mse_ce_step": 3 * 2 * 3,
        "ce_onecycle": 3 * 2 * 3,
        "ce_step_augment": 3 * 2 * 3,
    },
    "rangamani2023": {
        # MNIST, FashionMNIST, SVHN, CIFAR10 × 8 log-spaced lr (the free MLP of Figs. 2–6)
        "mlp": 4 * 8,
        # Fig. 7, the authors' fixed_etfs_expt/: one fixed lr per dataset, k = 0…9 top layers
        # fixed to ETFs (0: our baseline)
        "etf_mnist": 10,
        "etf_fashion_mnist": 10,
        "etf_cifar10": 10,
        "convnet": 4 * 8,
        "resnet": 4 * 8,  # ResNet18 on MNIST and FashionMNIST, 34 on SVHN, 50 on CIFAR10
    },
    "parker2023": {
        "mlp": 5 * 3,  # MLP6 on MNIST, FashionMNIST, SVHN, CIFAR10, CIFAR100 × 3 activations
        "conv": 5 * 2 * 3,  # VGG11 and ResNet18 on the 5 datasets × 3 activations
    },
    "galanti2022": {
        "mlp_depth": 5,  # MLP-d-100, d = 2, 3, 4, 8, 16 on CIFAR10 (Fig. 1)
        "convnet400_depth": 5,  # ConvNet-d-400, d = 3, 4, 5, 8, 16 (Fig. 2)
        "convnet100_depth": 5,  # ConvNet-d-100 (Fig. 6)
        "mlp_noise": 4,  # MLP-10-500 × 0, 25, 50, 75 % random labels (Fig. 3)
        "convnet_noise": 4,  # ConvNet-10-500 × the same (Fig. 4)
        "resnet18": 2,  # ResNet-18 on CIFAR10, CIFAR100, augmented (Fig. 5)
        "resnet18_plain": 3,  # on MNIST, SVHN, STL10
    },
    "lindegaard2023": {
        "sweep": 4 * 2 * 11,  # 4 datasets × MLP-10, ConvNet-20 × 11 lr (§3.3)
        "sweep_resnet": 4 * 11,  # ResNet50 with its own weight decay
        "grid": 2 * 11 * 3,  # CIFAR10, MLP and ConvNet × lr × 3 wd (Fig. 4.2.1: 3 seeds)
        "grid_resnet": 11 * 3,
        "features": 1,  # the §4.3 MLP-10 on CIFAR10, 500 epochs
    },
    "benshaul2022": {
        # one group per dataset (Table 2's SVSL setting) × CE and SVSL (§6.2); ResNet18 on the
        # first three, ResNet50 on CIFAR100 and STL10 (§5.2)
        "mnist": 2, "fashion_mnist": 2, "cifar10": 2, "cifar100": 2, "stl10": 2,
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("paper", sorted(FULL_RUNS))
def test_full_preset_plans_the_papers_runs_per_group(paper, tmp_path):
    """With the SLURM profile; the datasets' files are not here, so the plan lets torchvision
    download them (data.download), which the dry run does not do."""
    config = yaml.safe_load((PRESETS / paper / "full.yaml").read_text())
    config["data"]["download"] = True
    preset = tmp_path / "full.yaml"
    preset.write_text(yaml.safe_dump(config))
    planned, seeds = planned_runs_per_group(tmp_path, preset)
    assert planned == Counter({group: n * len(FULL_SEEDS) for group, n in FULL_RUNS[paper].items()})
    assert seeds == dict.fromkeys(FULL_RUNS[paper], FULL_SEEDS)


@pytest.mark.slow
def test_glue_preset_plans_ce_and_svsl_per_task_without_fetching(tmp_path, monkeypatch):
    """benshaul2022's NLP part: CE and SVSL on each of the four GLUE tasks; planning it neither
    needs GLUE's files nor fetches bert-base-uncased (the checks read its config only where it
    is cached)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing cached, no hub
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    planned, seeds = planned_runs_per_group(tmp_path, PRESETS / "benshaul2022" / "glue.yaml")
    assert planned == Counter({"cola": 6, "sst2": 6, "mrpc": 6, "rte": 6})  # CE, SVSL × 3 seeds
    assert seeds == dict.fromkeys(planned, FULL_SEEDS)
    assert not (tmp_path / "data").exists() and not (tmp_path / "hf").exists()


@pytest.mark.parametrize("paper", ["lindegaard2023", "synthesis"])
def test_a_fresh_dry_run_plans_the_papers_that_read_the_feature_analysis(paper, tmp_path):
    """Before select_best has run (a checkpoint), the paper figures' feature inputs are
    deferred; the plan, with its shell commands printed, must still go through."""
    proc = snakemake(tmp_path, "-n", "-p", "--configfile",
                     str(PRESETS / paper / "smoke.yaml"))
    assert "paper_figure" in proc.stdout + proc.stderr


def test_every_paper_with_a_section_has_its_presets():
    assert sorted(PAPER_FIGURES) == PAPERS


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[Path, str]:
    """`make smoke` (the README's command) with its results in a folder of its own, from a
    shell without the venv on PATH; returns the folder and the timings it printed."""
    workdir = tmp_path_factory.mktemp("smoke")
    env = dict(os.environ, PATH=without_venv(os.environ["PATH"]), SMOKE_DIR=str(workdir),
               CORES="2")
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run(["make", "smoke"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(proc.stdout)  # each preset's wall time, for the log
    return workdir, proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("paper", PAPERS)
def test_smoke_preset_builds_the_papers_section_with_its_claims(smoke, paper):
    workdir, timings = smoke
    results = workdir / "results" / f"{paper}-smoke"
    assert (results / "report.pdf").stat().st_size > 10_000
    for name in PAPER_FIGURES[paper]:
        assert (results / "figures" / paper / f"{name}.pdf").exists(), name
    for name in PAPER_TABLES[paper]:
        assert (results / "tables" / paper / f"{name}.tex").exists(), name
    claims = pd.read_csv(results / "tables" / paper / "claims.csv")
    assert len(claims) >= 3 and claims["measured"].notna().all()
    assert claims["holds"].notna().any(), "no claim could be checked at smoke scale"
    assert re.search(rf"^{paper}: \d+ s$", timings, re.M)
    # The files LaTeX read, one per line (latexmk's recorder; the .log wraps long paths).
    read = (results / "build" / "latex" / "report.fls").read_text(errors="replace")
    assert f"sections/{paper}.tex\n" in read and f"tables/{paper}/claims.tex\n" in read


# --- the settings ledgers (docs/presets/<paper>.md) ----------------------------------------------

sys.path.insert(0, str(ROOT / "scripts"))
import ledger  # noqa: E402

CITED = re.compile(r"§|Sec\.|Fig\.|Table|App\.|eq\.|Def\.|\.py|\.yaml|\.ipynb|Alg\.|footnote")


@pytest.mark.parametrize("paper", PAPERS)
def test_every_setting_of_a_full_preset_is_in_its_papers_ledger(paper):
    """Each leaf of the paper's full-scale presets has a ledger row with the preset's value,
    the paper's value and its source, or "not stated: our choice, because …" (print the
    missing rows with `python scripts/ledger.py <paper>`)."""
    path = ROOT / "docs" / "presets" / f"{paper}.md"
    assert path.exists(), f"no ledger {path.relative_to(ROOT)}"
    rows = ledger.ledger_rows(path)
    want = ledger.preset_leaves(paper)
    assert [key for key in want if key not in rows] == []
    assert [key for key in rows if key not in want] == []  # no stale row
    wrong = {key: (rows[key][0], ledger.shown(value)) for key, value in want.items()
             if rows[key][0] != ledger.shown(value)}
    assert wrong == {}
    for key, (_, said, source) in rows.items():
        assert said and source, f"{key}: the paper's value and the source are both needed"
        assert CITED.search(source) or re.match(r"not stated: (our choice|a workflow)", source), (
            f"{key}: {source!r} cites nothing and does not say 'not stated: our choice, "
            "because …'")


# --- each paper's conventions ---------------------------------------------------------------------


@pytest.mark.parametrize("paper, scale, global_mean", [
    ("lindegaard2023", "full", "samples"), ("lindegaard2023", "smoke", "samples"),
    ("rangamani2023", "full", "classes"), ("parker2023", "full", "classes"),
    ("rangamani2023", "smoke", "classes"), ("parker2023", "smoke", "classes")])
def test_each_paper_centres_its_class_means_as_its_formulas_do(paper, scale, global_mean):
    """lindegaard2023 §2.3.2 centres at the samples' mean, rangamani2023 §3 at the mean of the
    class means (Parker et al.'s code too): every run of the preset carries its paper's
    convention to training's epoch metrics and to the measure job (runs.measure_options)."""
    from nclayers.experiment import expand_runs
    from nclayers.preflight import prepare
    from nclayers.runs import measure_options

    config = yaml.safe_load((PRESETS / paper / f"{scale}.yaml").read_text())
    config.setdefault("data", {})["download"] = True  # planned only: nothing is fetched
    config = prepare(config).config
    assert {measure_options(spec)["global_mean"] for spec in expand_runs(config).values()} == {
        global_mean}
