# Neuron flipping (Sec. 6.1) and mislabeled-example detection, on the primary setting:
#   select_flip_examples  N clean + N noisy training examples, dealt to shards
#   flip_shard            one job per (training seed, shard): a parquet part
#   merge_flipping        results/tables/flipping.parquet -> fig05
#   second_split          per training seed: train on split A, fine-tune on B (forgetting time)
#   detection_auc         per-example scores of every detector -> results/tables/auc.*

from memloc.flipping import plan as flipping_study
from memloc.flipping.plan import flip_path

FLIP = flipping_study.FLIP_DIR
DETECTION = flipping_study.DETECTION_DIR

paper_rows.append("results/tables/paper_vs_ours/flipping.parquet")


rule select_flip_examples:
    input:
        "results/data/{dataset}/noise{noise}.parquet",
    output:
        f"{FLIP}/examples.parquet",
    log:
        "logs/flipping/{dataset}_{model}_noise{noise}_examples.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        per_group=config["flipping"]["examples_per_group"],
        seed=config["flipping"]["selection_seed"],
        shards=config["flipping"]["shards"],
    script:
        "../scripts/select_flip_examples.py"


rule flip_shard:
    """Zero units of the trained model until each example of the shard is misclassified."""
    input:
        checkpoints="results/runs/{dataset}/{model}/noise{noise}/seed{seed}/checkpoints.txt",
        data="results/data/{dataset}/noise{noise}.parquet",
        selection=f"{FLIP}/examples.parquet",
    output:
        f"{FLIP}/seed{{seed}}/shard{{shard}}.parquet",
    log:
        "logs/flipping/{dataset}_{model}_noise{noise}_seed{seed}_shard{shard}.log",
    benchmark:
        "benchmarks/flipping/{dataset}_{model}_noise{noise}_seed{seed}_shard{shard}.tsv"
    wildcard_constraints:
        seed=r"\d+",
        shard=r"\d+",
    group:
        "flipping"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=1,
    params:
        source=data_source(),
        settings={
            k: config["flipping"][k]
            for k in (
                "max_removals",
                "noise_copies",
                "noise_std",
                "population_batch",
                "resample_every",
                "smooth_population",
                "examples_per_batch",
                "max_rows",
            )
        },
        accuracy_examples=config["flipping"]["accuracy_examples"],
        device=config["device"],
    script:
        "../scripts/flip_shard.py"


rule merge_flipping:
    """Every part of every flipping seed, with dataset/model/noise/seed columns."""
    input:
        [path for path, _ in flipping_study.flip_parts(config)],
    output:
        "results/tables/flipping.parquet",
    log:
        "logs/flipping/merge.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        runs=[run for _, run in flipping_study.flip_parts(config)],
    script:
        "../scripts/collect_run_tables.py"


rule second_split:
    """Second-split forgetting time (Maini et al. 2022) of the split-A examples."""
    input:
        "results/data/{dataset}/noise{noise}.parquet",
    output:
        f"{DETECTION}/second_split.parquet",
    log:
        "logs/second_split/{dataset}_{model}_noise{noise}_seed{seed}.log",
    benchmark:
        "benchmarks/second_split/{dataset}_{model}_noise{noise}_seed{seed}.tsv"
    wildcard_constraints:
        seed=r"\d+",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=1,
    params:
        source=data_source(),
        model=model_settings,
        first=lambda wc: flipping_study.second_split_settings(config, int(wc.seed))[0],
        second=lambda wc: flipping_study.second_split_settings(config, int(wc.seed))[1],
        fraction=config["detection"]["second_split"]["fraction"],
        split_seed=config["detection"]["second_split"]["seed"],
        device=config["device"],
    script:
        "../scripts/second_split.py"


rule detection_auc:
    input:
        flipping="results/tables/flipping.parquet",
        data=flip_path(
            "results/data/{dataset}/noise{noise}.parquet",
            flipping_study.flip_runs(config)[0],
        ),
        examples=[
            run_file(r, "examples.parquet") for r in flipping_study.flip_runs(config)
        ],
        second_split=[
            flip_path(f"{DETECTION}/second_split.parquet", r)
            for r in flipping_study.flip_runs(config)
        ],
    output:
        scores="results/tables/detection_scores.parquet",
        parquet="results/tables/auc.parquet",
    log:
        "logs/detection/auc.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        seeds=[r["seed"] for r in flipping_study.flip_runs(config)],
    script:
        "../scripts/detection_auc.py"


rule auc_table:
    input:
        "results/tables/auc.parquet",
    output:
        csv=report(
            "results/tables/auc.csv",
            caption="../report/auc.rst",
            category="Neuron flipping",
        ),
        md="results/tables/auc.md",
    log:
        "logs/detection/auc_table.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/auc_table.py"


rule flipping_paper_rows:
    input:
        flipping="results/tables/flipping.parquet",
        auc="results/tables/auc.parquet",
    output:
        "results/tables/paper_vs_ours/flipping.parquet",
    log:
        "logs/flipping/paper_rows.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        setting=flipping_study.our_setting(config),
    script:
        "../scripts/flipping_paper_rows.py"


rule fig05:
    input:
        "results/tables/flipping.parquet",
    output:
        report(
            "results/figures/fig05.png",
            caption="../report/fig05.rst",
            category="Neuron flipping",
        ),
        "results/figures/fig05.pdf",
    log:
        "logs/figures/fig05.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        figure="fig05",
        selection=lambda wc: {
            **{
                k: flipping_study.flip_runs(config)[0][k]
                for k in ("dataset", "model", "noise")
            },
            "seeds": config["flipping"]["seeds"],
        },
    script:
        "../scripts/figure.py"
