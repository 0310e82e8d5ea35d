rule train:
    output:
        # epoch<e>.pt for each of the run's checkpoints (they differ between groups).
        checkpoints=directory(f"{RESULTS}/runs/{{run}}/checkpoints"),
        train_log=f"{RESULTS}/runs/{{run}}/train_log.csv",
        epoch_metrics=f"{RESULTS}/runs/{{run}}/epoch_metrics.csv",
        info=f"{RESULTS}/runs/{{run}}/run.json",
    params:
        spec=run_spec,
        out_dir=subpath(output.info, parent=True),
    log:
        f"{RESULTS}/logs/train/{{run}}.log",
    conda:
        "../../envs/nclayers.yaml"
    threads: 1
    resources:
        gpu=CLUSTER_GPUS,
        mem_mb=4000,
        runtime=60,
        # How often the state is saved changes no number: not a param, so no rerun.
        resume_every=lambda wildcards: RESUME_EVERY[wildcards.run],
    shell:
        "python -m nclayers --threads {threads} train --spec {params.spec:q}"
        " --out-dir {params.out_dir} --resume-every {resources.resume_every} > {log} 2>&1"
