# A run's data variant is its data table: noise{fraction} (label noise, groups clean/noisy)
# or atypical (no noise, groups typical/atypical by C-score).
RUN = paths.RUN_DIR


rule train:
    """One training run: a checkpoint per epoch (epoch 0 = init), per-example records,
    accuracies and gradient accounting, and what produced them (provenance.json). Resumes
    from results/runs/.../checkpoints/."""
    input:
        data=paths.VARIANT_TABLE,
        fetched=paths.DATASET_INFO,
        splits=paths.DATASET_SPLITS,
    output:
        metrics=f"{RUN}/metrics.parquet",
        examples=f"{RUN}/examples.parquet",
        gradients=f"{RUN}/gradients.parquet",
        checkpoints=f"{RUN}/checkpoints.txt",
        provenance=f"{RUN}/provenance.json",
    log:
        "logs/train/{dataset}_{model}_{variant}_seed{seed}.log",
    benchmark:
        "benchmarks/train/{dataset}_{model}_{variant}_seed{seed}.tsv"
    conda:
        "../../environment.yml"
    threads: config["threads"]
    resources:
        mem_mb=job_mem_mb("train"),
        runtime=job_runtime("train"),
        gpu=1,
    params:
        inputs=run_inputs,
        model=model_settings,
        train=train_settings,
        compute=job_compute("train"),
    script:
        "../scripts/train.py"


# runs_per_job (memloc.plan.batches): several runs of a setting in one job, one after
# another, each resuming from its checkpoints; a rule per tuple of seeds (none by default).
RUN_FILES = {
    "metrics": "metrics.parquet",
    "examples": "examples.parquet",
    "gradients": "gradients.parquet",
    "checkpoints": "checkpoints.txt",
    "provenance": "provenance.json",
}

for batch in batches_plan.batch_rules(config, "train"):

    rule:
        name:
            batch.name
        input:
            data=paths.VARIANT_TABLE,
            fetched=paths.DATASET_INFO,
            splits=paths.DATASET_SPLITS,
        output:
            **batch_outputs(RUN, batch.seeds, RUN_FILES),
        log:
            f"logs/{batch.name}/{{dataset}}_{{model}}_{{variant}}.log",
        benchmark:
            f"benchmarks/{batch.name}/{{dataset}}_{{model}}_{{variant}}.tsv"
        wildcard_constraints:
            dataset=batch.dataset_constraint(),
        conda:
            "../../environment.yml"
        threads: config["threads"]
        resources:
            **slurm_gpu_site(),
            mem_mb=job_mem_mb("train"),
            runtime=job_runtime("train", len(batch.seeds)),
            gpu=1,
        params:
            inputs=run_inputs,
            model=model_settings,
            seeds=list(batch.seeds),
            train=batch_train_settings(batch.seeds),
            files=list(RUN_FILES),
            compute=batch_compute("train", batch.seeds),
        script:
            "../scripts/train_runs.py"

    workflow.ruleorder(batch.name, "train")


rule collect_run_tables:
    """One table (gradients or metrics) of every run the figures use, with run columns."""
    input:
        gradient_run_files,
    output:
        paths.table("{table}"),
    log:
        "logs/collect_run_tables/{table}.log",
    wildcard_constraints:
        table="gradients|metrics",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("collect_run_tables"),
        runtime=job_runtime("collect_run_tables"),
    params:
        runs=runs_plan.gradient_runs(config),
    script:
        "../scripts/collect_run_tables.py"
