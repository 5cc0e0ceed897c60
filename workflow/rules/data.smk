rule corrupt_data:
    """The training set of one dataset and noise rate, with its clean/noisy mask."""
    output:
        paths.DATA_TABLE,
    log:
        "logs/corrupt_data/{dataset}_noise{noise}.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        source=data_source(),
        subset=config["train_subset"],
        seed=config["data_seed"],
    script:
        "../scripts/corrupt_data.py"
