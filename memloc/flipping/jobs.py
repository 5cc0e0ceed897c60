"""Workflow steps of neuron flipping and mislabeled-example detection: pick the examples,
flip one shard of them on one trained run, the second-split forgetting time of a seed, the
auc table and the paper-vs-ours rows.  Paths in, files out; only workflow/scripts call
these (memloc.flipping.batched, .detection and .second_split have the algorithms).  The
jobs that compute import torch when called: the selection and table jobs start in a second."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from memloc.core.files import write_parquet
from memloc.report.paper import AUC_SETTING, FIG05_SETTING, PAPER_AUC, PAPER_FIG05
from memloc.report.tables import comparison_row, counted, save_table, write_rows

if TYPE_CHECKING:
    import torch


def select_examples(table: pd.DataFrame, per_group: int, seed: int, shards: int = 1) -> pd.DataFrame:
    """`per_group` clean and `per_group` noisy training rows, drawn with `seed`; columns
    index, is_noisy, shard.  Clean and noisy rows alternate before they are dealt round-robin
    to the shards, so every shard holds both.  A group with fewer rows is an error
    (memloc.config_settings stops such a flipping.examples_per_group when the DAG is parsed)."""
    rng = np.random.default_rng(seed)
    picks = []
    for noisy in (False, True):
        rows = table.loc[table["is_noisy"] == noisy, "index"].to_numpy()
        if per_group > len(rows):
            raise ValueError(f"flipping.examples_per_group ({per_group}) is larger than the "
                             f"{len(rows)} {'noisy' if noisy else 'clean'} examples")
        picks.append(np.sort(rng.choice(rows, size=per_group, replace=False)))
    order = [i for pair in zip(*picks, strict=True) for i in pair]
    out = table.set_index("index").loc[order, ["is_noisy"]].reset_index()
    out["shard"] = np.arange(len(out)) % shards
    return out


def accuracy_rows(n: int, size: int | None, seed: int) -> torch.Tensor:
    """The training rows the post-removal accuracy is measured on: `size` of the `n` rows
    (seeded, sorted), or all of them when size is None."""
    import torch

    if size is None or size >= n:
        return torch.arange(n)
    return torch.from_numpy(np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False)))


def write_selection(
    data_table: str | os.PathLike, out: str | os.PathLike, per_group: int, seed: int, shards: int
) -> None:
    write_parquet(select_examples(pd.read_parquet(data_table), per_group, seed, shards), out)


def flip_shard(
    checkpoints: str | os.PathLike,
    data_table: str | os.PathLike,
    selection: str | os.PathLike,
    out: str | os.PathLike,
    shard: int,
    dataset: str,
    source: dict,
    settings: dict,
    seed: int,
    accuracy_examples: int | None,
    device: str = "auto",
    threads: int = 1,
) -> pd.DataFrame:
    """Flip the selected examples of one shard on the final checkpoint of a run.

    checkpoints: the run's checkpoints.txt (the last line is the trained model); settings:
    FlipConfig fields; seed: the run's training seed (seeds the search's noise and batches;
    the accuracy rows are drawn with seed 0, the same for every run).  Writes one row per
    example: the FlipResult fields plus label and is_noisy."""
    import torch

    from memloc.core.data.run_data import training_set
    from memloc.core.data.source import DataSource
    from memloc.core.device import resolve_device
    from memloc.core.train.checkpoints import model_from_checkpoint
    from memloc.flipping.batched import flip_examples
    from memloc.flipping.objective import FlipConfig, results_frame

    torch.set_num_threads(threads)
    dev = resolve_device(device)
    model = model_from_checkpoint(Path(checkpoints).read_text().split()[-1], dev)
    for p in model.parameters():
        p.requires_grad_(False)  # gradients are taken w.r.t. the masks only
    table = pd.read_parquet(data_table)
    data = training_set(table, DataSource(**source).load(dataset, train=True))
    chosen = pd.read_parquet(selection)
    indices = chosen.loc[chosen["shard"] == shard, "index"].tolist()
    cfg = FlipConfig(**settings, seed=seed)
    results = flip_examples(model, indices, data.images, data.labels, data.group, cfg, dev,
                            eval_index=accuracy_rows(len(table), accuracy_examples, seed=0))
    df = results_frame(results)
    df.insert(1, "label", data.labels[indices].numpy() if indices else np.zeros(0, dtype=np.int64))
    df.insert(2, "is_noisy", data.group[indices].numpy() if indices else np.zeros(0, dtype=bool))
    write_parquet(df, out)
    return df


# -- detection ---------------------------------------------------------------------------


def second_split_forgetting(
    data_table: str | os.PathLike,
    out: str | os.PathLike,
    dataset: str,
    source: dict,
    model: dict,
    first: dict,
    second: dict,
    fraction: float,
    split_seed: int,
    device: str = "auto",
    threads: int = 1,
) -> pd.DataFrame:
    """Train on split A (TrainConfig fields `first`), fine-tune on split B (`second`), and
    write every A example's second-split forgetting time (memloc.flipping.second_split.
    second_split_forgetting).  A's checkpoints go to a folder `first_split/` beside `out`
    (not a declared output, so an interrupted job resumes)."""
    import torch

    from memloc.core.data.run_data import training_set
    from memloc.core.data.source import DataSource
    from memloc.core.device import resolve_device
    from memloc.core.models.build import ModelConfig
    from memloc.core.train.config import TrainConfig
    from memloc.flipping.second_split import second_split_forgetting

    torch.set_num_threads(threads)
    dev = resolve_device(device)
    data = training_set(pd.read_parquet(data_table), DataSource(**source).load(dataset, train=True))
    first_cfg = TrainConfig(**{**first, "gradient_accounting": False})  # nothing reads it here
    df = second_split_forgetting(data, ModelConfig.for_dataset(dataset, source, **model), first_cfg, second,
                                 fraction, split_seed, Path(out).parent / "first_split", dev)
    write_parquet(df, out)
    return df


def write_auc(flipping: str, runs: dict[int, dict[str, str]], data_table: str, outputs: dict[str, str]) -> pd.DataFrame:
    """The per-example scores (outputs["scores"]) and the auc table (outputs["parquet"]).

    runs: {training seed: {examples: its examples.parquet, second_split: its second-split
    forgetting table}}."""
    from memloc.flipping import detection

    flips = pd.read_parquet(flipping)
    per_seed = (
        detection.seed_scores(seed, pd.read_parquet(r["examples"]), pd.read_parquet(r["second_split"]), flips)
        for seed, r in runs.items()  # one seed's tables in memory at a time
    )
    is_noisy = pd.read_parquet(data_table).set_index("index")["is_noisy"]
    scores = detection.detection_scores(per_seed, is_noisy)
    write_parquet(scores, outputs["scores"])
    table = detection.auc_rows(scores)
    write_parquet(table, outputs["parquet"])
    return table


def render_auc(table: str, csv: str, md: str) -> None:
    """auc.csv / auc.md from auc.parquet."""
    save_table(pd.read_parquet(table), csv, md, floatfmt=".3f")


# -- paper vs ours -----------------------------------------------------------------------


def initially_correct(flips: pd.DataFrame) -> pd.DataFrame:
    """The (example, model) rows whose example F̄ predicts as labelled before any removal:
    fig05 and its means are over these (a wrong prediction needs no removal; counted as 0
    it would be a flip that no removal caused).  Tables without the column are kept whole."""
    return flips[flips["initially_correct"]] if "initially_correct" in flips else flips


def _fig05_rows(flips: pd.DataFrame, setting: str) -> list[dict]:
    """fig05's numbers, per example averaged over the flipping seeds as the figure does,
    over the (example, model) pairs that are initially correct.  Each row counts the
    examples it averages over (n); a group none of whose examples is initially correct on
    any model (a few-epoch model may have learned no noisy example) has no mean: its rows
    are NaN with n = 0 (the gap: the other group's count) and a note that says why."""
    per_example = initially_correct(flips).groupby("index").agg(
        is_noisy=("is_noisy", "first"), removals=("removals", "mean"), accuracy=("accuracy_train", "mean"))
    groups = {"noisy": per_example[per_example["is_noisy"]], "clean": per_example[~per_example["is_noisy"]]}
    selected = flips.groupby("index")["is_noisy"].first().value_counts()
    notes = {g: _no_initially_correct(g, int(selected.get(g == "noisy", 0))) if df.empty else ""
             for g, df in groups.items()}
    noisy, clean = groups["noisy"], groups["clean"]
    ours = [  # (quantity, PAPER_FIG05 key, ours, the groups it averages over)
        ("mean removals to flip, noisy", "mean_removals_noisy", noisy["removals"].mean(), ["noisy"]),
        ("mean removals to flip, clean", "mean_removals_clean", clean["removals"].mean(), ["clean"]),
        ("noisy examples flipped by < 10 removals (%; paper: > 90)", "noisy_flipped_below_10",
         100 * (noisy["removals"] < 10).mean(), ["noisy"]),
        ("post-removal training accuracy, noisy minus clean (points)", "accuracy_gap",
         100 * (noisy["accuracy"].mean() - clean["accuracy"].mean()), ["noisy", "clean"]),
    ]
    return [counted(comparison_row("fig05", quantity, PAPER_FIG05[key], value, FIG05_SETTING, setting),
                    sum(len(groups[g]) for g in used), "; ".join(notes[g] for g in used if notes[g]))
            for quantity, key, value, used in ours]


def _no_initially_correct(group: str, selected: int) -> str:
    return (f"none of the {selected} {group} examples flipped is predicted as its label before any removal "
            f"(fig05 averages over initially-correct examples)")


def _auc_rows(auc: pd.DataFrame, setting: str) -> list[dict]:
    """The AUCs the paper reports: the flip count on the flipped examples, the others on
    every example they score (n: the examples scored; a method the auc table lacks: n = 0)."""
    rows = []
    for method, value in PAPER_AUC.items():
        subset = "flipped examples" if method == "flip count" else "all scored examples"
        ours = auc[(auc["method"] == method) & (auc["examples"] == subset)]
        row = comparison_row("auc", f"ROC AUC, {method}", value, ours["auc"].iloc[0] if len(ours) else np.nan,
                             AUC_SETTING, setting)
        n = int(ours["n_clean"].iloc[0] + ours["n_noisy"].iloc[0]) if len(ours) else 0
        rows.append(counted(row, n, "" if len(ours) else f"the auc table has no {method} AUC on the {subset}"))
    return rows


def paper_rows(flipping: str, auc: str, out: str, setting: str) -> pd.DataFrame:
    """fig05's and the auc table's rows of the paper-vs-ours table."""
    rows = _fig05_rows(pd.read_parquet(flipping), setting) + _auc_rows(pd.read_parquet(auc), setting)
    return write_rows(rows, out)
