# Config validation and the experiment's runs; every other .smk only wires files.
import json
import re

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from nclayers.experiment import ConfigError, check_names, checkpoint_epochs, expand_runs
from nclayers.plots import FIGURES


validate(config, "../schemas/config.schema.yaml")
try:
    check_names(config)
except ConfigError as error:
    raise WorkflowError(f"invalid config: {error}") from None

RESULTS = f"results/{config['experiment']}"
RUNS = expand_runs(config)
EPOCHS = checkpoint_epochs(config)


def run_spec(wildcards):
    return json.dumps(RUNS[wildcards.run])


wildcard_constraints:
    run="|".join(map(re.escape, RUNS)),
    epoch=r"\d+",
    name="|".join(FIGURES),
