# The localization benchmark (issue 23, docs/localization.md): every method of
# config["localization"]["methods"] ranks units for the selected examples
#   localize_shard    one job per (track, shard): a parquet part
#                     ground_truth: the tab1 example-tied dropout run, its tied channels
#                     deletion: the primary run of the first flipping seed, flipping's units
#   merge_localization  results/tables/localization.parquet
#   localization_table  localization.{csv,md}: one row per method
#   localization_figure efficacy vs specificity, precision vs chance
# memloc.localize.plan plans the runs, parts and settings.

from memloc.localize import plan as localize_plan


rule localize_shard:
    """Rank the units of each example of the shard by every method; judge the top-k."""
    input:
        unpack(lambda wc: localize_plan.shard_inputs(config, wc.track)),
    output:
        paths.LOCALIZE_PART,
    log:
        "logs/localization/{track}_shard{shard}.log",
    benchmark:
        "benchmarks/localization/{track}_shard{shard}.tsv"
    wildcard_constraints:
        track="|".join(localize_plan.TRACKS),
        shard=r"\d+",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("localize_shard"),
        runtime=job_runtime("localize_shard"),
        gpu=1,
    params:
        inputs=lambda wc: localize_plan.run_inputs(config, wc.track),
        settings=lambda wc: localize_plan.shard_settings(config, wc.track),
        compute=job_compute("localize_shard"),
    script:
        "../scripts/localize_shard.py"


rule merge_localization:
    """Every part of every track, with track/dataset/model/noise/seed columns."""
    input:
        [part["path"] for part in localize_plan.parts(config)],
    output:
        paths.table("localization"),
    log:
        "logs/localization/merge.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("merge_localization"),
        runtime=job_runtime("merge_localization"),
    params:
        runs=[part["run"] for part in localize_plan.parts(config)],
    script:
        "../scripts/collect_run_tables.py"


rule localization_table:
    input:
        paths.table("localization"),
    output:
        csv=report(
            paths.display_table("localization", "csv"),
            caption="../report/localization.rst",
            category="Localization benchmark",
        ),
        md=paths.display_table("localization", "md"),
    log:
        "logs/localization/table.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("localization_table"),
        runtime=job_runtime("localization_table"),
    script:
        "../scripts/localize_table.py"


rule localization_figure:
    input:
        paths.table("localization"),
    output:
        report(
            paths.figure("localization", "png"),
            caption="../report/localization_figure.rst",
            category="Localization benchmark",
        ),
        paths.figure("localization", "pdf"),
    log:
        "logs/localization/figure.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("localization_figure"),
        runtime=job_runtime("localization_figure"),
    script:
        "../scripts/localize_figure.py"
