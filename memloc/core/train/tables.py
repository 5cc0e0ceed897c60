"""A run's tables, assembled from its checkpoints (memloc.core.train.run): metrics, per-example
records and gradient statistics."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from memloc.core.train.checkpoints import load_checkpoint


def run_tables(checkpoints: list[str | os.PathLike]) -> dict[str, pd.DataFrame]:
    """Assemble a run's tables from its checkpoints (epoch 0..E).

    - metrics: epoch, subset (train / test / each group name; with example-tied dropout also
      each of them + "/drop"), accuracy, loss
    - examples: epoch, index, correct, loss, margin (every training example, every epoch; with
      example-tied dropout also correct_drop, loss_drop, margin_drop, prediction_drop)
    - gradients: epoch, layer, layer_index, group (each group name / total), norm: ||G_l|| /
      sqrt(#params of layer l) of the group's epoch gradient G (the mean over the epoch's batches
      of its 1/|B|-weighted batch gradients; group "total" = the sum of the two), cosine: of the
      two groups' epoch gradients (repeated on the epoch-layer's rows); batch_norm, batch_cosine:
      the same per batch, averaged over the epoch's batches (batch_cosine over the batches with
      both groups).  See memloc.core.train.gradients.
    """
    metrics, examples, gradients = [], [], []
    for path in checkpoints:
        ckpt = load_checkpoint(path)
        t, m = ckpt["epoch"], ckpt["measured"]
        for subset, acc in m["accuracy"].items():
            metrics.append({"epoch": t, "subset": subset, "accuracy": acc, "loss": m["loss"][subset]})
        rec = m["records"]
        columns = {
            "epoch": np.full(len(rec["correct"]), t, dtype=np.int32),
            "index": np.arange(len(rec["correct"])),
            "correct": rec["correct"].numpy(),
            "loss": rec["loss"].numpy(),
            "margin": rec["margin"].numpy(),
        }
        for name, values in m.get("records_drop", {}).items():  # example-tied dropout runs only
            columns[f"{name}_drop"] = values.numpy()
        examples.append(pd.DataFrame(columns))
        if ckpt["gradients"] is not None:
            gradients += _gradient_rows(ckpt)
    return {
        "metrics": pd.DataFrame(metrics),
        "examples": pd.concat(examples, ignore_index=True),
        "gradients": pd.DataFrame(gradients, columns=GRADIENT_COLUMNS),
    }


GRADIENT_COLUMNS = ["epoch", "layer", "layer_index", "group", "norm", "cosine", "batch_norm", "batch_cosine"]


def _gradient_rows(ckpt: dict) -> list[dict]:
    """The gradients table's rows of one checkpoint: per layer, one row per group and total."""
    stats = {k: v.double().numpy() for k, v in ckpt["gradients"].items()}  # {statistic: [L]}
    a, g = ckpt["config"]["train"]["group_names"]
    rows = []
    for li, name in enumerate(ckpt["layer_names"]):
        for group, suffix in ((a, "a"), (g, "b"), ("total", "total")):
            rows.append({"epoch": ckpt["epoch"], "layer": name, "layer_index": li, "group": group,
                         "norm": stats[f"norm_{suffix}"][li], "cosine": stats["cosine"][li],
                         "batch_norm": stats[f"batch_norm_{suffix}"][li], "batch_cosine": stats["batch_cosine"][li]})
    return rows
