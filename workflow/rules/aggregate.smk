# One job per table (AGGREGATE_READS): regenerating one leaves the others, and the figures
# that do not read it, as they are.
rule aggregate:
    input:
        unpack(aggregate_inputs),
    output:
        report(
            f"{RESULTS}/tables/{{table}}.csv",
            caption="../report/aggregated.rst",
            category="Tables",
        ),
    params:
        files=lambda w, input: step_args(input),
        design=json.dumps(DESIGN, sort_keys=True),
        # the thresholds derive metrics.csv's per-run rows; the other tables do not read them
        thresholds=lambda w: THRESHOLD_ARGS if w.table == "metrics" else "",
    log:
        f"{RESULTS}/logs/aggregate/{{table}}.log",
    wildcard_constraints:
        table="|".join(AGGREGATE_TABLES),
    conda:
        "../../envs/nclayers.yaml"
    shell:
        "python -m nclayers aggregate {wildcards.table} {params.files}"
        " --design {params.design:q} {params.thresholds} --out {output} > {log} 2>&1"


# A checkpoint: which run's feature figures the report shows depends on what it selects.
checkpoint select_best:
    input:
        infos=expand(f"{RESULTS}/runs/{{run}}/run.json", run=RUNS),
    output:
        report(f"{RESULTS}/tables/runs.csv", caption="../report/runs.rst", category="Tables"),
    params:
        design=json.dumps(DESIGN, sort_keys=True),
    log:
        f"{RESULTS}/logs/select_best.log",
    conda:
        "../../envs/nclayers.yaml"
    shell:
        "python -m nclayers select --infos {input.infos} --design {params.design:q}"
        " --out {output} > {log} 2>&1"


rule design:
    input:
        infos=expand(f"{RESULTS}/runs/{{run}}/run.json", run=RUNS),
    output:
        report(f"{RESULTS}/tables/design.csv", caption="../report/design.rst", category="Tables"),
    params:
        design=json.dumps(DESIGN, sort_keys=True),
        defaults=json.dumps(DESIGN_DEFAULTS, sort_keys=True),
    log:
        f"{RESULTS}/logs/design.log",
    conda:
        "../../envs/nclayers.yaml"
    shell:
        "python -m nclayers design --infos {input.infos} --design {params.design:q}"
        " --defaults {params.defaults:q} --out {output} > {log} 2>&1"
