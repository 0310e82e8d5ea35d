# Neural collapse across the layers of classifiers: config → runs → metrics → figures → report.
#   snakemake --cores all                          the whole DAG for config.yaml
#   snakemake results/default/figures/<name>.pdf   one figure, and only what it needs
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/paper.smk"


rule all:
    default_target: True
    input:
        f"{RESULTS}/report.pdf",
