# Config validation, the experiment's runs and the paths shared by several rules; every other
# .smk only wires files to a `python -m nclayers <step>` command.
import json
import os
import re
import sys

from snakemake.exceptions import WorkflowError

from nclayers.experiment import ConfigError, feature_epochs, resume_every
from nclayers.preflight import plan
from nclayers.report import rst_caption
from nclayers.sweeps import analysed_runs, figure_run
from nclayers.vocabulary import (
    AGGREGATE_READS,
    AGGREGATE_TABLES,
    FIGURE_TABLES,
    FEATURE_FIGURES,
    FEATURE_PAPERS,
    FEATURE_TABLES,
    FIGURES,
    PAPER_FIGURE_READS,
    PAPER_FIGURES,
    PAPER_TABLES,
    Thresholds,
)


# Everything that can fail before a job runs fails here, at `snakemake -n`: a job that fails
# would first have its old outputs deleted by Snakemake. The plan of a config, code and data
# files seen before is remembered (nclayers.parsecache): such a call imports no torch.
# DESIGN_DEFAULTS: the design job's defaults of each dataset and architecture, planned here so
# that the job itself does not import torch.
try:
    EXPERIMENT, DESIGN_DEFAULTS = plan(
        config,
        local=workflow.local_exec,
        schema=f"{workflow.basedir}/workflow/schemas/config.schema.yaml",
    )
except ConfigError as error:
    raise WorkflowError(f"invalid config: {error}") from None
config.update(EXPERIMENT.config)  # the schema's defaults filled in
RUNS = EXPERIMENT.runs
# Each run's group and axis values, and each group's selected axes: for the tables only.
DESIGN = EXPERIMENT.design

RESULTS = f"results/{config['experiment']}"
for folder in ("results", RESULTS):
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise WorkflowError(f"invalid config: {folder} is a file, where this experiment writes "
                            f"its results folder; move it away (or set another experiment)")
# How often each run's train job saves its state (its group's train.resume_every).
RESUME_EVERY = resume_every(config, DESIGN)
# Per run: its checkpoints, and those the feature analysis reads (default: the last one).
EPOCHS = {run: spec["train"]["checkpoints"] for run, spec in RUNS.items()}
FEATURE_EPOCHS = {run: feature_epochs(config, spec) for run, spec in RUNS.items()}
FEATURE_FIGURE = f"{RESULTS}/figures/features/{{run}}/epoch{{epoch}}/{{feature}}.pdf"
CLUSTER_GPUS = config["cluster"]["gpus"]
# features.runs: none turns the feature analysis, and its section of the report, off.
FEATURES_ON = config["features"]["runs"] != "none"
PAPERS = config["report"]["papers"]
# The report's optional sections, in paper/sections/ (nclayers.report.sections).
REPORT_TEX = f"{workflow.basedir}/paper/report.tex"


def section_tex(name):
    return f"{workflow.basedir}/paper/sections/{name}.tex"


def feature_captions(wildcards):
    """Params function: each feature figure's caption in Snakemake's report
    (workflow/report/features/<name>.rst), the PDF's (paper/sections/features.tex) first."""
    return {
        name: (rst_caption(section_tex("features"), name) or "A figure of the feature analysis.")
        + f"\n\nFeature-analysis figure ``{name}`` of run ``{wildcards.run}`` at epoch"
        f" {wildcards.epoch} (Lindegaard 2023, §4.3–4.4), on a class-balanced sample of train"
        " activations; layer 0 is the input."
        for name in FEATURE_FIGURES
    }


REPORT_SECTIONS = [section_tex(name) for name in (["features"] if FEATURES_ON else []) + PAPERS]
# What a paper's figure or table job reads: the aggregated tables (nclayers.papers.Tables).
PAPER_INPUTS = {
    name: f"{RESULTS}/tables/{name}.csv"
    for name in ("metrics", "training", "spectra", "epoch_metrics", "runs", "design")
}
THRESHOLD_ARGS = Thresholds.from_config(config).args()
# The jobs' `python` is the interpreter of the environment that runs Snakemake, so that
# `.venv/bin/snakemake` works from a shell without the venv on PATH (jobs inherit this PATH);
# under --sdm conda the env's activation puts its own `python` first.
os.environ.update(PATH=os.pathsep.join([os.path.dirname(sys.executable), os.getenv("PATH", "")]))


# Seconds of work each: under a cluster profile they run on the submitting machine instead of
# waiting in the queue. (The report needs LaTeX there.)
localrules:
    all,
    select_best,
    design,
    aggregate,
    tables,
    figure,
    feature_tables,
    feature_figures,
    report,


wildcard_constraints:
    run="|".join(map(re.escape, RUNS)),
    epoch=r"\d+",
    name="|".join(FIGURES),
    paper="|".join(PAPER_FIGURES),
    figure="|".join(sorted({f for names in PAPER_FIGURES.values() for f in names})),
    table="|".join(sorted({t for names in PAPER_TABLES.values() for t in names})),


def run_spec(wildcards):
    """The run's spec in one canonical form (sorted keys, defaults filled in): an edit of the
    config that does not change the run does not change this parameter, nor rerun the job."""
    return json.dumps(RUNS[wildcards.run], sort_keys=True)


def aggregate_inputs(wildcards):
    """Input function: the per-run files the table reads (AGGREGATE_READS), by the aggregate
    step's option names (train_log.csv: --train-logs)."""
    return {
        ("train_logs" if stem == "train_log" else stem): expand(
            f"{RESULTS}/runs/{{run}}/{stem}.csv", run=RUNS
        )
        for stem in AGGREGATE_READS[wildcards.table]
    }


def figure_inputs(wildcards):
    """Input function: the aggregated tables the figure reads (FIGURE_TABLES)."""
    return {name: f"{RESULTS}/tables/{name}.csv" for name in FIGURE_TABLES[wildcards.name]}


def step_args(inputs, names=None):
    """``--name path …`` for each named input (all by default): a step's options from the
    job's inputs."""
    args = []
    for name in names or inputs.keys():
        paths = inputs[name] if isinstance(inputs[name], list) else [inputs[name]]
        args += [f"--{name.replace('_', '-')}", *map(str, paths)]
    return " ".join(args)


def feature_files(name):
    """Input function: the feature analysis's ``name``.csv of every analysed run and feature
    epoch (features.runs; which runs are selected is known once select_best has run)."""

    def files(wildcards):
        runs = analysed_runs(checkpoints.select_best.get().output[0], config["features"]["runs"])
        return [
            f"{RESULTS}/features/{run}/epoch{epoch}/{name}.csv"
            for run in runs
            for epoch in FEATURE_EPOCHS[run]
        ]

    return files


def paper_feature_files(name):
    """Input function: what a paper's figure or table job reads besides the aggregated tables,
    the feature analysis's ``name``.csv of the analysed runs, for the papers that read it
    (FEATURE_PAPERS; none with features.runs: none). The other papers' jobs do not wait for
    the feature analysis."""
    files = feature_files(name)

    def inputs(wildcards):
        return files(wildcards) if FEATURES_ON and wildcards.paper in FEATURE_PAPERS else []

    return inputs


PAPER_FEATURE_INPUTS = {
    name: paper_feature_files(name) for name in ("clusters", "retention", "pca_summary")
}


def paper_figure_reads(wildcards):
    """What the paper figure reads (PAPER_FIGURE_READS); for a figure another paper draws,
    every aggregated table, and the step refuses it with the paper's list."""
    return PAPER_FIGURE_READS[wildcards.paper].get(wildcards.figure, tuple(PAPER_INPUTS))


def paper_figure_tables(wildcards):
    """Input function: the aggregated tables the paper figure reads, runs.csv always."""
    reads = paper_figure_reads(wildcards)
    return {name: path for name, path in PAPER_INPUTS.items() if name == "runs" or name in reads}


def paper_figure_feature_files(name):
    """Input function: the feature analysis's ``name``.csv files where the paper figure reads
    them, else none. One function per table, as for the tables' jobs: Snakemake defers each
    until select_best has run (a checkpoint) without losing the input's name."""
    files = paper_feature_files(name)

    def inputs(wildcards):
        return files(wildcards) if name in paper_figure_reads(wildcards) else []

    return inputs


PAPER_FIGURE_FEATURE_INPUTS = {
    name: paper_figure_feature_files(name) for name in ("clusters", "retention", "pca_summary")
}


def paper_outputs(wildcards=None):
    """The figures and tables of the papers the report holds a section for."""
    return [f"{RESULTS}/figures/{paper}/{name}.pdf" for paper in PAPERS
            for name in PAPER_FIGURES[paper]] + [
        f"{RESULTS}/tables/{paper}/{name}.tex" for paper in PAPERS for name in PAPER_TABLES[paper]]


def report_feature_figures(wildcards):
    """The feature figures the report shows: those of the first selected run the feature
    analysis reads, at its last feature epoch (none with features.runs: none)."""
    if not FEATURES_ON:
        return []
    run = figure_run(checkpoints.select_best.get().output[0], config["features"]["runs"])
    return expand(FEATURE_FIGURE, run=run, epoch=FEATURE_EPOCHS[run][-1], feature=FEATURE_FIGURES)
