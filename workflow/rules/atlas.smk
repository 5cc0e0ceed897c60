# The memorization atlas of the primary setting (memloc.atlas; docs/atlas.md), planned by memloc.atlas.plan:
#   atlas_neighbours  the final model's penultimate features -> 5 nearest training examples
#   atlas_table       one row per training example: atlas.parquet (a join of the DAG's files)
#   atlas_page        page/index.html + images + per-epoch details (in the HTML report)

from memloc.atlas import plan as atlas_plan

ATLAS_RUN = atlas_plan.atlas_run(config)
ATLAS_INPUTS = atlas_plan.table_inputs(config)


rule atlas_neighbours:
    """Nearest training neighbours in the final model's penultimate features."""
    input:
        checkpoints=atlas_plan.run_file(config, "checkpoints.txt"),
        data=ATLAS_INPUTS["data"],
        fetched=paths.DATASET_INFO.format(dataset=ATLAS_RUN["dataset"]),
        splits=paths.DATASET_SPLITS.format(dataset=ATLAS_RUN["dataset"]),
    output:
        atlas_plan.atlas_path(config, "neighbours.parquet"),
    log:
        "logs/atlas/neighbours.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: job_resources.mem_mb(
            "atlas_neighbours", config, ATLAS_RUN, attempt
        ),
        runtime=lambda wc, attempt: job_resources.minutes(
            "atlas_neighbours", config, ATLAS_RUN, attempt
        ),
        gpu=1,
    params:
        inputs=runs_plan.run_inputs(
            config,
            ATLAS_RUN["dataset"],
            f"noise{paths.noise_label(ATLAS_RUN['noise'])}",
        ),
        k=config["atlas"]["neighbours"],
        compute=lambda wc: compute_settings(config, "atlas_neighbours", ATLAS_RUN),
    script:
        "../scripts/atlas_neighbours.py"


rule atlas_table:
    """One row per training example with everything the DAG measured about it."""
    input:
        **ATLAS_INPUTS,
    output:
        atlas_plan.atlas_path(config, "atlas.parquet"),
    log:
        "logs/atlas/table.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("atlas_table"),
        runtime=job_runtime("atlas_table"),
    script:
        "../scripts/atlas_table.py"


rule atlas_page:
    """The atlas page: open page/index.html from disk (no network needed)."""
    input:
        atlas=atlas_plan.atlas_path(config, "atlas.parquet"),
        examples=ATLAS_INPUTS["examples"],
        data=ATLAS_INPUTS["data"],
        fetched=paths.DATASET_INFO.format(dataset=ATLAS_RUN["dataset"]),
        splits=paths.DATASET_SPLITS.format(dataset=ATLAS_RUN["dataset"]),
    output:
        directory(atlas_plan.atlas_path(config, "page")),
    log:
        "logs/atlas/page.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("atlas_page"),
        runtime=job_runtime("atlas_page"),
    params:
        inputs=runs_plan.run_inputs(
            config,
            ATLAS_RUN["dataset"],
            f"noise{paths.noise_label(ATLAS_RUN['noise'])}",
        ),
        title=atlas_plan.title(config),
    script:
        "../scripts/atlas_page.py"


rule atlas_summary:
    """The atlas in the HTML report: where each group sits on the Data Map, and the layers of
    the single-removal flips, with a link to the page (a folder: a pure HTML report cannot
    hold it)."""
    input:
        atlas=atlas_plan.atlas_path(config, "atlas.parquet"),
        page=atlas_plan.atlas_path(config, "page"),
    output:
        data_map=report(
            atlas_plan.atlas_path(config, atlas_plan.SUMMARY_FILES["data_map"]),
            caption="../report/atlas.rst",
            category="Atlas",
        ),
        data_map_md=atlas_plan.atlas_path(
            config, atlas_plan.SUMMARY_FILES["data_map_md"]
        ),
        layers=report(
            atlas_plan.atlas_path(config, atlas_plan.SUMMARY_FILES["layers"]),
            caption="../report/atlas_layers.rst",
            category="Atlas",
        ),
        layers_md=atlas_plan.atlas_path(config, atlas_plan.SUMMARY_FILES["layers_md"]),
    log:
        "logs/atlas/summary.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("atlas_summary"),
        runtime=job_runtime("atlas_summary"),
    script:
        "../scripts/atlas_summary.py"
