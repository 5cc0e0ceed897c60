RUN = "results/runs/{dataset}/{model}/noise{noise}/seed{seed}"


rule train:
    """One training run: a checkpoint per epoch (epoch 0 = init), per-example records,
    accuracies and gradient accounting. Resumes from results/runs/.../checkpoints/."""
    input:
        data="results/data/{dataset}/noise{noise}.parquet",
    output:
        metrics=f"{RUN}/metrics.parquet",
        examples=f"{RUN}/examples.parquet",
        gradients=f"{RUN}/gradients.parquet",
        checkpoints=f"{RUN}/checkpoints.txt",
    log:
        f"logs/train/{{dataset}}_{{model}}_noise{{noise}}_seed{{seed}}.log",
    benchmark:
        f"benchmarks/train/{{dataset}}_{{model}}_noise{{noise}}_seed{{seed}}.tsv"
    params:
        source=data_source(),
        test_subset=config["test_subset"],
        model=model_settings,
        train=lambda wc: {**config["train"], "seed": int(wc.seed)},
        device=config["device"],
    threads: config["threads"]
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=1,
    script:
        "../scripts/train.py"


rule collect_run_tables:
    """One table (gradients or metrics) of every run the figures use, with run columns."""
    input:
        lambda wc: [run_file(r, f"{wc.table}.parquet") for r in gradient_runs(config)],
    output:
        "results/tables/{table}.parquet",
    log:
        "logs/collect_run_tables/{table}.log",
    params:
        runs=lambda wc: gradient_runs(config),
    wildcard_constraints:
        table="gradients|metrics",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    script:
        "../scripts/collect_run_tables.py"
