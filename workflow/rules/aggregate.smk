rule aggregate:
    input:
        metrics=expand(f"{RESULTS}/runs/{{run}}/metrics.csv", run=RUNS),
        train_logs=expand(f"{RESULTS}/runs/{{run}}/train_log.csv", run=RUNS),
        epoch_metrics=expand(f"{RESULTS}/runs/{{run}}/epoch_metrics.csv", run=RUNS),
        spectra=expand(f"{RESULTS}/runs/{{run}}/spectra.csv", run=RUNS),
    output:
        metrics=report(
            f"{RESULTS}/tables/metrics.csv",
            caption="../report/metrics.rst",
            category="Tables",
        ),
        training=report(
            f"{RESULTS}/tables/training.csv",
            caption="../report/training.rst",
            category="Tables",
        ),
        spectra=report(
            f"{RESULTS}/tables/spectra.csv",
            caption="../report/spectra.rst",
            category="Tables",
        ),
        epoch_metrics=report(
            f"{RESULTS}/tables/epoch_metrics.csv",
            caption="../report/epoch_metrics.rst",
            category="Tables",
        ),
    params:
        design=json.dumps(DESIGN, sort_keys=True),
        out_dir=subpath(output.metrics, parent=True),
        thresholds=THRESHOLD_ARGS,
    log:
        f"{RESULTS}/logs/aggregate.log",
    conda:
        "../../envs/nclayers.yaml"
    shell:
        "python -m nclayers aggregate --metrics {input.metrics}"
        " --train-logs {input.train_logs} --spectra {input.spectra}"
        " --epoch-metrics {input.epoch_metrics} --design {params.design:q}"
        " {params.thresholds}"
        " --out-dir {params.out_dir} > {log} 2>&1"


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
    log:
        f"{RESULTS}/logs/design.log",
    conda:
        "../../envs/nclayers.yaml"
    shell:
        "python -m nclayers design --infos {input.infos} --design {params.design:q}"
        " --out {output} > {log} 2>&1"
