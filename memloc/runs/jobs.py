"""Job-level entry points of the training runs: corrupt a dataset, train a run and write its
tables.  Paths in, files out; each reads, makes one call and writes.

The Snakemake scripts in workflow/scripts/ are thin wrappers over these; the functions
know nothing of Snakemake and can be called from a notebook or another workflow engine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import torch

from memloc.core.data.inputs import RunInputs
from memloc.core.data.noise import make_corrupted_table
from memloc.core.data.source import DataSource
from memloc.core.files import write_parquet, write_text_atomic
from memloc.core.models.build import ModelConfig
from memloc.core.provenance import write_provenance
from memloc.core.train.config import TrainConfig
from memloc.core.train.run import train
from memloc.core.train.tables import run_tables


def write_corrupted_dataset(
    out: str | os.PathLike, dataset: str, source: dict, noise: float, subset: int | None, seed: int
) -> pd.DataFrame:
    """First step of the DAG: the corrupted training set as a parquet table.

    source: DataSource settings (root, download, verify_checksums, definitions, cache)."""
    table = make_corrupted_table(dataset, DataSource(**source), noise, subset, seed)
    write_parquet(table, out)
    return table


def train_run(inputs: RunInputs, model: dict, settings: dict, outputs: dict[str, str], device: torch.device) -> None:
    """Train one run (resuming from its checkpoints) and write its tables.  model: ModelConfig
    fields less the dataset's shape; settings: TrainConfig fields."""
    train_model(inputs, ModelConfig.for_dataset(inputs.dataset, inputs.source, **model), settings, outputs, device)


def train_model(inputs: RunInputs, model: ModelConfig, settings: dict, outputs: dict[str, str],
                device: torch.device) -> None:
    """Train one run of `model` (any ModelConfig: memloc.dropout.jobs trains one with dropout).

    The two groups of gradient accounting and of the group accuracies are the values of the
    data table's column inputs.group_column.  outputs: {"metrics", "examples", "gradients":
    parquet paths, "checkpoints": a text file listing the checkpoint paths, epoch 0 first,
    "provenance" (optional): JSON, what produced them (memloc.core.provenance)}.  The
    checkpoints live in a folder `checkpoints/` beside that file; it is not a declared output
    so that Snakemake does not delete it when a job fails, and the next attempt resumes from it.
    """
    paths = train(model, TrainConfig(**settings), inputs.load(), Path(outputs["checkpoints"]).parent / "checkpoints",
                  device)
    if "provenance" in outputs:  # the workflow's jobs always ask for it; a notebook may not
        write_provenance(outputs["provenance"], device)
    for name, df in run_tables(paths).items():
        write_parquet(df, outputs[name])
    write_text_atomic("".join(f"{p}\n" for p in paths), outputs["checkpoints"])


def train_runs(inputs: RunInputs, model: dict, runs: list[tuple[dict, dict[str, str]]], device: torch.device) -> None:
    """Several runs of one setting in one process (config key runs_per_job), one after another:
    runs = [(TrainConfig fields, outputs as in train_model)], each trained (resuming from its
    checkpoints) and written as train_run does, so a killed job loses at most an epoch."""
    model_cfg = ModelConfig.for_dataset(inputs.dataset, inputs.source, **model)
    for settings, outputs in runs:
        train_model(inputs, model_cfg, settings, outputs, device)
