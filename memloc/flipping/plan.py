"""The neuron-flipping study (Sec. 6.1) as the workflow plans it: which runs, which parts,
the second-split settings and the scale text of the paper-vs-ours rows (workflow/rules/
flipping.smk; memloc.flipping.objective has the algorithm, memloc.flipping.jobs the job steps)."""

from __future__ import annotations

from memloc.core.paths import noise_label
from memloc.report.plots import DATASET_TITLES, MODEL_TITLES

FLIP_DIR = "results/flipping/{dataset}/{model}/noise{noise}"
DETECTION_DIR = "results/detection/{dataset}/{model}/noise{noise}/seed{seed}"


def flip_runs(config: dict) -> list[dict]:
    """The primary runs neuron flipping and detection use, one per flipping seed."""
    p = config["primary"]
    return [{"dataset": p["dataset"], "model": p["model"], "noise": float(p["noise"]), "seed": s}
            for s in config["flipping"]["seeds"]]


def flip_path(pattern: str, run: dict) -> str:
    return pattern.format(**{**run, "noise": noise_label(run["noise"])})


def flip_parts(config: dict) -> list[tuple[str, dict]]:
    """(part path, its run) of every (flipping seed, shard)."""
    shards = range(config["flipping"]["shards"])
    return [(flip_path(f"{FLIP_DIR}/seed{{seed}}/shard{k}.parquet", run), run) for run in flip_runs(config)
            for k in shards]


def second_split_settings(config: dict, seed: int) -> tuple[dict, dict]:
    """TrainConfig fields of the training on split A and of the fine-tuning on split B."""
    ss, train = config["detection"]["second_split"], config["train"]
    first = {**train, "seed": seed, "epochs": ss["epochs_first"] or train["epochs"],
             "peak_epoch": ss["peak_epoch_first"] or train["peak_epoch"]}
    second = {"epochs": ss["epochs_second"] or train["epochs"], "peak_epoch": ss["peak_epoch_second"] or train["peak_epoch"]}
    return first, second


def our_setting(config: dict) -> str:
    """Dataset / model / scale of ours, for the paper-vs-ours rows."""
    p, f = config["primary"], config["flipping"]
    width = config["model_settings"].get(p["model"], {}).get("width", 1.0)
    n = config["train_subset"]
    dataset, model = DATASET_TITLES.get(p["dataset"], p["dataset"]), MODEL_TITLES.get(p["model"], p["model"])
    return (f"{dataset} ({f'{n:,} examples' if n else 'full training set'}), {model} width {width:g}, "
            f"{p['noise']:.0%} noise, {config['train']['epochs']} epochs; {f['examples_per_group']} clean + "
            f"{f['examples_per_group']} noisy examples, {len(f['seeds'])} models")
