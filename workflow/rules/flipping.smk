# Neuron flipping (Sec. 6.1) and mislabeled-example detection, on the primary setting:
#   select_flip_examples  N clean + N noisy training examples, dealt to shards
#   flip_shard            one job per (training seed, shard): a parquet part
#   merge_flipping        results/tables/flipping.parquet -> fig05
#   second_split          per training seed: train on split A, fine-tune on B (forgetting time)
#   detection_auc         per-example scores of every detector -> results/tables/auc.*
# memloc.flipping.plan plans the runs, parts, settings and figure inputs from config["flipping"].

from memloc.flipping import plan as flipping_plan

FLIP = paths.FLIP_DIR
# The run a flip_shard job flips on (its final checkpoint).
FLIPPED_RUN = paths.run_dir("{dataset}", "{model}", "{seed}", variant="noise{noise}")
DETECTION = paths.DETECTION_DIR


rule select_flip_examples:
    input:
        paths.DATA_TABLE,
    output:
        f"{FLIP}/examples.parquet",
    log:
        "logs/flipping/{dataset}_{model}_noise{noise}_examples.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("select_flip_examples"),
        runtime=job_runtime("select_flip_examples"),
    params:
        per_group=config["flipping"]["examples_per_group"],
        seed=config["flipping"]["selection_seed"],
        shards=config["flipping"]["shards"],
    script:
        "../scripts/select_flip_examples.py"


rule flip_shard:
    """Zero units of the trained model until each example of the shard is misclassified."""
    input:
        checkpoints=f"{FLIPPED_RUN}/checkpoints.txt",
        data=paths.DATA_TABLE,
        selection=f"{FLIP}/examples.parquet",
        fetched=paths.DATASET_INFO,
        splits=paths.DATASET_SPLITS,
    output:
        f"{FLIP}/seed{{seed}}/shard{{shard}}.parquet",
    log:
        "logs/flipping/{dataset}_{model}_noise{noise}_seed{seed}_shard{shard}.log",
    benchmark:
        "benchmarks/flipping/{dataset}_{model}_noise{noise}_seed{seed}_shard{shard}.tsv"
    wildcard_constraints:
        shard=r"\d+",
    group:
        "flipping"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("flip_shard"),
        runtime=job_runtime("flip_shard"),
        gpu=1,
    params:
        inputs=run_inputs,
        settings=lambda wc: flipping_plan.flip_settings(config, wc.seed),
        compute=job_compute("flip_shard"),
    script:
        "../scripts/flip_shard.py"


rule merge_flipping:
    """Every part of every flipping seed, with dataset/model/noise/seed columns."""
    input:
        [part.path for part in flipping_plan.flip_parts(config)],
    output:
        paths.table("flipping"),
    log:
        "logs/flipping/merge.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("merge_flipping"),
        runtime=job_runtime("merge_flipping"),
    params:
        runs=[part.run for part in flipping_plan.flip_parts(config)],
    script:
        "../scripts/collect_run_tables.py"


rule second_split:
    """Second-split forgetting time (Maini et al. 2022) of the split-A examples."""
    input:
        data=paths.DATA_TABLE,
        fetched=paths.DATASET_INFO,
        splits=paths.DATASET_SPLITS,
    output:
        f"{DETECTION}/second_split.parquet",
    log:
        "logs/second_split/{dataset}_{model}_noise{noise}_seed{seed}.log",
    benchmark:
        "benchmarks/second_split/{dataset}_{model}_noise{noise}_seed{seed}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("second_split"),
        runtime=job_runtime("second_split"),
        gpu=1,
    params:
        inputs=run_inputs,
        model=model_settings,
        first=lambda wc: flipping_plan.second_split_settings(config, wc.seed).first,
        second=lambda wc: flipping_plan.second_split_settings(config, wc.seed).second,
        split=flipping_plan.second_split(config),
        compute=job_compute("second_split"),
    script:
        "../scripts/second_split.py"


# runs_per_job (memloc.plan.batches): several seeds' second splits per job, one after another.
for batch in batches_plan.batch_rules(config, "second_split"):

    rule:
        name:
            batch.name
        input:
            data=paths.DATA_TABLE,
            fetched=paths.DATASET_INFO,
            splits=paths.DATASET_SPLITS,
        output:
            seed_paths(DETECTION, batch.seeds, "second_split.parquet"),
        log:
            f"logs/{batch.name}/{{dataset}}_{{model}}_noise{{noise}}.log",
        benchmark:
            f"benchmarks/{batch.name}/{{dataset}}_{{model}}_noise{{noise}}.tsv"
        wildcard_constraints:
            dataset=batch.dataset_constraint(),
        conda:
            "../../environment.yml"
        threads: 1
        resources:
            **slurm_gpu_site(),
            mem_mb=job_mem_mb("second_split"),
            runtime=job_runtime("second_split", len(batch.seeds)),
            gpu=1,
        params:
            inputs=run_inputs,
            model=model_settings,
            first=batch_second_split_settings(batch.seeds),
            second=flipping_plan.second_split_settings(config, batch.seeds[0]).second,
            split=flipping_plan.second_split(config),
            compute=batch_compute("second_split", batch.seeds),
        script:
            "../scripts/second_split_runs.py"

    workflow.ruleorder(batch.name, "second_split")


rule detection_auc:
    """Every detector's per-example scores on every flipping seed, and their ROC AUCs."""
    input:
        flipping=paths.table("flipping"),
        data=flipping_plan.flip_data_table(config),
        runs=[
            path
            for files in flipping_plan.detection_runs(config).values()
            for path in files.values()
        ],
    output:
        scores=paths.table("detection_scores"),
        parquet=paths.table("auc"),
    log:
        "logs/detection/auc.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("detection_auc"),
        runtime=job_runtime("detection_auc"),
    params:
        runs=flipping_plan.detection_runs(config),
    script:
        "../scripts/detection_auc.py"


rule auc_table:
    input:
        paths.table("auc"),
    output:
        csv=report(
            paths.display_table("auc", "csv"),
            caption="../report/auc.rst",
            category="Neuron flipping",
        ),
        md=paths.display_table("auc", "md"),
    log:
        "logs/detection/auc_table.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("auc_table"),
        runtime=job_runtime("auc_table"),
    script:
        "../scripts/auc_table.py"


rule flipping_paper_rows:
    input:
        flipping=paths.table("flipping"),
        auc=paths.table("auc"),
    output:
        paths.PAPER_ROWS.format(stage="flipping"),
    log:
        "logs/flipping/paper_rows.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("flipping_paper_rows"),
        runtime=job_runtime("flipping_paper_rows"),
    params:
        setting=flipping_plan.our_setting(config),
    script:
        "../scripts/flipping_paper_rows.py"


rule fig05:
    input:
        paths.table("flipping"),
    output:
        report(
            paths.figure("fig05", "png"),
            caption="../report/fig05.rst",
            category="Neuron flipping",
        ),
        paths.figure("fig05", "pdf"),
    log:
        "logs/figures/fig05.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("fig05"),
        runtime=job_runtime("fig05"),
    params:
        figure="fig05",
        selection=flipping_plan.fig05_selection(config),
    script:
        "../scripts/figure.py"
