rule features:
    input:
        checkpoint=f"{RESULTS}/runs/{{run}}/checkpoints/epoch{{epoch}}.pt",
        info=f"{RESULTS}/runs/{{run}}/run.json",
    output:
        sample=f"{RESULTS}/features/{{run}}/epoch{{epoch}}/sample.npz",
        tables=expand(
            f"{RESULTS}/features/{{run}}/epoch{{epoch}}/{{table}}.csv",
            table=FEATURE_TABLES,
            allow_missing=True,
        ),
    params:
        per_class=config["features"]["per_class"],
        out_dir=subpath(output.sample, parent=True),
    log:
        f"{RESULTS}/logs/features/{{run}}/epoch{{epoch}}.log",
    conda:
        "../../envs/nclayers.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "python -m nclayers --threads {threads} features --run-json {input.info}"
        " --checkpoint {input.checkpoint} --per-class {params.per_class}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule feature_tables:
    input:
        expand(
            f"{RESULTS}/features/{{run}}/epoch{{epoch}}/clusters.csv",
            run=RUNS,
            epoch=FEATURE_EPOCHS,
        ),
    output:
        clusters=f"{RESULTS}/tables/features_clusters.tex",
        retention=f"{RESULTS}/tables/features_retention.tex",
        pca=f"{RESULTS}/tables/features_pca_summary.csv",
        macros=f"{RESULTS}/tables/features_macros.tex",
    params:
        dirs=lambda wildcards, input: [os.path.dirname(p) for p in input],
        runs=[run for run in RUNS for _ in FEATURE_EPOCHS],
        epochs=[epoch for _ in RUNS for epoch in FEATURE_EPOCHS],
        out_dir=subpath(output.clusters, parent=True),
        figure_run=FEATURE_RUN,
        figure_dir=f"figures/features/{FEATURE_RUN}/epoch{FEATURE_EPOCHS[-1]}",
    log:
        f"{RESULTS}/logs/feature_tables.log",
    conda:
        "../../envs/nclayers.yaml"
    shell:
        "python -m nclayers feature-tables --dirs {params.dirs} --runs {params.runs}"
        " --epochs {params.epochs} --figure-run {params.figure_run}"
        " --figure-dir {params.figure_dir} --out-dir {params.out_dir} > {log} 2>&1"


rule feature_figure:
    input:
        expand(
            f"{RESULTS}/features/{{run}}/epoch{{epoch}}/{{table}}.csv",
            table=FEATURE_TABLES,
            allow_missing=True,
        ),
    output:
        f"{RESULTS}/figures/features/{{run}}/epoch{{epoch}}/{{feature}}.pdf",
    params:
        dir=lambda wildcards, input: os.path.dirname(input[0]),
    log:
        f"{RESULTS}/logs/figures/features/{{run}}/epoch{{epoch}}/{{feature}}.log",
    conda:
        "../../envs/nclayers.yaml"
    shell:
        "python -m nclayers feature-figure {wildcards.feature} --dir {params.dir}"
        " --out {output} > {log} 2>&1"
