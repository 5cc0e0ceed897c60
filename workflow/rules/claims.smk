# results/tables/claims.{parquet,csv,md}: one row per qualitative claim of the paper, with an
# explicit numeric criterion computed from the collected tables (memloc.report.claims).

from memloc.report import plan as report_plan


rule claims:
    input:
        **report_plan.claim_tables(config),
    output:
        parquet=paths.table("claims"),
        csv=report(
            paths.display_table("claims", "csv"),
            caption="../report/claims.rst",
            category="Paper vs ours",
        ),
        md=paths.display_table("claims", "md"),
    log:
        "logs/claims.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("claims"),
        runtime=job_runtime("claims"),
    params:
        setting=report_plan.claim_setting(config),
    script:
        "../scripts/claims.py"
