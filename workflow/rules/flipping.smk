# Neuron flipping (Sec. 6.1) and mislabeled-example detection, on the primary setting:
#   select_flip_examples  N clean + N noisy training examples, dealt to shards
#   flip_shard            one job per (training seed, shard): a parquet part
#   merge_flipping        results/tables/flipping.parquet -> fig05
#   second_split          per training seed: train on split A, fine-tune on B (forgetting time)
#   detection_auc         per-example scores of every detector -> results/tables/auc.*

from memloc.config import noise_label
from memloc.plots import DATASET_TITLES, MODEL_TITLES

FLIP = "results/flipping/{dataset}/{model}/noise{noise}"
DETECTION = "results/detection/{dataset}/{model}/noise{noise}/seed{seed}"

paper_rows.append("results/tables/paper_vs_ours/flipping.parquet")


def flip_runs():
    """The primary runs neuron flipping and detection use, one per flipping seed."""
    p = config["primary"]
    return [{"dataset": p["dataset"], "model": p["model"], "noise": float(p["noise"]), "seed": s}
            for s in config["flipping"]["seeds"]]


def flip_path(pattern, run):
    return pattern.format(**{**run, "noise": noise_label(run["noise"])})


def flip_parts():
    """(part path, its run) of every (flipping seed, shard)."""
    shards = range(config["flipping"]["shards"])
    return [(flip_path(f"{FLIP}/seed{{seed}}/shard{k}.parquet", run), run) for run in flip_runs() for k in shards]


def second_split_settings(seed):
    """TrainConfig fields of the training on split A and of the fine-tuning on split B."""
    ss, train = config["detection"]["second_split"], config["train"]
    first = {**train, "seed": seed, "epochs": ss["epochs_first"] or train["epochs"],
             "peak_epoch": ss["peak_epoch_first"] or train["peak_epoch"]}
    second = {"epochs": ss["epochs_second"] or train["epochs"], "peak_epoch": ss["peak_epoch_second"] or train["peak_epoch"]}
    return first, second


def flip_setting():
    """Dataset / model / scale of ours, for the paper-vs-ours rows."""
    p, f = config["primary"], config["flipping"]
    width = config["model_settings"].get(p["model"], {}).get("width", 1.0)
    n = config["train_subset"]
    dataset, model = DATASET_TITLES.get(p["dataset"], p["dataset"]), MODEL_TITLES.get(p["model"], p["model"])
    return (f"{dataset} ({f'{n:,} examples' if n else 'full training set'}), {model} width {width:g}, "
            f"{p['noise']:.0%} noise, {config['train']['epochs']} epochs; {f['examples_per_group']} clean + "
            f"{f['examples_per_group']} noisy examples, {len(f['seeds'])} models")


rule select_flip_examples:
    input:
        "results/data/{dataset}/noise{noise}.parquet",
    output:
        f"{FLIP}/examples.parquet",
    log:
        "logs/flipping/{dataset}_{model}_noise{noise}_examples.log",
    params:
        per_group=config["flipping"]["examples_per_group"],
        seed=config["flipping"]["selection_seed"],
        shards=config["flipping"]["shards"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
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
    params:
        source=data_source(),
        settings={k: config["flipping"][k] for k in (
            "max_removals", "noise_copies", "noise_std", "population_batch", "resample_every",
            "smooth_population", "examples_per_batch", "max_rows")},
        accuracy_examples=config["flipping"]["accuracy_examples"],
        device=config["device"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=1,
    script:
        "../scripts/flip_shard.py"


rule merge_flipping:
    """Every part of every flipping seed, with dataset/model/noise/seed columns."""
    input:
        [path for path, _ in flip_parts()],
    output:
        "results/tables/flipping.parquet",
    log:
        "logs/flipping/merge.log",
    params:
        runs=[run for _, run in flip_parts()],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
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
    params:
        source=data_source(),
        model=model_settings,
        first=lambda wc: second_split_settings(int(wc.seed))[0],
        second=lambda wc: second_split_settings(int(wc.seed))[1],
        fraction=config["detection"]["second_split"]["fraction"],
        split_seed=config["detection"]["second_split"]["seed"],
        device=config["device"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=1,
    script:
        "../scripts/second_split.py"


rule detection_auc:
    input:
        flipping="results/tables/flipping.parquet",
        data=flip_path("results/data/{dataset}/noise{noise}.parquet", flip_runs()[0]),
        examples=[run_file(r, "examples.parquet") for r in flip_runs()],
        second_split=[flip_path(f"{DETECTION}/second_split.parquet", r) for r in flip_runs()],
    output:
        scores="results/tables/detection_scores.parquet",
        parquet="results/tables/auc.parquet",
    log:
        "logs/detection/auc.log",
    params:
        seeds=[r["seed"] for r in flip_runs()],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    script:
        "../scripts/detection_auc.py"


rule auc_table:
    input:
        "results/tables/auc.parquet",
    output:
        csv="results/tables/auc.csv",
        md="results/tables/auc.md",
    log:
        "logs/detection/auc_table.log",
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
    params:
        setting=flip_setting(),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/flipping_paper_rows.py"


rule fig05:
    input:
        "results/tables/flipping.parquet",
    output:
        "results/figures/fig05.png",
        "results/figures/fig05.pdf",
    log:
        "logs/figures/fig05.log",
    params:
        figure="fig05",
        selection=lambda wc: {
            **{k: flip_runs()[0][k] for k in ("dataset", "model", "noise")},
            "seeds": config["flipping"]["seeds"],
        },
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/figure.py"
