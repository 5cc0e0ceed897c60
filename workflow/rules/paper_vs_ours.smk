# results/tables/paper_vs_ours.{parquet,csv,md}: the paper's numbers beside ours.  Every
# stage that reproduces a reported number writes its rows (memloc.report.tables.write_rows) to a
# parquet file and appends that path to `paper_rows` (common.smk) in its own .smk.


rule paper_vs_ours:
    input:
        lambda wc: paper_rows,
    output:
        parquet="results/tables/paper_vs_ours.parquet",
        csv=report(
            "results/tables/paper_vs_ours.csv",
            caption="../report/paper_vs_ours.rst",
            category="Paper vs ours",
        ),
        md="results/tables/paper_vs_ours.md",
    log:
        "logs/paper_vs_ours.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/paper_vs_ours.py"
