rule aggregate:
    input:
        metrics=expand(
            f"{RESULTS}/runs/{{run}}/metrics/epoch{{epoch}}.csv", run=RUNS, epoch=EPOCHS
        ),
        train_logs=expand(f"{RESULTS}/runs/{{run}}/train_log.csv", run=RUNS),
        infos=expand(f"{RESULTS}/runs/{{run}}/run.json", run=RUNS),
    output:
        metrics=f"{RESULTS}/tables/metrics.csv",
        training=f"{RESULTS}/tables/training.csv",
        runs=f"{RESULTS}/tables/runs.json",
    params:
        out_dir=subpath(output.metrics, parent=True),
    log:
        f"{RESULTS}/logs/aggregate.log",
    conda:
        "../../envs/nclayers.yaml"
    shell:
        "python -m nclayers aggregate --metrics {input.metrics} --train-logs {input.train_logs}"
        " --runs {input.infos} --out-dir {params.out_dir} > {log} 2>&1"
