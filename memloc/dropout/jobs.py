"""Workflow steps of the example-tied dropout study: train a run with dropout layers
(through memloc.runs.jobs.train_model), tab1-tab3 and fig07's table (their paper-vs-ours rows:
memloc.report.paper_vs_ours).  Paths in, files out; only workflow/scripts call these
(memloc.dropout.tables computes the tables).  Only the training and fig07's table, which
reads pixels, import torch (when called): the table jobs start in a second instead of four."""

from __future__ import annotations

import os

import pandas as pd

from memloc.core.data.inputs import RunInputs
from memloc.core.files import save_table, write_parquet
from memloc.dropout import tables


def train_run(inputs: RunInputs, model: dict, settings: dict, outputs: dict[str, str], device) -> None:
    """Train one run with dropout layers (memloc.runs.jobs.train_model).  model:
    DropoutModelConfig fields less the dataset's shape; settings: TrainConfig fields."""
    from memloc.dropout.model import DropoutModelConfig
    from memloc.runs.jobs import train_model

    train_model(inputs, DropoutModelConfig.for_dataset(inputs.dataset, inputs.source, **model), settings, outputs,
                device)


def write_table(table: str, metrics: str | os.PathLike, outputs: dict[str, str], runs: list[dict]) -> pd.DataFrame:
    """tab1 / tab2 / tab3 from the study's metrics table: outputs {parquet, csv, md}.

    The parquet holds the long table (one accuracy per row, percent), the CSV / Markdown
    the paper's layout."""
    final = tables.final_accuracy(pd.read_parquet(metrics))
    long, wide = tables.TABLES[table](final, runs)
    write_parquet(long, outputs["parquet"])
    save_table(wide, outputs["csv"], outputs["md"])
    return long


def forgotten_examples(
    examples: str | os.PathLike, data_table: str | os.PathLike, out: str | os.PathLike,
    dataset: str, source: dict, max_images: int,
) -> pd.DataFrame:
    """fig07's table (memloc.dropout.tables.fig07_table): the first `max_images` clean
    training examples forgotten after dropping, with their pixels from the dataset."""
    import torch

    from memloc.core.data.catalog import dataset_info
    from memloc.core.data.declared import display_uint8
    from memloc.core.data.source import DataSource

    lost, n_clean = tables.forgotten_rows(pd.read_parquet(examples), pd.read_parquet(data_table))
    shown = lost.head(max_images)
    images = DataSource(**source).load(dataset, train=True).images[torch.tensor(shown["source_index"].to_numpy())]
    images = display_uint8(images)  # a declared dataset's standardized images, min-max scaled to pixels
    classes = dataset_info(dataset, source).classes  # (a declared dataset's class names: its folders)
    table = tables.fig07_table(shown, images, dataset, len(lost), n_clean, classes)
    write_parquet(table, out)
    return table
