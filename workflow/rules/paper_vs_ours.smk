# results/tables/paper_vs_ours.{parquet,csv,md}: the paper's numbers beside ours.  Every
# stage that reproduces a reported number writes its rows (memloc.report.paper_vs_ours.write_rows)
# to a parquet file of its own (rules dropout_paper_rows, flipping_paper_rows); this rule
# names them all, and joins them in this order.


rule paper_vs_ours:
    input:
        dropout=paths.PAPER_ROWS.format(stage="dropout"),
        flipping=paths.PAPER_ROWS.format(stage="flipping"),
    output:
        parquet=paths.table("paper_vs_ours"),
        csv=report(
            paths.display_table("paper_vs_ours", "csv"),
            caption="../report/paper_vs_ours.rst",
            category="Paper vs ours",
        ),
        md=paths.display_table("paper_vs_ours", "md"),
    log:
        "logs/paper_vs_ours.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("paper_vs_ours"),
        runtime=job_runtime("paper_vs_ours"),
    script:
        "../scripts/paper_vs_ours.py"
