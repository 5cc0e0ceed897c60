"""The neuron-flipping study (Sec. 6.1) as the workflow plans it: which runs and parts,
the flipping and second-split settings, the inputs of the auc table and fig05, and the
scale text of the paper-vs-ours rows.  Only workflow/rules/flipping.smk calls this module
(memloc.flipping.objective has the algorithm, memloc.flipping.jobs the job steps)."""

from __future__ import annotations

from typing import NamedTuple

from memloc.core.paths import (
    DATA_TABLE,
    DETECTION_DIR,
    FLIP_DIR,
    display_table_files,
    figure_files,
    noise_label,
    run_dir,
    table,
)
from memloc.core.titles import dataset_title, model_title
from memloc.runs.plan import train_settings

# The `flipping` keys that are memloc.flipping.objective.FlipConfig fields; the seed is the
# run's training seed (flip_shard's wildcard).
FLIP_SETTINGS = ("max_removals", "noise_copies", "noise_scale", "population_batch", "resample_every",
                 "examples_per_batch", "max_rows", "memory_gb", "accuracy_examples")


class FlipPart(NamedTuple):
    """One flip_shard output and the run it flipped on (its identifying columns in the
    merged flipping table)."""

    path: str
    run: dict


class SecondSplitSettings(NamedTuple):
    """TrainConfig fields of the training on split A, and those fine-tuning on split B
    replaces."""

    first: dict
    second: dict


def flip_runs(config: dict) -> list[dict]:
    """The primary runs neuron flipping and detection use, one per flipping seed."""
    p = config["primary"]
    return [{"dataset": p["dataset"], "model": p["model"], "noise": float(p["noise"]), "seed": s}
            for s in config["flipping"]["seeds"]]


def flip_path(pattern: str, run: dict) -> str:
    return pattern.format(**{**run, "noise": noise_label(run["noise"])})


def flip_parts(config: dict) -> list[FlipPart]:
    """The part of every (flipping seed, shard), seed-major."""
    shards = range(config["flipping"]["shards"])
    return [FlipPart(flip_path(f"{FLIP_DIR}/seed{{seed}}/shard{k}.parquet", run), run) for run in flip_runs(config)
            for k in shards]


def flip_settings(config: dict, seed: int | str) -> dict:
    """FlipConfig fields of the flip_shard jobs of training seed `seed` (also as the {seed}
    wildcard's text)."""
    return {**{k: config["flipping"][k] for k in FLIP_SETTINGS}, "seed": int(seed)}


def flip_data_table(config: dict) -> str:
    """The corrupted training set of the flipped runs (one: they differ only by seed)."""
    return flip_path(DATA_TABLE, flip_runs(config)[0])


def detection_runs(config: dict) -> dict[int, dict[str, str]]:
    """{flipping seed: {examples: the run's per-epoch examples table, second_split: its
    second-split forgetting table}}, the per-seed inputs of the auc table."""
    return {
        run["seed"]: {"examples": f"{run_dir(**run)}/examples.parquet",
                      "second_split": flip_path(f"{DETECTION_DIR}/second_split.parquet", run)}
        for run in flip_runs(config)
    }


def fig05_selection(config: dict) -> dict:
    """memloc.report.figures.fig05's selection: the flipped runs' setting and seeds."""
    run = flip_runs(config)[0]
    return {"dataset": run["dataset"], "model": run["model"], "noise": run["noise"],
            "seeds": config["flipping"]["seeds"]}


def second_split(config: dict) -> dict:
    """The split of the second-split forgetting time: the fraction of the examples in split A
    and the seed of the split (memloc.flipping.second_split.split_rows)."""
    ss = config["detection"]["second_split"]
    return {"fraction": ss["fraction"], "seed": ss["seed"]}


def second_split_settings(config: dict, seed: int | str) -> SecondSplitSettings:
    """TrainConfig fields of the training on split A and of the fine-tuning on split B
    (seed: the training seed, also as the {seed} wildcard's text)."""
    ss = config["detection"]["second_split"]
    # nulls (= the train setting) were resolved by memloc.config.resolve_config; no gradient
    # accounting (nothing reads it here)
    run = train_settings(config, f"noise{noise_label(config['primary']['noise'])}", seed)
    first = {**run, "epochs": ss["epochs_first"], "peak_epoch": ss["peak_epoch_first"], "gradient_accounting": False}
    second = {"epochs": ss["epochs_second"], "peak_epoch": ss["peak_epoch_second"]}
    return SecondSplitSettings(first, second)


def our_setting(config: dict) -> str:
    """Dataset / model / scale of ours, for the paper-vs-ours rows."""
    p, f = config["primary"], config["flipping"]
    width = config["model_settings"].get(p["model"], {}).get("width", 1.0)
    n = config["train_subset"]
    dataset, model = dataset_title(p["dataset"]), model_title(p["model"])
    return (f"{dataset} ({f'{n:,} examples' if n else 'full training set'}), {model} width {width:g}, "
            f"{p['noise']:.0%} noise, {config['train']['epochs']} epochs; {f['examples_per_group']} clean + "
            f"{f['examples_per_group']} noisy examples, {len(f['seeds'])} models")


def targets(config: dict) -> list[str]:
    """What neuron flipping's part of rule `all` makes: fig05, the auc table (CSV, Markdown,
    parquet), the merged flipping table and the per-example detection scores."""
    return figure_files(["fig05"]) + display_table_files(["auc"]) + [table(t) for t in ("flipping", "auc",
                                                                                          "detection_scores")]
