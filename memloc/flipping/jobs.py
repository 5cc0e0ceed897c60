"""Workflow steps of neuron flipping: pick the examples, flip one shard of them on one
trained run, join the parts.  Paths in, files out (memloc.flipping.objective has the algorithm)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from memloc.core.data import DataSource, training_set, write_parquet
from memloc.core.evaluation import resolve_device
from memloc.flipping.objective import FlipConfig, results_frame
from memloc.flipping.batched import flip_examples
from memloc.core.training import model_from_checkpoint


def select_examples(table: pd.DataFrame, per_group: int, seed: int, shards: int = 1) -> pd.DataFrame:
    """`per_group` clean and `per_group` noisy training rows (all of a group if it has
    fewer), drawn with `seed`; columns index, is_noisy, shard.  Clean and noisy rows
    alternate before they are dealt round-robin to the shards, so every shard holds both."""
    rng = np.random.default_rng(seed)
    picks = []
    for noisy in (False, True):
        rows = table.loc[table["is_noisy"] == noisy, "index"].to_numpy()
        picks.append(np.sort(rng.choice(rows, size=min(per_group, len(rows)), replace=False)))
    order = [i for pair in zip(*picks) for i in pair] + [i for p in picks for i in p[min(map(len, picks)):]]
    out = table.set_index("index").loc[order, ["is_noisy"]].reset_index()
    out["shard"] = np.arange(len(out)) % shards
    return out


def accuracy_rows(n: int, size: int | None, seed: int) -> torch.Tensor:
    """The training rows the post-removal accuracy is measured on: `size` of the `n` rows
    (seeded, sorted), or all of them when size is None."""
    if size is None or size >= n:
        return torch.arange(n)
    return torch.from_numpy(np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False)))


def write_selection(data_table: str | os.PathLike, out: str | os.PathLike, per_group: int, seed: int, shards: int) -> None:
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
