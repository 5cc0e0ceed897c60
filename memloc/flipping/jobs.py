"""Workflow steps of neuron flipping and mislabeled-example detection: pick the examples,
flip one shard of them on one trained run, the second-split forgetting time of a seed, the
auc table (the paper-vs-ours rows: memloc.report.paper_vs_ours).  Paths in, files out; only workflow/scripts call
these (memloc.flipping.batched, .detection and .second_split have the algorithms).  The
jobs that compute import torch when called: the selection and table jobs start in a second."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from memloc.core.data.inputs import RunInputs
from memloc.core.files import file_id, load_partial, partial_path, save_partial, save_table, write_parquet


def select_examples(table: pd.DataFrame, per_group: int, seed: int, shards: int = 1) -> pd.DataFrame:
    """`per_group` clean and `per_group` noisy training rows, drawn with `seed`; columns
    index, is_noisy, shard.  Clean and noisy rows alternate; each group is dealt round-robin
    to the shards, the noisy one starting half-way round (shards // 2), so that with at least
    `shards` examples per group every shard holds both (dealing the alternating rows
    round-robin would put every clean row in the even shards and every noisy one in the odd
    ones; the clean shards, which take more removals, would then run longest).  A group with
    fewer rows is an error (memloc.config_settings stops such a flipping.examples_per_group
    when the DAG is parsed)."""
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
    position = np.arange(len(out))
    out["shard"] = (position // 2 + (position % 2) * (shards // 2)) % shards  # rank in its group + offset
    return out


def write_selection(
    data_table: str | os.PathLike, out: str | os.PathLike, per_group: int, seed: int, shards: int
) -> None:
    write_parquet(select_examples(pd.read_parquet(data_table), per_group, seed, shards), out)


# A shard is flipped in parts of this many batches of examples (flipping.examples_per_batch
# each); each finished part's results are kept (partial_path(out)), so a job that dies loses
# at most one part.  A shard of up to RESUME_BATCHES batches is one part (the default and test
# presets' shards), where all its examples share one post-removal accuracy tree.
RESUME_BATCHES = 8


def flip_shard(inputs: RunInputs, checkpoints: str | os.PathLike, selection: str | os.PathLike, shard: int,
               out: str | os.PathLike, settings: dict, device) -> pd.DataFrame:
    """Flip the selected examples of one shard on the final checkpoint of a run.

    checkpoints: the run's checkpoints.txt (the last line is the trained model); settings:
    FlipConfig fields, the seed the run's training seed (it seeds the search's noise and
    batches; the accuracy rows are drawn with seed 0, the same for every run).  Writes one
    row per example: the FlipResult fields plus label and is_noisy.  The examples are flipped
    in parts of RESUME_BATCHES x examples_per_batch, each part's results kept until the table
    is written: a rerun resumes at the first unfinished part (results do not depend on the
    parts: the searches run examples_per_batch at a time either way)."""
    from memloc.core.device import precision_for
    from memloc.core.train.checkpoints import model_from_checkpoint
    from memloc.flipping.accuracy import accuracy_rows
    from memloc.flipping.batched import flip_examples
    from memloc.flipping.objective import FlipConfig, FlipResult, results_frame

    checkpoint = Path(checkpoints).read_text().split()[-1]
    chosen = pd.read_parquet(selection)
    indices = [int(i) for i in chosen.loc[chosen["shard"] == shard, "index"]]
    cfg = FlipConfig(**settings)
    size = cfg.examples_per_batch * RESUME_BATCHES
    parts = [indices[s : s + size] for s in range(0, len(indices), size)]
    key = {"files": [file_id(p) for p in (checkpoint, inputs.table)], "indices": indices, "settings": settings,
           "part_size": size, "device": device.type, "precision": precision_for(device)}
    partial = partial_path(out)
    done = load_partial(partial, key, "flipping")
    data = inputs.training_set()
    if len(done) < len(parts):
        model = model_from_checkpoint(checkpoint, device)
        for p in model.parameters():
            p.requires_grad_(False)  # gradients are taken w.r.t. the masks only
        evaluated = accuracy_rows(len(data.labels), cfg.accuracy_examples, seed=0)
        for j, part in enumerate(parts):
            if j not in done:
                done[j] = [r.__dict__ for r in flip_examples(model, part, data, cfg, device, evaluated)]
                save_partial(partial, key, done)
    df = results_frame([FlipResult(**row) for j in range(len(parts)) for row in done[j]])
    df.insert(1, "label", data.labels[indices].numpy() if indices else np.zeros(0, dtype=np.int64))
    df.insert(2, "is_noisy", data.group[indices].numpy() if indices else np.zeros(0, dtype=bool))
    write_parquet(df, out)
    partial.unlink(missing_ok=True)
    return df


# -- detection ---------------------------------------------------------------------------


def second_split_forgetting(inputs: RunInputs, out: str | os.PathLike, model: dict, first: dict, second: dict,
                            split: dict, device) -> pd.DataFrame:
    """Train on split A (TrainConfig fields `first`), fine-tune on split B (`first` with the
    fields `second` replaced), and write every A example's second-split forgetting time
    (memloc.flipping.second_split.second_split_forgetting; split: its fraction and seed).  A's
    checkpoints go to a folder `first_split/` beside `out` (not a declared output, so an
    interrupted job resumes)."""
    from memloc.core.models.build import ModelConfig
    from memloc.core.train.config import TrainConfig
    from memloc.flipping.second_split import second_split_forgetting

    data = inputs.training_set()
    df = second_split_forgetting(data, ModelConfig.for_dataset(inputs.dataset, inputs.source, **model),
                                 TrainConfig(**first), second, split, Path(out).parent / "first_split", device)
    write_parquet(df, out)
    return df


def second_split_runs(inputs: RunInputs, runs: list[tuple[str, dict]], model: dict, second: dict, split: dict,
                      device) -> None:
    """Several seeds of one setting in one process (config key runs_per_job): runs = [(out,
    TrainConfig fields of split A)], each as second_split_forgetting does (resuming from its
    first_split/ checkpoints)."""
    for out, first in runs:
        second_split_forgetting(inputs, out, model, first, second, split, device)


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
