rule figure:
    input:
        metrics=rules.aggregate.output.metrics,
        training=rules.aggregate.output.training,
        runs=rules.select_best.output[0],
        spectra=rules.aggregate.output.spectra,
    output:
        report(
            f"{RESULTS}/figures/{{name}}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{name}"},
        ),
    params:
        collapse_eps=config["report"]["collapse_eps"],
        # the PDF's caption, for snakemake --report (workflow/report/figure.rst)
        caption=lambda w: rst_caption(REPORT_TEX, w.name),
    log:
        f"{RESULTS}/logs/figures/{{name}}.log",
    conda:
        "../../envs/nclayers.yaml"
    shell:
        "python -m nclayers figure {wildcards.name} --metrics {input.metrics}"
        " --training {input.training} --runs-table {input.runs}"
        " --spectra {input.spectra} --collapse-eps {params.collapse_eps}"
        " --out {output} > {log} 2>&1"
