rule aggregate:
    input:
        metrics=expand(
            f"{RESULTS}/runs/{{run}}/metrics/epoch{{epoch}}.csv", run=RUNS, epoch=EPOCHS
        ),
        train_logs=expand(f"{RESULTS}/runs/{{run}}/train_log.csv", run=RUNS),
    output:
        metrics=f"{RESULTS}/tables/metrics.csv",
        training=f"{RESULTS}/tables/training.csv",
    params:
        out_dir=subpath(output.metrics, parent=True),
    log:
        f"{RESULTS}/logs/aggregate.log",
    conda:
        "../../envs/nclayers.yaml"
    shell:
        "python -m nclayers aggregate --metrics {input.metrics} --train-logs {input.train_logs}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule select_best:
    input:
        infos=expand(f"{RESULTS}/runs/{{run}}/run.json", run=RUNS),
    output:
        f"{RESULTS}/tables/runs.csv",
    log:
        f"{RESULTS}/logs/select_best.log",
    conda:
        "../../envs/nclayers.yaml"
    shell:
        "python -m nclayers select --runs {input.infos} --out {output} > {log} 2>&1"
