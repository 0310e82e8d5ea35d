rule tables:
    input:
        metrics=f"{RESULTS}/tables/metrics.csv",
        training=f"{RESULTS}/tables/training.csv",
        runs=rules.select_best.output[0],
        infos=expand(f"{RESULTS}/runs/{{run}}/run.json", run=RUNS),
    output:
        setup=report(
            f"{RESULTS}/tables/setup.tex", caption="../report/tex_table.rst", category="Tables"
        ),
        last_layer=report(
            f"{RESULTS}/tables/last_layer.tex",
            caption="../report/tex_table.rst",
            category="Tables",
        ),
        by_layer=report(
            f"{RESULTS}/tables/by_layer.tex",
            caption="../report/tex_table.rst",
            category="Tables",
        ),
        macros=f"{RESULTS}/tables/macros.tex",
        runs=report(
            f"{RESULTS}/tables/runs.tex", caption="../report/tex_table.rst", category="Tables"
        ),
    params:
        collapse_eps=config["report"]["collapse_eps"],
        out_dir=subpath(output.setup, parent=True),
    log:
        f"{RESULTS}/logs/tables.log",
    conda:
        "../../envs/nclayers.yaml"
    shell:
        "python -m nclayers tables --metrics {input.metrics} --training {input.training}"
        " --runs-table {input.runs} --infos {input.infos}"
        " --collapse-eps {params.collapse_eps} --out-dir {params.out_dir} > {log} 2>&1"


rule report:
    input:
        tex=REPORT_TEX,
        sections=REPORT_SECTIONS,
        runs=rules.select_best.output[0],
        tables=rules.tables.output,
        figures=expand(f"{RESULTS}/figures/{{name}}.pdf", name=FIGURES),
        feature_tables=rules.feature_tables.output if FEATURES_ON else [],
        feature_figures=report_feature_figures,
        papers=paper_outputs(),
    output:
        report(f"{RESULTS}/report.pdf", caption="../report/report.rst", category="Report"),
    params:
        results=subpath(output[0], parent=True),
        papers=" ".join(PAPERS),
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../../envs/nclayers.yaml"
    shell:
        "python -m nclayers report --tex {input.tex} --results {params.results}"
        " --runs-table {input.runs} --feature-figures {input.feature_figures}"
        " --papers {params.papers}"
        " --out {output} > {log} 2>&1"
