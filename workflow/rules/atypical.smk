# Typical vs atypical examples (Sec. 7), planned by memloc.atypical.plan: C-scores
# (published: fetch_cscores, or hold-out estimate) -> the atypical data table -> noise-free
# runs (rule train, variant "atypical") -> fig08; fig09 / fig19 are layer figures
# (layers.smk); cscore_holdout: results/tables/cscore_holdout.{parquet,csv,md}, the
# estimate's precision.

from memloc.atypical import plan as atypical_plan


rule fetch_cscores:
    """A published C-score file (atypical.cscore_files.{dataset}.url), downloaded, checked
    (checksums, one score in [0, 1] per training example) and renamed into place; a local
    rule: it runs where the internet is, once, before any job reads the file."""
    output:
        atypical_plan.CSCORE_DOWNLOAD,
    log:
        "logs/fetch_cscores/{dataset}.{ext}.log",
    wildcard_constraints:
        dataset=atypical_plan.fetch_dataset_pattern(config),
        ext="npz|npy",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("fetch_cscores"),
        runtime=job_runtime("fetch_cscores"),
    params:
        download=lambda wc: atypical_plan.cscore_downloads(config)[wc.dataset],
    script:
        "../scripts/fetch_cscores.py"


rule holdout_model:
    """One subset model of the hold-out C-score estimate: its correctness on every example."""
    input:
        data=paths.DATA_TABLE.format(dataset="{dataset}", noise="0"),
        fetched=paths.DATASET_INFO,
        splits=paths.DATASET_SPLITS,
    output:
        paths.HOLDOUT_PART,
    log:
        "logs/holdout_model/{dataset}_{k}.log",
    conda:
        "../../environment.yml"
    threads: config["threads"]
    resources:
        mem_mb=job_mem_mb("holdout_model"),
        runtime=job_runtime("holdout_model"),
        gpu=1,
    params:
        inputs=run_inputs,
        model=atypical_plan.holdout_model(config),
        train=atypical_plan.holdout_settings(config),
        holdout=config["atypical"]["holdout"],
        compute=job_compute("holdout_model"),
    script:
        "../scripts/holdout_model.py"


rule atypical_data:
    """The noise-free training set with cscore, times_held_out and is_atypical."""
    input:
        base=paths.DATA_TABLE.format(dataset="{dataset}", noise="0"),
        holdout=lambda wc: atypical_plan.holdout_parts(config, wc.dataset),
        cscores=lambda wc: atypical_plan.cscore_inputs(config, wc.dataset),
        fetched=paths.DATASET_INFO,
        splits=paths.DATASET_SPLITS,
    output:
        paths.VARIANT_TABLE.format(dataset="{dataset}", variant="atypical"),
    log:
        "logs/atypical_data/{dataset}.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("atypical_data"),
        runtime=job_runtime("atypical_data"),
    params:
        threshold=config["atypical"]["threshold"],
        published=lambda wc: atypical_plan.published_cscores(
            config, wc.dataset, data_source()
        ),
    script:
        "../scripts/atypical_data.py"


rule cscore_holdout:
    """How precise the hold-out C-scores are: times_held_out per example, the atypical count
    and its stability under a bootstrap over the subset models (memloc.atypical.precision).
    """
    input:
        tables=[d["table"] for d in atypical_plan.holdout_report(config).values()],
        parts=[
            p
            for d in atypical_plan.holdout_report(config).values()
            for p in d["parts"]
        ],
    output:
        parquet=paths.table("cscore_holdout"),
        csv=paths.display_table("cscore_holdout", "csv"),
        md=paths.display_table("cscore_holdout", "md"),
    log:
        "logs/cscore_holdout.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("cscore_holdout"),
        runtime=job_runtime("cscore_holdout"),
    params:
        datasets=atypical_plan.holdout_report(config),
        holdout=config["atypical"]["holdout"],
        threshold=config["atypical"]["threshold"],
    script:
        "../scripts/cscore_holdout.py"


rule collect_atypical_tables:
    """One table (gradients or metrics) of every typical/atypical run, with run columns."""
    input:
        lambda wc: atypical_plan.atypical_tables(config, wc.table).files,
    output:
        paths.table("atypical_{table}"),
    log:
        "logs/collect_atypical_tables/{table}.log",
    wildcard_constraints:
        table="gradients|metrics",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("collect_atypical_tables"),
        runtime=job_runtime("collect_atypical_tables"),
    params:
        runs=lambda wc: atypical_plan.atypical_tables(config, wc.table).runs,
    script:
        "../scripts/collect_run_tables.py"


rule fig08:
    """Gradient accounting for typical vs atypical examples (fig01's form), per dataset."""
    input:
        paths.table("atypical_gradients"),
    output:
        report(
            paths.figure("fig08", "png"),
            caption="../report/fig08.rst",
            category="Typical vs atypical examples",
        ),
        paths.figure("fig08", "pdf"),
    log:
        "logs/figures/fig08.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("fig08"),
        runtime=job_runtime("fig08"),
    params:
        figure="fig08",
        selection=atypical_plan.fig08_selection(config),
    script:
        "../scripts/figure.py"
