# Layer-level experiments (Sec. 5, App. B), planned by memloc.layers.plan:
#   rewind_layers    one job per run: every layer x rewind epoch -> {run}/rewinding.parquet
#   retrain_layer    one job per run: every retrained layer -> {run}/retraining.parquet
#   collect_layer_tables  results/tables/{rewinding,retraining}.parquet with run columns
#   fig03 training curves + rewinding heatmaps per model     (primary dataset and noise)
#   fig04 retraining curves per layer                         (primary dataset [+ MNIST])
#   fig15-17 fig03's heatmaps per model x noise rate          (CIFAR-10 / MNIST / SVHN)
#   fig18 fig04 at every dataset and noise rate
# The fan-out rules have a `group:` so that a cluster profile packs several of them into
# one submission (--group-components retraining=9 packs 9 runs' retrainings).

from memloc.layers.plan import (
    layer_figure,
    layer_tables,
    retrained_layers,
    retraining_settings,
)


# Rewinding is one job per run, not per (run, layer): the job loads the data and the model
# once and reads one layer's history at a time from the memory-mapped checkpoints
# (memloc.layers.rewinding); per layer, each job would reload them and pay the process start
# (~3 s of imports) 9 times, which on CPU costs more than the work.  A job that dies keeps its
# finished layers' rows ({RUN}/rewinding.parquet.partial.json) and its rerun resumes there.
rule rewind_layers:
    """Accuracy per group and on the test set with each layer rewound to each epoch."""
    input:
        data=paths.VARIANT_TABLE,
        checkpoints=f"{RUN}/checkpoints.txt",
        fetched=paths.DATASET_INFO,
        splits=paths.DATASET_SPLITS,
    output:
        f"{RUN}/rewinding.parquet",
    log:
        "logs/rewind_layers/{dataset}_{model}_{variant}_seed{seed}.log",
    benchmark:
        "benchmarks/rewind_layers/{dataset}_{model}_{variant}_seed{seed}.tsv"
    group:
        "rewinding"
    conda:
        "../../environment.yml"
    threads: config["threads"]
    resources:
        mem_mb=job_mem_mb("rewind_layers"),
        runtime=job_runtime("rewind_layers"),
        gpu=1,
    params:
        inputs=run_inputs,
        epochs=config["rewinding"]["epochs"],
        batch_size=config["train"]["eval_batch_size"],
        compute=job_compute("rewind_layers"),
    script:
        "../scripts/rewind_layers.py"


# Retraining is one job per run, as rewinding is: the job loads the data once and retrains
# the run's layers one after another (each from a fresh copy of the final model); per layer,
# each job would pay the process start for about a minute of work at the paper's scale
# (bench/gpu_hours.py).  A job that dies keeps its finished layers' rows
# ({RUN}/retraining.parquet.partial.json) and its rerun resumes at the first unfinished one.
rule retrain_layer:
    """Each retrained layer reset to its initialization, the rest frozen, trained on clean examples."""
    input:
        data=paths.VARIANT_TABLE,
        checkpoints=f"{RUN}/checkpoints.txt",
        fetched=paths.DATASET_INFO,
        splits=paths.DATASET_SPLITS,
    output:
        f"{RUN}/retraining.parquet",
    log:
        "logs/retrain_layer/{dataset}_{model}_{variant}_seed{seed}.log",
    benchmark:
        "benchmarks/retrain_layer/{dataset}_{model}_{variant}_seed{seed}.tsv"
    group:
        "retraining"
    conda:
        "../../environment.yml"
    threads: config["threads"]
    resources:
        mem_mb=job_mem_mb("retrain_layer"),
        runtime=job_runtime("retrain_layer"),
        gpu=1,
    params:
        inputs=run_inputs,
        layers=lambda wc: retrained_layers(config, wc.model, wc.dataset),
        settings=lambda wc: retraining_settings(config, wc.seed),
        recalibrate_bn=config["retraining"]["recalibrate_bn"],
        compute=job_compute("retrain_layer"),
    script:
        "../scripts/retrain_layer.py"


# runs_per_job (memloc.plan.batches): several runs of a setting per job, as for training;
# each run keeps its finished layers until the job's last table is written.
for batch in batches_plan.batch_rules(config, "rewind_layers"):

    rule:
        name:
            batch.name
        input:
            data=paths.VARIANT_TABLE,
            checkpoints=seed_paths(RUN, batch.seeds, "checkpoints.txt"),
            fetched=paths.DATASET_INFO,
            splits=paths.DATASET_SPLITS,
        output:
            seed_paths(RUN, batch.seeds, "rewinding.parquet"),
        log:
            f"logs/{batch.name}/{{dataset}}_{{model}}_{{variant}}.log",
        benchmark:
            f"benchmarks/{batch.name}/{{dataset}}_{{model}}_{{variant}}.tsv"
        wildcard_constraints:
            dataset=batch.dataset_constraint(),
        group:
            "rewinding"
        conda:
            "../../environment.yml"
        threads: config["threads"]
        resources:
            **slurm_gpu_site(),
            mem_mb=job_mem_mb("rewind_layers"),
            runtime=job_runtime("rewind_layers", len(batch.seeds)),
            gpu=1,
        params:
            inputs=run_inputs,
            epochs=config["rewinding"]["epochs"],
            batch_size=config["train"]["eval_batch_size"],
            compute=batch_compute("rewind_layers", batch.seeds),
        script:
            "../scripts/rewind_runs.py"

    workflow.ruleorder(batch.name, "rewind_layers")


for batch in batches_plan.batch_rules(config, "retrain_layer"):

    rule:
        name:
            batch.name
        input:
            data=paths.VARIANT_TABLE,
            checkpoints=seed_paths(RUN, batch.seeds, "checkpoints.txt"),
            fetched=paths.DATASET_INFO,
            splits=paths.DATASET_SPLITS,
        output:
            seed_paths(RUN, batch.seeds, "retraining.parquet"),
        log:
            f"logs/{batch.name}/{{dataset}}_{{model}}_{{variant}}.log",
        benchmark:
            f"benchmarks/{batch.name}/{{dataset}}_{{model}}_{{variant}}.tsv"
        wildcard_constraints:
            dataset=batch.dataset_constraint(),
        group:
            "retraining"
        conda:
            "../../environment.yml"
        threads: config["threads"]
        resources:
            **slurm_gpu_site(),
            mem_mb=job_mem_mb("retrain_layer"),
            runtime=job_runtime("retrain_layer", len(batch.seeds)),
            gpu=1,
        params:
            inputs=run_inputs,
            layers=lambda wc: retrained_layers(config, wc.model, wc.dataset),
            settings=batch_retraining_settings(batch.seeds),
            recalibrate_bn=config["retraining"]["recalibrate_bn"],
            compute=batch_compute("retrain_layer", batch.seeds),
        script:
            "../scripts/retrain_runs.py"

    workflow.ruleorder(batch.name, "retrain_layer")


rule collect_layer_tables:
    """Every run's rewinding (or every run x layer's retraining) table, with run columns."""
    input:
        lambda wc: layer_tables(config, wc.table).files,
    output:
        paths.table("{table}"),
    log:
        "logs/collect_layer_tables/{table}.log",
    wildcard_constraints:
        table="(atypical_)?(rewinding|retraining)",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("collect_layer_tables"),
        runtime=job_runtime("collect_layer_tables"),
    params:
        runs=lambda wc: layer_tables(config, wc.table).runs,
    script:
        "../scripts/collect_run_tables.py"


rule layer_figure:
    input:
        lambda wc: paths.table(layer_figure(config, wc.fig).table),
    output:
        report(
            paths.figure("{fig}", "png"),
            caption="../report/layer_figure.rst",
            category="Layer rewinding and retraining",
        ),
        paths.figure("{fig}", "pdf"),
    log:
        "logs/figures/{fig}.log",
    wildcard_constraints:
        fig="fig03|fig04|fig09|fig15|fig16|fig17|fig18|fig19",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("layer_figure"),
        runtime=job_runtime("layer_figure"),
    params:
        figure=lambda wc: layer_figure(config, wc.fig).figure,
        selection=lambda wc: layer_figure(config, wc.fig).selection,
    script:
        "../scripts/figure.py"
