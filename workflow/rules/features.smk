rule features:
    input:
        checkpoints=f"{RESULTS}/runs/{{run}}/checkpoints",
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
        memory_gib=config["features"]["memory_gib"],
        ward_scaling=config["features"]["ward_scaling"],
        out_dir=subpath(output.sample, parent=True),
    log:
        f"{RESULTS}/logs/features/{{run}}/epoch{{epoch}}.log",
    conda:
        "../../envs/nclayers.yaml"
    threads: 1
    # The feature analysis and its figures are the longest chain after training: first when
    # the cores are short, while the shorter jobs fill the others.
    priority: 1
    resources:
        # the clustering's budget and 2 GiB for the rest (the model, the sample, UMAP)
        mem_mb=int(config["features"]["memory_gib"] * 1024) + 2048,
        runtime=60,
    shell:
        "python -m nclayers --threads {threads} features --info {input.info}"
        " --checkpoint {input.checkpoints}/epoch{wildcards.epoch}.pt --per-class {params.per_class}"
        " --memory-gib {params.memory_gib}"
        " --ward-scaling {params.ward_scaling}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule feature_tables:
    input:
        clusters=feature_files("clusters"),
        retention=feature_files("retention"),
        pca_summary=feature_files("pca_summary"),
    output:
        clusters=f"{RESULTS}/tables/features_clusters.tex",
        retention=f"{RESULTS}/tables/features_retention.tex",
        pca=report(
            f"{RESULTS}/tables/features_pca_summary.csv",
            caption="../report/features_pca_summary.rst",
            category="Feature analysis",
        ),
    log:
        f"{RESULTS}/logs/feature_tables.log",
    conda:
        "../../envs/nclayers.yaml"
    shell:
        "python -m nclayers feature-tables --clusters {input.clusters}"
        " --retention {input.retention} --pca-summary {input.pca_summary}"
        " --out-clusters {output.clusters} --out-retention {output.retention}"
        " --out-pca-summary {output.pca} > {log} 2>&1"


# One job draws the eight figures of a run and epoch: apart, each paid the imports and
# matplotlib's first drawing again. Naming one figure's file as the target redraws the eight,
# not the analysis. Each figure keeps its own caption in Snakemake's report
# (workflow/report/features/<name>.rst).
rule feature_figures:
    input:
        expand(
            f"{RESULTS}/features/{{run}}/epoch{{epoch}}/{{table}}.csv",
            table=FEATURE_TABLES,
            allow_missing=True,
        ),
    output:
        **{
            name: report(
                FEATURE_FIGURE.replace("{feature}", name),
                caption=f"../report/features/{name}.rst",
                category="Feature analysis",
                subcategory="{run}, epoch {epoch}",
                labels={"run": "{run}", "epoch": "{epoch}", "figure": name},
            )
            for name in FEATURE_FIGURES
        },
    params:
        dir=subpath(input[0], parent=True),
        out_dir=subpath(output[0], parent=True),
        captions=feature_captions,
    log:
        f"{RESULTS}/logs/figures/features/{{run}}/epoch{{epoch}}.log",
    conda:
        "../../envs/nclayers.yaml"
    priority: 1  # as the analysis's
    shell:
        "python -m nclayers feature-figures --dir {params.dir} --out-dir {params.out_dir}"
        " > {log} 2>&1"
