# Config validation and the experiment's runs; every other .smk only wires files.
import json
import os
import re

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from nclayers.experiment import ConfigError, check_names, checkpoint_epochs, expand_runs
from nclayers.feature_plots import FEATURE_FIGURES
from nclayers.features import TABLES as FEATURE_TABLES
from nclayers.plots import FIGURES


validate(config, "../schemas/config.schema.yaml")
try:
    check_names(config)
except ConfigError as error:
    raise WorkflowError(f"invalid config: {error}") from None

RESULTS = f"results/{config['experiment']}"
RUNS = expand_runs(config)
EPOCHS = checkpoint_epochs(config)
# Feature analysis: at the configured checkpoints (default: the last one); the report shows
# the figures of the first run.
FEATURE_EPOCHS = sorted(config["features"]["epochs"]) or [config["train"]["epochs"]]
FEATURE_RUN = next(iter(RUNS))
CLUSTER_GPUS = config["cluster"]["gpus"]

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


def run_spec(wildcards):
    return json.dumps(RUNS[wildcards.run])


wildcard_constraints:
    run="|".join(map(re.escape, RUNS)),
    epoch=r"\d+",
    name="|".join(FIGURES),
    feature="|".join(FEATURE_FIGURES),
