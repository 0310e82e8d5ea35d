# Neural collapse across the layers of classifiers: config → runs → metrics → figures → report.
#   snakemake --cores all                          the whole DAG for config.yaml
#   snakemake results/default/figures/<name>.pdf   one figure, and only what it needs
#   snakemake --directory .test --cores all        the tiny test experiment (.test/config.yaml)
#   snakemake --report report.html                 Snakemake's HTML report of what was built
import atexit
import gc
import threading

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.0")

# Snakemake's exit would otherwise walk every object that parsing this workflow created
# (torch's among them, for the preflight) in Python's last garbage collections: ~0.8 s of
# every call, `-n` included. Frozen objects are left out of those walks.
atexit.register(gc.freeze)


from nclayers.experiment import ConfigError
from nclayers.preflight import check_yaml

# A config given on the command line is the whole experiment (keys it leaves out take the
# schema's defaults); only without one is the default experiment read. Each file's text is
# checked first: a syntax error names the line and column; a key given twice, YTE templating
# (code) and alias bombs are refused. (Snakemake reads a --configfile itself, before this.)
for path in workflow.config_settings.configfiles or ["config.yaml"]:
    try:
        check_yaml(path)
    except ConfigError as error:
        raise WorkflowError(f"invalid config: {error}") from None

if not workflow.config_settings.configfiles:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/papers.smk"
include: "workflow/rules/report.smk"


# Every figure and table the report shows, not only the report: Snakemake rebuilds a missing
# file only for a job that runs, so a figure deleted after a run would otherwise stay missing.
rule all:
    default_target: True
    input:
        f"{RESULTS}/report.pdf",
        f"{RESULTS}/tables/design.csv",
        expand(f"{RESULTS}/runs/{{run}}/run.json", run=RUNS),
        expand(f"{RESULTS}/tables/{{table}}.csv", table=AGGREGATE_TABLES),
        rules.report.input.figures,
        rules.tables.output,
        rules.feature_tables.output if FEATURES_ON else [],
        report_feature_figures,
        paper_outputs(),


onsuccess:
    # Snakemake's job-rate limiter (--max-jobs-per-timespan, 100/1s by default) leaves timer
    # threads that only wake its scheduler, done by now: the process would wait up to 1 s for
    # them before exiting. Only Snakemake's own: a process that runs workflows through the API
    # keeps its timers.
    for thread in threading.enumerate():
        if not isinstance(thread, threading.Timer):
            continue
        if (getattr(thread.function, "__module__", None) or "").startswith("snakemake."):
            thread.cancel()
