# results/tables/provenance.{parquet,csv,md}: what produced the results, from every training
# run's provenance.json (written by rule train) and the table job's own environment
# (memloc.core.provenance): versions against the lock, device, precision, threads,
# determinism, commit.


rule provenance:
    input:
        lambda wildcards: list(report_plan.provenance_records(config).values()),
    output:
        parquet=paths.table("provenance"),
        csv=report(
            paths.display_table("provenance", "csv"),
            caption="../report/provenance.rst",
            category="Provenance",
        ),
        md=paths.display_table("provenance", "md"),
    log:
        "logs/provenance.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("provenance"),
        runtime=job_runtime("provenance"),
    params:
        records=report_plan.provenance_records(config),
    script:
        "../scripts/provenance.py"
