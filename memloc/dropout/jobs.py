"""Workflow steps of the example-tied dropout study after training: tab1-tab3 and fig07's
table (their paper-vs-ours rows: memloc.report.paper_vs_ours).  Paths in, files out; only workflow/scripts call
these (memloc.dropout.tables computes the tables; the runs train with the train rule's
memloc.runs.jobs.train_run).  Only fig07's table, which reads pixels, imports torch (when
called): the table jobs start in a second instead of four."""

from __future__ import annotations

import os

import pandas as pd

from memloc.core.files import save_table, write_parquet
from memloc.dropout import tables


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
