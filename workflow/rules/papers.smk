# The papers' sections of the report (report.papers): each paper's figures and tables, one job
# each, drawn from the aggregated tables (nclayers.papers.<paper>); "claims" is the table of
# the paper's claims checked against the measured numbers. A figure's job waits for the tables
# it reads (vocabulary.PAPER_FIGURE_READS), a table's for all of them.


rule paper_figure:
    input:
        unpack(paper_figure_tables),
        **PAPER_FIGURE_FEATURE_INPUTS,
    output:
        report(
            f"{RESULTS}/figures/{{paper}}/{{figure}}.pdf",
            caption="../report/paper_figure.rst",
            category="Papers",
            subcategory="{paper}",
            labels={"paper": "{paper}", "figure": "{figure}"},
        ),
    params:
        tables=f"{RESULTS}/tables",
        thresholds=THRESHOLD_ARGS,
        caption=lambda w: rst_caption(section_tex(w.paper), w.figure),
    log:
        f"{RESULTS}/logs/figures/{{paper}}/{{figure}}.log",
    conda:
        "../../envs/nclayers.yaml"
    shell:
        "python -m nclayers paper-figure {wildcards.paper} {wildcards.figure}"
        " --tables {params.tables} --clusters {input.clusters} --retention {input.retention}"
        " --pca-summary {input.pca_summary} {params.thresholds} --out {output} > {log} 2>&1"


rule paper_table:
    input:
        **PAPER_INPUTS,
        **PAPER_FEATURE_INPUTS,
    output:
        csv=f"{RESULTS}/tables/{{paper}}/{{table}}.csv",
        tex=f"{RESULTS}/tables/{{paper}}/{{table}}.tex",
    params:
        tables=subpath(input.runs, parent=True),
        thresholds=THRESHOLD_ARGS,
    log:
        f"{RESULTS}/logs/tables/{{paper}}/{{table}}.log",
    conda:
        "../../envs/nclayers.yaml"
    shell:
        "python -m nclayers paper-table {wildcards.paper} {wildcards.table}"
        " --tables {params.tables} --clusters {input.clusters} --retention {input.retention}"
        " --pca-summary {input.pca_summary} {params.thresholds} --out-csv {output.csv} --out-tex {output.tex} > {log} 2>&1"
