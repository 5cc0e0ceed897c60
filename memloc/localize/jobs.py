"""Workflow steps of the localization benchmark: localize one shard of the selected examples
on one track's run, the summary table, the figure.  Paths in, files out; only
workflow/scripts call these (memloc.localize.tracks has the benchmark)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from memloc.core.data.inputs import RunInputs
from memloc.core.files import save_table, write_parquet
from memloc.flipping.jobs import select_examples


def specificity_rows(table: pd.DataFrame, chosen: pd.DataFrame, size: int, seed: int) -> dict[str, np.ndarray]:
    """{clean, noisy}: `size` training rows of each group (fewer where the group has fewer)
    that are not localized, drawn with `seed`."""
    rng = np.random.default_rng([seed, 23])
    free = table[~table["index"].isin(chosen["index"])]
    out = {}
    for name, noisy in (("clean", False), ("noisy", True)):
        rows = free.loc[free["is_noisy"] == noisy, "index"].to_numpy()
        out[name] = np.sort(rng.choice(rows, size=min(size, len(rows)), replace=False))
    return out


def localize_shard(inputs: RunInputs, checkpoints: str | os.PathLike, shard: int, out: str | os.PathLike,
                   settings: dict, device) -> pd.DataFrame:
    """Localize the selected examples of one shard on the final checkpoint of the track's run
    (settings: config localization, plus track and seed): the long table's rows
    (memloc.localize.tracks)."""
    import torch

    from memloc.core.models.build import ModelConfig
    from memloc.core.train.checkpoints import model_from_checkpoint
    from memloc.core.train.evaluation import prepare_batch
    from memloc.dropout.model import DropoutModelConfig
    from memloc.flipping.units import candidate_units
    from memloc.localize import tracks
    from memloc.localize.context import Context, Examples, tied_units

    truth = settings["track"] == "ground_truth"
    config_class = DropoutModelConfig if truth else ModelConfig
    model = model_from_checkpoint(Path(checkpoints).read_text().split()[-1], device, config_class)
    table = inputs.read_table()
    chosen = select_examples(table, settings["examples_per_group"], settings["selection_seed"], settings["shards"])
    data = inputs.load()
    units = tied_units(model) if truth else candidate_units(model)
    ctx = Context(model, units, settings, settings["seed"], data.train, device, settings["max_rows"])

    def examples(images, labels, rows) -> Examples:
        return Examples(prepare_batch(images, device).to(ctx.dtype), labels.to(device), torch.as_tensor(rows))

    rows = chosen.loc[chosen["shard"] == shard, "index"].to_numpy().copy()
    ex = examples(data.train.images[rows], data.train.labels[rows], rows)
    is_noisy = data.train.group[rows].numpy()
    if truth:
        df = tracks.ground_truth(ctx, ex, is_noisy, settings["methods"])
    else:
        spec = specificity_rows(table, chosen, settings["specificity_examples"], settings["selection_seed"])
        train_rows = np.concatenate([spec["clean"], spec["noisy"]])
        n_test = min(settings["specificity_examples"], len(data.test_labels))
        x = torch.cat([data.train.images[train_rows], data.test_images[:n_test]])
        y = torch.cat([data.train.labels[train_rows], data.test_labels[:n_test]])
        group = np.array(["clean"] * len(spec["clean"]) + ["noisy"] * len(spec["noisy"]) + ["test"] * n_test)
        others = examples(x, y, np.concatenate([train_rows, -1 - np.arange(n_test)]))
        df = tracks.deletion(ctx, ex, is_noisy, (others, group), settings)
    write_parquet(df, out)
    return df


def write_summary(parquet: str | os.PathLike, csv: str | os.PathLike, md: str | os.PathLike) -> pd.DataFrame:
    """localization.{csv,md}: one row per method (memloc.localize.tables.summary)."""
    from memloc.localize.tables import summary

    table = summary(pd.read_parquet(parquet))
    save_table(table, csv, md, floatfmt=".3f")
    return table


def draw_figure(parquet: str | os.PathLike, outputs: list[str]) -> None:
    from memloc.localize.figure import localization_figure

    localization_figure(pd.read_parquet(parquet), outputs)
