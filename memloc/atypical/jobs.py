"""Job-level entry points of the typical/atypical study: paths in, parquet tables out, as
in memloc.runs.jobs.  Only workflow/scripts call this module; the C-score algorithms are
memloc.atypical.cscores.  The jobs that train or read a dataset import torch when called:
the table jobs start in a second."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from memloc.atypical.cscores import (
    HoldoutConfig,
    atypical_table,
    holdout_estimate,
    holdout_subset,
    load_published_cscores,
)
from memloc.atypical.fetch import fetch_cscores
from memloc.atypical.precision import precision_table, summary_row
from memloc.core.data.inputs import RunInputs
from memloc.core.files import save_table, write_parquet


def train_holdout_model(inputs: RunInputs, out: str | os.PathLike, model: dict, settings: dict, holdout: dict,
                        model_index: int, device) -> pd.DataFrame:
    """Train subset model `model_index` and write its correctness on every example.  model:
    ModelConfig fields less the dataset's shape; settings: TrainConfig fields but the seed
    (each subset model its own: seed * 1000 + model_index); holdout: HoldoutConfig fields.

    Checkpoints go to `<out without suffix>/checkpoints`, so the job resumes like a run.
    """
    from memloc.core.data.run_data import RunData, training_set
    from memloc.core.models.build import ModelConfig
    from memloc.core.train.checkpoints import model_from_checkpoint
    from memloc.core.train.config import TrainConfig
    from memloc.core.train.evaluation import evaluate_examples
    from memloc.core.train.run import train

    cfg = HoldoutConfig(**holdout)
    table = inputs.read_table()
    split = inputs.split(train=True)
    full = training_set(table, split, inputs.group_column)
    mask = holdout_subset(len(table), model_index, cfg)
    subset = training_set(table[mask].reset_index(drop=True), split, inputs.group_column)
    model_cfg = ModelConfig.for_dataset(inputs.dataset, inputs.source, **model)
    # Each subset model its own seed (data order, initialization), distinct across models.
    tcfg = TrainConfig(**settings, seed=cfg.seed * 1000 + model_index)
    ckpt_dir = Path(out).with_suffix("") / "checkpoints"
    # The test set plays no part in the estimate: one example keeps train()'s per-epoch
    # measurement cheap.
    test = inputs.split(train=False)
    paths = train(model_cfg, tcfg, RunData(subset, test.images[:1], test.labels[:1]), ckpt_dir, device)
    final = model_from_checkpoint(paths[-1], device)
    stats = evaluate_examples(final, full.images, full.labels, device, tcfg.eval_batch_size)
    result = pd.DataFrame({"index": table["index"], "in_subset": mask, "correct": stats.correct.numpy().astype(float)})
    write_parquet(result, out)
    return result


def fetch_published_cscores(
    url: str, out: str | os.PathLike, dataset: str, sha256: str | None = None, md5: str | None = None
) -> Path:
    """Job: the published C-score file of `dataset` at `url`, downloaded to `out` and checked
    (checksums, one score in [0, 1] per training example: memloc.atypical.fetch)."""
    from memloc.core.data.builtin import SPLIT_SIZES

    return fetch_cscores(url, out, SPLIT_SIZES.get(dataset, (None,))[0], sha256=sha256, md5=md5)


def published_example_scores(base: pd.DataFrame, published: dict) -> pd.DataFrame:
    """Per-example scores (index, cscore, times_held_out = -1: not estimated) of the data
    table `base` from a published file, checked against the dataset's labels and picked by
    each example's source_index (the table may be a subset of the split)."""
    from memloc.core.data.source import DataSource

    labels = DataSource(**published["source"]).load(published["dataset"], train=True).labels.numpy()
    scores = load_published_cscores(published["file"], labels, published.get("order"))
    picked = scores[base["source_index"].to_numpy()]
    return pd.DataFrame({"index": base["index"], "cscore": picked, "times_held_out": -1})


def write_atypical_table(
    base_table: str | os.PathLike,
    out: str | os.PathLike,
    threshold: float,
    holdout_parts: list[str] | None = None,
    published: dict | None = None,
) -> pd.DataFrame:
    """Job: the typical/atypical data table from published scores or hold-out parts.

    published: {"file": path, "order": path or None, "dataset": name, "source": DataSource
    settings} (memloc.atypical.plan.published_cscores); None: estimate from holdout_parts.
    """
    base = pd.read_parquet(base_table)
    if published:
        per_example = published_example_scores(base, published)
    else:
        per_example = holdout_estimate([pd.read_parquet(p) for p in holdout_parts])
    table = atypical_table(base, per_example, threshold)
    write_parquet(table, out)
    return table


def write_holdout_report(datasets: dict[str, dict], holdout: dict, threshold: float, out: str | os.PathLike,
                         csv: str | os.PathLike, md: str | os.PathLike) -> pd.DataFrame:
    """Job: results/tables/cscore_holdout.{parquet,csv,md}, one row per typical/atypical
    dataset (memloc.atypical.precision): how often each example was held out, how many are
    atypical and how stable that set is under a bootstrap over the subset models.

    datasets: {name: {"table": its atypical data table, "parts": its hold-out parts (in
    model order; empty for published scores)}} (memloc.atypical.plan.holdout_report).
    """
    rows = [
        summary_row(name, pd.read_parquet(d["table"]), [pd.read_parquet(p) for p in d["parts"]], holdout, threshold)
        for name, d in datasets.items()
    ]
    table = precision_table(rows)
    write_parquet(table, out)
    save_table(table, csv, md, floatfmt=".3g")
    return table
