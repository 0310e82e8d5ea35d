"""The real workflow: snakemake on a tiny config, from nothing to the PDF."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import (
    ROOT,
    VENV_BIN,
    copy_experiment,
    planned_jobs,
    snakemake,
    snakemake_command,
    straight_train_log,
    tiny_config,
    write_config,
)

from nclayers.report import overfull_boxes
from nclayers.vocabulary import EPOCH_METRICS, PAPER_GROUPS, TIDY_COLUMNS

TEXT_WIDTH_PT = 16 / 2.54 * 72  # A4 with 2.5 cm margins: the report's \linewidth


def test_tiny_run_reaches_pdf(tiny_run):
    results = tiny_run / "results" / "tiny"
    pdf = results / "report.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    if shutil.which("pdfinfo"):  # poppler-utils, where installed
        pages = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
        assert int(re.search(r"Pages:\s+(\d+)", pages)[1]) >= 3
    figures = sorted(p.name for p in (results / "figures").glob("*.pdf"))
    assert len(figures) >= 4
    metrics = pd.read_csv(results / "tables" / "metrics.csv")
    assert list(metrics.columns) == [*TIDY_COLUMNS, "group"]  # no axes: no axis columns
    assert set(metrics["group"]) == {"main"}
    assert set(metrics["epoch"]) == {0, 3}
    assert set(metrics["split"]) == {"train", "test"}
    assert set(metrics["layer_index"].dropna()) == {0, 1, 2, 3}
    # the abstract quotes the run's own collapse layer, the one aggregate derived
    derived = metrics[(metrics["metric"] == "collapse_layer") & (metrics["epoch"] == 3)]
    layer = derived["value"].iloc[0]
    quoted = "none" if pd.isna(layer) else f"{layer:g}"
    assert f"\\newcommand{{\\CollapseLayer}}{{{quoted}}}" in (
        results / "tables" / "macros.tex").read_text()
    expected = {"nc1", "nc1_ratio", "tr_sigma_w", "tr_sigma_b", "tr_sigma_t", "cdnv",
                "stable_rank", "nc2_equinorm", "nc2_equiangle", "nc2_maxangle",
                "nc2_angle_shift", "nc3_pabs", "nc3_duality", "nc4_mismatch", "ncc_accuracy"}
    assert expected <= set(metrics["metric"])
    per_run = {"collapse_layer", "effective_depth", "interpolation_epoch"}
    assert per_run <= set(metrics["metric"])
    assert metrics[metrics["metric"].isin(per_run)]["layer"].isna().all()
    assert metrics[metrics["metric"].isin(expected - {"nc3_pabs"})]["value"].notna().all()
    spectra = pd.read_csv(results / "tables" / "spectra.csv")
    assert set(spectra["layer_index"]) == {0, 1, 2, 3}
    design = pd.read_csv(results / "tables" / "design.csv")
    assert list(design["run"]) == ["digits-mlp6-s0"] and design["train.lr"].tolist() == [0.1]
    clusters = pd.read_csv(results / "features" / "digits-mlp6-s0" / "epoch3" / "clusters.csv")
    assert set(clusters["layer_index"]) == {0, 1, 2, 3}
    assert set(clusters["method"]) == {"cosine", "ward"}
    assert (results / "tables" / "features_retention.tex").read_text().count("to") >= 3
    feature_figures = list((results / "figures" / "features").rglob("*.pdf"))
    assert len(feature_figures) == 8
    for log in ("train/digits-mlp6-s0.log", "report.log"):
        assert (results / "logs" / log).stat().st_size > 0


@pytest.fixture
def tiny_copy(tiny_run, tmp_path) -> Path:
    """A copy of the finished tiny run, for a test that changes or rebuilds its results."""
    return copy_experiment(tiny_run, tmp_path)


def test_up_to_date_run_plans_nothing(tiny_copy):
    proc = snakemake(tiny_copy, "-n", "--configfile", "config.yaml")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_one_figure_regenerates_alone(tiny_copy):
    figure = tiny_copy / "results" / "tiny" / "figures" / "nc1_by_layer.pdf"
    figure.unlink()
    target = "results/tiny/figures/nc1_by_layer.pdf"
    # Targets go before --configfile, which takes several values.
    proc = snakemake(tiny_copy, target, "-n", "--configfile", "config.yaml")
    assert planned_jobs(proc) == {"figure": 1}
    # As the README shows it: no --cores (profiles/default gives all cores), the folder's
    # config.yaml.
    snakemake(tiny_copy, target)
    assert figure.read_bytes()[:5] == b"%PDF-"


def test_a_plain_run_restores_every_deleted_figure_and_table(tiny_copy):
    """Snakemake rebuilds a missing file only for a job that runs: `rule all` asks for each
    figure and table, so that a plain `snakemake` restores one deleted after a run."""
    for rel in ("figures/nc1_by_layer.pdf", "tables/last_layer.tex",
                "figures/features/digits-mlp6-s0/epoch3/pca_l1.pdf"):
        (tiny_copy / "results" / "tiny" / rel).unlink()
    proc = snakemake(tiny_copy, "-n")
    assert planned_jobs(proc) == {"figure": 1, "tables": 1, "feature_figures": 1, "report": 1,
                                  "all": 1}


def test_a_rebuilt_table_redraws_only_the_figures_that_read_it(tiny_copy):
    """Each aggregated table is a job of its own and each figure waits for the tables it reads
    (vocabulary.AGGREGATE_READS, FIGURE_TABLES): training.csv rebuilt redraws the training
    curves, not the NC figures, the paper figures or the feature figures."""
    (tiny_copy / "results" / "tiny" / "tables" / "training.csv").unlink()
    proc = snakemake(tiny_copy, "-n")
    assert planned_jobs(proc) == {"aggregate": 1, "figure": 1, "tables": 1, "report": 1,
                                  "all": 1}
    assert "wildcards: name=training_curves" in proc.stdout + proc.stderr


def test_one_feature_figure_regenerates_without_the_analysis(tiny_copy):
    """Naming one feature figure redraws its run and epoch's figures (one job draws the
    eight), not the feature analysis; the others are drawn again, the same."""
    folder = tiny_copy / "results/tiny/figures/features/digits-mlp6-s0/epoch3"
    before = {pdf.name: pdf.stat().st_size for pdf in folder.glob("*.pdf")}
    (folder / "pca_l1.pdf").unlink()
    target = "results/tiny/figures/features/digits-mlp6-s0/epoch3/pca_l1.pdf"
    proc = snakemake(tiny_copy, target, "-n", "--configfile", "config.yaml")
    assert planned_jobs(proc) == {"feature_figures": 1}
    snakemake(tiny_copy, target, "--configfile", "config.yaml")
    assert {pdf.name: pdf.stat().st_size for pdf in folder.glob("*.pdf")} == before


def test_only_the_papers_that_read_the_feature_analysis_wait_for_it(tiny_copy):
    """With a feature table missing, a figure of galanti2022 (which reads none) plans its own job
    alone; one of lindegaard2023 (which reads them) plans the feature analysis first. (The tiny
    experiment has none of their groups: report.left_out names them, so that their contracts
    let the config through.)"""
    config = yaml.safe_load((tiny_copy / "config.yaml").read_text())
    config["report"]["papers"] = ["galanti2022", "lindegaard2023"]
    config["report"]["left_out"] = [g for paper in config["report"]["papers"]
                                    for g in PAPER_GROUPS[paper]]
    write_config(tiny_copy, config)
    (tiny_copy / "results/tiny/features/digits-mlp6-s0/epoch3/clusters.csv").unlink()
    galanti = snakemake(tiny_copy, "results/tiny/figures/galanti2022/fig1_mlp_depth.pdf", "-n")
    assert planned_jobs(galanti) == {"paper_figure": 1}
    lindegaard = snakemake(tiny_copy,
                           "results/tiny/figures/lindegaard2023/fig4_3_feature_shape.pdf", "-n")
    assert planned_jobs(lindegaard) == {"features": 1, "paper_figure": 1}


def test_a_paper_figure_waits_only_for_the_tables_it_reads(tiny_copy):
    """vocabulary.PAPER_FIGURE_READS: with spectra.csv gone, lindegaard2023's Fig. 4.1 (NC by
    layer, which reads metrics.csv) plans its own job alone, its NC3 figure (which reads the
    spectra) the table's aggregation first."""
    config = yaml.safe_load((tiny_copy / "config.yaml").read_text())
    config["report"]["papers"] = ["lindegaard2023"]
    config["report"]["left_out"] = list(PAPER_GROUPS["lindegaard2023"])
    write_config(tiny_copy, config)
    (tiny_copy / "results/tiny/tables/spectra.csv").unlink()
    figures = "results/tiny/figures/lindegaard2023"
    by_layer = snakemake(tiny_copy, f"{figures}/fig4_1_nc_by_layer.pdf", "-n")
    assert planned_jobs(by_layer) == {"paper_figure": 1}
    nc3 = snakemake(tiny_copy, f"{figures}/fig_b0_nc3_nc4.pdf", "-n")
    assert planned_jobs(nc3) == {"aggregate": 1, "paper_figure": 1}


def test_same_config_same_numbers(tiny_run, tmp_path):
    """Determinism on CPU: a second run from scratch gives bitwise the same metrics."""
    config = write_config(tmp_path, tiny_config())
    snakemake(tmp_path, "results/tiny/tables/metrics.csv", "--cores", "2",
              "--configfile", str(config))
    first = pd.read_csv(tiny_run / "results" / "tiny" / "tables" / "metrics.csv")
    second = pd.read_csv(tmp_path / "results" / "tiny" / "tables" / "metrics.csv")
    pd.testing.assert_frame_equal(first, second, check_exact=True)


def test_lint_is_clean():
    proc = snakemake(ROOT, "--lint")
    assert "Congratulations" in proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_sweep_with_a_diverged_setting_still_reaches_the_report(tmp_path):
    """A learning-rate sweep where one setting diverges: the DAG goes on, the best setting is
    selected, and the report's run table says which run diverged."""
    config = tiny_config()
    config["architectures"]["mlp6"]["batchnorm"] = False
    config["train"]["lr"] = [1.0e4, 0.01]  # the first run diverges
    snakemake(tmp_path, "--cores", "2", "--configfile", str(write_config(tmp_path, config)))
    results = tmp_path / "results" / "tiny"
    runs = pd.read_csv(results / "tables" / "runs.csv").set_index("run")
    assert bool(runs.loc["digits-mlp6-lr10000-s0", "diverged"])
    assert list(runs.index[runs["selected"]]) == ["digits-mlp6-lr0.01-s0"]
    metrics = pd.read_csv(results / "tables" / "metrics.csv").dropna(subset=["layer"])
    diverged = metrics[metrics["run"] == "digits-mlp6-lr10000-s0"]
    assert set(diverged["epoch"]) == {0}  # measured at initialisation, nothing after
    assert set(metrics[metrics["run"] == "digits-mlp6-lr0.01-s0"]["epoch"]) == {0, 3}
    assert "diverged (epoch" in (results / "tables" / "runs.tex").read_text()
    assert (results / "report.pdf").read_bytes()[:5] == b"%PDF-"
    # The report shows the feature figures of the selected run, not of the first one.
    macros = (results / "build" / "latex" / "report_macros.tex").read_text()
    assert r"\newcommand{\FeatureRun}{digits-mlp6-lr0.01-s0}" in macros
    drawn = {p.parts[-3] for p in (results / "figures" / "features").rglob("*.pdf")}
    assert drawn == {"digits-mlp6-lr0.01-s0"}
    # features.runs: selected (the default): the diverged run is not analysed at all.
    assert {p.name for p in (results / "features").iterdir()} == {"digits-mlp6-lr0.01-s0"}


@pytest.mark.slow
def test_killed_workflow_resumes_training(tmp_path):
    """Kill snakemake and its training job mid-run; a rerun with --rerun-incomplete continues
    from the saved state instead of starting over, and ends where an uninterrupted run ends."""
    config = tiny_config()
    config["architectures"]["mlp6"].update(depth=4, width=128)
    config["train"].update(epochs=200, checkpoints=[0, 20, 200])  # long enough to catch
    path = write_config(tmp_path, config)
    target = "results/tiny/runs/digits-mlp6-s0/run.json"
    state = tmp_path / "results/tiny/runs/digits-mlp6-s0/.resume/state.pt"
    cmd, env = snakemake_command(tmp_path, target, "--cores", "1", "--configfile", str(path))
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while True:
        assert time.time() < deadline and proc.poll() is None, "training never saved a state"
        try:
            if torch.load(state, weights_only=True)["epoch"] >= 25:
                break
        except (FileNotFoundError, RuntimeError, EOFError):
            pass
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and the training job, mid-epoch
    proc.wait()
    snakemake(tmp_path, "--unlock", "--configfile", str(path))  # the kill left the lock behind
    snakemake(tmp_path, target, "--cores", "1", "--rerun-incomplete", "--configfile", str(path))
    log = (tmp_path / "results/tiny/logs/train/digits-mlp6-s0.log").read_text()
    assert "resuming digits-mlp6-s0 after epoch" in log
    run_dir = tmp_path / "results/tiny/runs/digits-mlp6-s0"
    straight = straight_train_log(config, run_dir, tmp_path / "straight")
    pd.testing.assert_frame_equal(straight, pd.read_csv(run_dir / "train_log.csv"),
                                  check_exact=True)


@pytest.mark.slow
def test_every_run_diverging_still_gives_a_report(tmp_path):
    config = tiny_config()
    config["architectures"]["mlp6"]["batchnorm"] = False
    config["train"]["lr"] = 1.0e4
    snakemake(tmp_path, "--cores", "2", "--configfile", str(write_config(tmp_path, config)))
    results = tmp_path / "results" / "tiny"
    runs = pd.read_csv(results / "tables" / "runs.csv")
    assert runs["diverged"].all() and not runs["selected"].any()
    assert "\\newcommand{\\NumDiverged}{1}" in (results / "tables" / "macros.tex").read_text()
    assert (results / "report.pdf").read_bytes()[:5] == b"%PDF-"


def plan_with_profile(tmp_path: Path, profile: str, **overrides) -> subprocess.CompletedProcess:
    config = write_config(tmp_path, tiny_config(**overrides))
    return snakemake(tmp_path, "-n", "--profile", str(ROOT / "profiles" / profile),
                     "--configfile", str(config))


def assert_whole_dag(proc: subprocess.CompletedProcess) -> None:
    jobs = planned_jobs(proc)
    # One measure job measures all checkpoints of the run.
    assert jobs["train"] == 1 and jobs["report"] == 1 and jobs["measure"] == 1


def test_local_profile_plans_the_whole_dag(tmp_path):
    assert_whole_dag(plan_with_profile(tmp_path, "local"))


@pytest.mark.parametrize("gpus", [0, 1])
def test_slurm_profile_plans_the_whole_dag_with_gpus_for_train_and_measure(gpus, tmp_path):
    """The profiles parse and plan every job (no SLURM needed; tests/cluster/ runs it for
    real); `cluster.gpus` goes to the train and measure jobs only."""
    proc = plan_with_profile(tmp_path, "slurm", cluster={"gpus": gpus})
    assert_whole_dag(proc)
    rules = re.findall(r"^(?:local)?rule (\w+):\n(?:.*\n)*?    resources: (.*)$", proc.stdout,
                       re.M)
    gpu = {rule: re.search(r"\bgpu=(\d+)", res) for rule, res in rules}
    assert {rule for rule, match in gpu.items() if match} == {"train", "measure"}
    assert {int(match[1]) for match in gpu.values() if match} == {gpus}


def test_the_venv_runs_without_being_on_path(tiny_run):
    """`.venv/bin/snakemake` from a shell without the venv on PATH (every workflow test runs
    so): the jobs use the interpreter that runs Snakemake, not the system's python."""
    cmd, env = snakemake_command(tiny_run)
    assert cmd[0] == str(VENV_BIN / "snakemake")
    assert str(VENV_BIN) not in env["PATH"].split(os.pathsep)
    assert (tiny_run / "results" / "tiny" / "report.pdf").read_bytes()[:5] == b"%PDF-"


MINIMAL = {"experiment": "mine", "datasets": {"blobs": {"name": "synthetic"}},
           "architectures": {"small": {"name": "mlp", "depth": 2, "width": 16}},
           "seeds": [0], "train": {"epochs": 2, "batch_size": 64, "lr": 0.01}}


def test_a_configfile_is_the_whole_experiment(tmp_path):
    """Beside the default config.yaml, `--configfile mine.yaml` runs only mine.yaml's runs, and
    the keys it leaves out take the schema's defaults, not the default experiment's values."""
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(MINIMAL))
    proc = snakemake(tmp_path, "-n", "-p", "--configfile", "mine.yaml")
    out = proc.stdout + proc.stderr
    assert planned_jobs(proc)["train"] == 1
    assert "blobs-small-s0" in out and "digits" not in out and "mlp6" not in out
    spec = json.loads(re.search(r"train --spec '(.*?)'", out)[1])
    assert spec["train"]["momentum"] == 0.9 and spec["train"]["loss"] == "mse"  # schema
    assert spec["train"]["checkpoints"] == [0, 2]  # not the default's 10, 50, ...
    default = snakemake(tmp_path, "-n")  # without one, the default experiment
    assert planned_jobs(default)["train"] == 2


def test_html_report_holds_every_figure(tiny_copy):
    """`snakemake --report report.html`: Snakemake's self-contained report of the run, with
    every figure, the tidy tables and the PDF, each with its caption."""
    snakemake(tiny_copy, "--report", "report.html")
    html = (tiny_copy / "report.html").read_text(errors="replace")
    figures = list((tiny_copy / "results" / "tiny" / "figures").rglob("*.pdf"))
    assert len(figures) == 6 + 8
    for figure in figures:
        assert figure.name in html, figure
    for name in ("metrics.csv", "training.csv", "runs.csv", "report.pdf", "spectra.csv",
                 "epoch_metrics.csv", "by_layer.tex", "last_layer.tex"):
        assert name in html, name
    assert "Feature-analysis figure" in html and "nc1_by_layer" in html  # captions
    # each figure with its own caption, the PDF's (paper/report.tex, paper/sections/)
    assert "Variability collapse grows with depth and with training" in html
    assert "UMAP of each layer" in html


def media_box(pdf: Path) -> tuple[float, float]:
    """Width and height (pt) of the first page of a PDF matplotlib wrote."""
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf.read_bytes())
    return float(box[1]), float(box[2])


def test_report_fits_the_page(tiny_run):
    """No table or line runs past the text block (LaTeX's overfull boxes, which the report
    step logs), and every figure, drawn at \\linewidth, keeps its text readable: at most 1.5x
    the text width, so that 9 pt labels stay above 6 pt."""
    results = tiny_run / "results" / "tiny"
    latex_log = (results / "build" / "latex" / "report.log").read_text(errors="replace")
    assert overfull_boxes(latex_log) == []
    assert "overfull" not in (results / "logs" / "report.log").read_text()
    for figure in (results / "figures").rglob("*.pdf"):
        width, _ = media_box(figure)
        assert width <= 1.5 * TEXT_WIDTH_PT, (figure.name, width / 72)


@pytest.mark.slow
def test_two_groups_with_axes_and_epoch_metrics_reach_the_pdf(tmp_path):
    """.test/groups.yaml: a group pairing digits with an MLP whose depth is compared and lr
    selected, measured every epoch; a group crossing blobs with the MLP keeping its whole lr
    grid, measured on a log schedule on a subsample. Each tidy row carries its group and
    axis values; the report is built."""
    shutil.copy(ROOT / ".test" / "groups.yaml", tmp_path / "config.yaml")
    snakemake(tmp_path, "--cores", "2")
    results = tmp_path / "results" / "groups"
    assert (results / "report.pdf").read_bytes()[:5] == b"%PDF-"
    runs = pd.read_csv(results / "tables" / "runs.csv")
    assert len(runs) == 4 + 8
    assert list(runs.columns[:7]) == ["run", "group", "dataset", "arch", "seed", "depth", "lr"]
    mse = runs[runs["group"] == "mse"]
    # lr is selected over per depth (compared): one selected run per depth.
    assert sorted(mse.loc[mse["selected"], "depth"]) == [2, 3]
    assert runs.loc[runs["group"] == "ce", "selected"].all()  # select: []
    metrics = pd.read_csv(results / "tables" / "metrics.csv")
    assert list(metrics.columns) == [*TIDY_COLUMNS, "group", "depth", "lr"]
    row = metrics[metrics["run"] == "ce-blobs-mlp-d3-lr0.05-s1"].iloc[0]
    assert (row["group"], row["depth"], row["lr"]) == ("ce", 3, 0.05)
    assert set(metrics.loc[metrics["group"] == "ce", "epoch"]) == {0, 4}  # its own last epoch
    training = pd.read_csv(results / "tables" / "training.csv")
    assert {"group", "depth", "lr"} <= set(training.columns)
    per_epoch = pd.read_csv(results / "tables" / "epoch_metrics.csv")
    assert list(per_epoch.columns) == [*TIDY_COLUMNS, "group", "depth", "lr"]
    mse_epochs = per_epoch[per_epoch["group"] == "mse"]
    assert set(mse_epochs["epoch"]) == {0, 1, 2, 3}
    assert set(mse_epochs["metric"]) == set(EPOCH_METRICS) >= {"cdnv", "cdnv_own"}
    assert set(mse_epochs["split"]) == {"train", "test"}
    ce_epochs = per_epoch[per_epoch["group"] == "ce"]
    assert 0 in set(ce_epochs["epoch"]) and 4 in set(ce_epochs["epoch"])
    # Figures tell the models apart by group and compared axis.
    assert (results / "figures" / "nc1_by_layer.pdf").stat().st_size > 0
