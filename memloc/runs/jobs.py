"""Job-level entry points: one function per workflow step, paths in, files out.

The Snakemake scripts in workflow/scripts/ are thin wrappers over these; the functions
know nothing of Snakemake and can be called from a notebook or another workflow engine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import torch

from memloc.core.data.noise import make_corrupted_table
from memloc.core.data.run_data import load_run_data
from memloc.core.data.source import DataSource
from memloc.core.device import resolve_device
from memloc.core.files import write_parquet, write_text_atomic
from memloc.core.models.build import ModelConfig
from memloc.core.provenance import write_provenance
from memloc.core.train.config import TrainConfig
from memloc.core.train.run import train
from memloc.core.train.tables import run_tables
from memloc.dropout.model import DropoutModelConfig


def write_corrupted_dataset(
    out: str | os.PathLike, dataset: str, source: dict, noise: float, subset: int | None, seed: int
) -> pd.DataFrame:
    """First step of the DAG: the corrupted training set as a parquet table.

    source: DataSource settings (root, download, verify_checksums)."""
    table = make_corrupted_table(dataset, DataSource(**source), noise, subset, seed)
    write_parquet(table, out)
    return table


def train_run(
    data_table: str | os.PathLike,
    outputs: dict[str, str],
    dataset: str,
    source: dict,
    test_subset: int | None,
    model: dict,
    train_settings: dict,
    device: str = "auto",
    threads: int = 1,
) -> None:
    """Train one run (resuming from its checkpoints) and write its tables.

    The two groups of gradient accounting and of the group accuracies are the values of
    the data table's column train_settings["group_column"] (default is_noisy).

    outputs: {"metrics", "examples", "gradients": parquet paths, "checkpoints": a text file
    listing the checkpoint paths, epoch 0 first, "provenance" (optional): JSON, what
    produced them (memloc.core.provenance)}.  The checkpoints live in a folder
    `checkpoints/` beside that file; it is not a declared output so that Snakemake does not
    delete it when a job fails, and the next attempt resumes from it.
    """
    torch.set_num_threads(threads)
    cfg = TrainConfig(**train_settings)
    trainset, test_images, test_labels = load_run_data(data_table, dataset, source, test_subset, cfg.group_column)
    model_cfg = (DropoutModelConfig if "dropout" in model else ModelConfig).for_dataset(dataset, source, **model)
    ckpt_dir = Path(outputs["checkpoints"]).parent / "checkpoints"
    device = resolve_device(device)
    paths = train(model_cfg, cfg, trainset, test_images, test_labels, ckpt_dir, device)
    if "provenance" in outputs:  # the workflow's jobs always ask for it; a notebook may not
        write_provenance(outputs["provenance"], device, threads)
    for name, df in run_tables(paths).items():
        write_parquet(df, outputs[name])
    write_text_atomic("".join(f"{p}\n" for p in paths), outputs["checkpoints"])
