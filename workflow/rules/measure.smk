rule measure:
    input:
        checkpoints=f"{RESULTS}/runs/{{run}}/checkpoints",
        info=f"{RESULTS}/runs/{{run}}/run.json",
    output:
        metrics=f"{RESULTS}/runs/{{run}}/metrics/epoch{{epoch}}.csv",
        spectra=f"{RESULTS}/runs/{{run}}/spectra/epoch{{epoch}}.csv",
    params:
        batch_size=config["measure"]["batch_size"],
    log:
        f"{RESULTS}/logs/measure/{{run}}/epoch{{epoch}}.log",
    conda:
        "../../envs/nclayers.yaml"
    threads: 1
    resources:
        gpu=CLUSTER_GPUS,
        mem_mb=4000,
        runtime=30,
    shell:
        "python -m nclayers --threads {threads} measure --info {input.info}"
        " --checkpoint {input.checkpoints}/epoch{wildcards.epoch}.pt --batch-size {params.batch_size}"
        " --out {output.metrics} --spectra {output.spectra} > {log} 2>&1"
