# One job per run measures all of its checkpoints: the data are loaded and the model built
# once, and a short job's start-up (importing torch) is paid once per run, not per checkpoint.
rule measure:
    input:
        checkpoints=f"{RESULTS}/runs/{{run}}/checkpoints",
        info=f"{RESULTS}/runs/{{run}}/run.json",
    output:
        metrics=f"{RESULTS}/runs/{{run}}/metrics.csv",
        spectra=f"{RESULTS}/runs/{{run}}/spectra.csv",
    params:
        batch_size=config["measure"]["batch_size"],
        checkpoints=lambda wildcards, input: " ".join(
            f"{input.checkpoints}/epoch{epoch}.pt" for epoch in EPOCHS[wildcards.run]
        ),
    log:
        f"{RESULTS}/logs/measure/{{run}}.log",
    conda:
        "../../envs/nclayers.yaml"
    threads: 1
    resources:
        gpu=CLUSTER_GPUS,
        mem_mb=4000,
        # minutes: the job measures all of the run's checkpoints
        runtime=lambda wildcards: 60 * len(EPOCHS[wildcards.run]),
    shell:
        "python -m nclayers --threads {threads} measure --info {input.info}"
        " --checkpoint {params.checkpoints} --batch-size {params.batch_size}"
        " --out {output.metrics} --spectra {output.spectra} > {log} 2>&1"
