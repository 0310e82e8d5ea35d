# Config validation, the experiment's runs and the paths shared by several rules; every other
# .smk only wires files to a `python -m nclayers <step>` command.
import json
import os
import re
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from nclayers.experiment import ConfigError, check_names, checkpoint_epochs, expand_runs
from nclayers.sweeps import figure_run
from nclayers.vocabulary import FEATURE_FIGURES, FEATURE_TABLES, FIGURES


validate(config, "../schemas/config.schema.yaml")
try:
    check_names(config)
except ConfigError as error:
    raise WorkflowError(f"invalid config: {error}") from None

RESULTS = f"results/{config['experiment']}"
RUNS = expand_runs(config)
EPOCHS = checkpoint_epochs(config)
# Feature analysis: at the configured checkpoints (default: the last one).
FEATURE_EPOCHS = sorted(config["features"]["epochs"]) or [config["train"]["epochs"]]
FEATURE_FIGURE = f"{RESULTS}/figures/features/{{run}}/epoch{{epoch}}/{{feature}}.pdf"
CLUSTER_GPUS = config["cluster"]["gpus"]
# The jobs' `python` is the interpreter of the environment that runs Snakemake, so that
# `.venv/bin/snakemake` works from a shell without the venv on PATH (jobs inherit this PATH);
# under --sdm conda the env's activation puts its own `python` first.
os.environ.update(PATH=os.pathsep.join([os.path.dirname(sys.executable), os.getenv("PATH", "")]))


# Seconds of work each: under a cluster profile they run on the submitting machine instead of
# waiting in the queue. (The report needs LaTeX there.)
localrules:
    all,
    select_best,
    aggregate,
    tables,
    figure,
    feature_tables,
    feature_figure,
    report,


wildcard_constraints:
    run="|".join(map(re.escape, RUNS)),
    epoch=r"\d+",
    name="|".join(FIGURES),
    feature="|".join(FEATURE_FIGURES),


def run_spec(wildcards):
    return json.dumps(RUNS[wildcards.run])


def report_feature_figures(wildcards):
    """The feature figures the report shows: those of the first selected run (known once
    select_best has run), at the last feature epoch."""
    run = figure_run(checkpoints.select_best.get().output[0])
    return expand(FEATURE_FIGURE, run=run, epoch=FEATURE_EPOCHS[-1], feature=FEATURE_FIGURES)
