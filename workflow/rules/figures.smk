rule figure:
    input:
        unpack(figure_inputs),
        runs=rules.select_best.output[0],
    output:
        report(
            f"{RESULTS}/figures/{{name}}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{name}"},
        ),
    params:
        tables=lambda w, input: step_args(input, FIGURE_TABLES[w.name]),
        collapse_eps=config["report"]["collapse_eps"],
        # the PDF's caption, for snakemake --report (workflow/report/figure.rst)
        caption=lambda w: rst_caption(REPORT_TEX, w.name),
    log:
        f"{RESULTS}/logs/figures/{{name}}.log",
    conda:
        "../../envs/nclayers.yaml"
    shell:
        "python -m nclayers figure {wildcards.name} {params.tables} --runs-table {input.runs}"
        " --collapse-eps {params.collapse_eps} --out {output} > {log} 2>&1"
