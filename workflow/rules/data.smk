# The datasets: fetched (or found, or exported) and checked once each, then the corrupted
# training sets.  Every job that loads a dataset has its results/data/{dataset}/dataset.json
# as an input and reads it without downloading (memloc.runs.plan.data_source).


rule fetch_dataset:
    """One dataset, built in or declared (dataset_definitions), ready before any job reads it:
    both splits downloaded (download: true; only here) or found, and checked (checksums,
    or every file of a declared dataset; an ImageFolder with export_from is written first).
    A local rule: on a cluster it runs where the internet is."""
    output:
        info=paths.DATASET_INFO,
        splits=paths.DATASET_SPLITS,
    log:
        "logs/fetch_dataset/{dataset}.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("fetch_dataset"),
        runtime=job_runtime("fetch_dataset"),
    params:
        source=runs_plan.fetch_source(config),
    script:
        "../scripts/fetch_dataset.py"


rule corrupt_data:
    """The training set of one dataset and noise rate, with its clean/noisy mask."""
    input:
        fetched=paths.DATASET_INFO,
        splits=paths.DATASET_SPLITS,
    output:
        paths.DATA_TABLE,
    log:
        "logs/corrupt_data/{dataset}_noise{noise}.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("corrupt_data"),
        runtime=job_runtime("corrupt_data"),
    params:
        source=data_source(),
        subset=config["train_subset"],
        seed=config["data_seed"],
    script:
        "../scripts/corrupt_data.py"
