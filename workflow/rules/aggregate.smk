rule aggregate:
    input:
        metrics=expand(
            f"{RESULTS}/runs/{{run}}/metrics/epoch{{epoch}}.csv", run=RUNS, epoch=EPOCHS
        ),
        train_logs=expand(f"{RESULTS}/runs/{{run}}/train_log.csv", run=RUNS),
        spectra=expand(
            f"{RESULTS}/runs/{{run}}/spectra/epoch{{epoch}}.csv", run=RUNS, epoch=EPOCHS
        ),
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
        spectra=f"{RESULTS}/tables/spectra.csv",
    params:
        out_dir=subpath(output.metrics, parent=True),
        collapse_eps=config["report"]["collapse_eps"],
        ncc_threshold=config["measure"]["ncc_threshold"],
        interpolation_threshold=config["measure"]["interpolation_threshold"],
    log:
        f"{RESULTS}/logs/aggregate.log",
    conda:
        "../../envs/nclayers.yaml"
    shell:
        "python -m nclayers aggregate --metrics {input.metrics}"
        " --train-logs {input.train_logs} --spectra {input.spectra}"
        " --collapse-eps {params.collapse_eps} --ncc-threshold {params.ncc_threshold}"
        " --interpolation-threshold {params.interpolation_threshold}"
        " --out-dir {params.out_dir} > {log} 2>&1"


# A checkpoint: which run's feature figures the report shows depends on what it selects.
checkpoint select_best:
    input:
        infos=expand(f"{RESULTS}/runs/{{run}}/run.json", run=RUNS),
    output:
        report(f"{RESULTS}/tables/runs.csv", caption="../report/runs.rst", category="Tables"),
    log:
        f"{RESULTS}/logs/select_best.log",
    conda:
        "../../envs/nclayers.yaml"
    shell:
        "python -m nclayers select --infos {input.infos} --out {output} > {log} 2>&1"
