# Neural collapse across the layers of classifiers: config → runs → metrics → figures → report.
#   snakemake --cores all                          the whole DAG for config.yaml
#   snakemake results/default/figures/<name>.pdf   one figure, and only what it needs
#   snakemake --directory .test --cores all        the tiny test experiment (.test/config.yaml)
#   snakemake --report report.html                 Snakemake's HTML report of what was built
from snakemake.utils import min_version

min_version("9.0")


# A config given on the command line is the whole experiment (keys it leaves out take the
# schema's defaults); only without one is the default experiment read.
if not workflow.config_settings.configfiles:
    from nclayers.preflight import check_yaml

    check_yaml("config.yaml")  # a syntax error names the line and column

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
        expand(f"{RESULTS}/tables/{{table}}.csv", table=AGGREGATE_TABLES),
        rules.report.input.figures,
        rules.tables.output,
        rules.feature_tables.output if FEATURES_ON else [],
        report_feature_figures,
        paper_outputs(),
