"""Job-level entry points of the layer experiments (rewinding, retraining): paths in,
parquet tables out, as in memloc.runs.jobs.

Both read a run's checkpoints through its manifest (checkpoints.txt: one path a line,
epoch 0 first) and name the two groups of examples as the run did
(TrainConfig.group_names of the final checkpoint: e.g. clean / noisy); the group of each
example is the data table's `group_column`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import torch

from memloc.core.data import load_run_data, write_parquet
from memloc.core.evaluation import resolve_device
from memloc.core.models import model_layers
from memloc.core.training import TrainConfig, load_checkpoint, model_from_checkpoint
from memloc.layers.retraining import retrain_layer
from memloc.layers.rewinding import rewinding_accuracy

# Rows of the rewinding table with every layer at epoch t: the checkpoint itself, whose
# accuracies training measured (the training curve beside the heatmaps in fig03).
ALL_LAYERS = "all"


def read_manifest(path: str | os.PathLike) -> list[Path]:
    """The checkpoint paths a run's manifest (checkpoints.txt) lists, epoch 0 first."""
    return [Path(line) for line in Path(path).read_text().split()]


def rewind_states(paths: list[Path], epochs: list[int] | None) -> tuple[dict[int, dict], list[dict], list[str]]:
    """Read every checkpoint once: ({epoch: model state} of the rewind epochs (None: every
    checkpoint), the training curve rows (epoch, subset, accuracy) training measured, the
    group names of the final checkpoint)."""
    states, curve = {}, []
    for path in paths:
        ckpt = load_checkpoint(path)
        t = ckpt["epoch"]
        curve += [{"epoch": t, "subset": k, "accuracy": v} for k, v in ckpt["measured"]["accuracy"].items()]
        if epochs is None or t in epochs:
            states[t] = ckpt["model"]
    return states, curve, list(ckpt["config"]["train"]["group_names"])


def rewind_run(
    data_table: str | os.PathLike,
    checkpoints: str | os.PathLike,
    out: str | os.PathLike,
    dataset: str,
    source: dict,
    test_subset: int | None,
    epochs: list[int] | None = None,
    batch_size: int = 1024,
    device: str = "auto",
    threads: int = 1,
    group_column: str = "is_noisy",
    progress: bool = True,
) -> pd.DataFrame:
    """Rewind every layer of a run to every epoch of `epochs` (None: every checkpoint).

    Writes rows (layer_index, layer, epoch, subset, accuracy): subsets are the two group
    names and "test"; rows with layer "all" (layer_index -1) are the training curve
    (every layer at epoch t, as measured during training; also subset "train").
    """
    torch.set_num_threads(threads)
    dev = resolve_device(device)
    paths = read_manifest(checkpoints)
    states, curve, group_names = rewind_states(paths, epochs)
    missing = sorted(set(epochs or []) - set(states))
    if missing:
        raise ValueError(f"rewind epochs {missing} have no checkpoint in {checkpoints}")
    model = model_from_checkpoint(paths[-1], dev)
    trainset, test_images, test_labels = load_run_data(data_table, dataset, source, test_subset, group_column)
    images = torch.cat([trainset.images, test_images])
    labels = torch.cat([trainset.labels, test_labels])
    subset = torch.cat([trainset.group.long(), torch.full((len(test_labels),), 2)])  # 0/1: groups, 2: test
    names = [*group_names, "test"]
    rewound = rewinding_accuracy(model, states, images, labels, subset, names, dev, batch_size, progress)
    curve = pd.DataFrame(curve).assign(layer_index=-1, layer=ALL_LAYERS)
    table = pd.concat([rewound, curve[rewound.columns]], ignore_index=True)
    write_parquet(table, out)
    return table


def retrain_run_layer(
    data_table: str | os.PathLike,
    checkpoints: str | os.PathLike,
    out: str | os.PathLike,
    dataset: str,
    source: dict,
    test_subset: int | None,
    layer: str,
    settings: dict,
    device: str = "auto",
    threads: int = 1,
    group_column: str = "is_noisy",
    progress: bool = True,
    recalibrate_bn: bool = False,
) -> pd.DataFrame:
    """Retrain one layer of a run from its initialization on group False (memloc.layers.retraining).

    settings: TrainConfig fields (epochs, batch_size, peak_lr, peak_epoch, momentum,
    weight_decay, seed, eval_batch_size).  recalibrate_bn: re-estimate the BatchNorm running
    statistics on group False before each measurement.  Writes rows (layer_index, layer,
    epoch, subset, accuracy, loss), epoch 0 being the reset model.
    """
    torch.set_num_threads(threads)
    dev = resolve_device(device)
    paths = read_manifest(checkpoints)
    init = load_checkpoint(paths[0])["model"]
    group_names = load_checkpoint(paths[-1])["config"]["train"]["group_names"]
    model = model_from_checkpoint(paths[-1], dev)
    names = [x.name for x in model_layers(model)]
    if layer not in names:
        raise ValueError(f"model has no layer {layer!r}; its layers: {names}")
    cfg = TrainConfig(**{**settings, "gradient_accounting": False, "group_names": tuple(group_names)})
    trainset, test_images, test_labels = load_run_data(data_table, dataset, source, test_subset, group_column)
    li = names.index(layer)
    table = retrain_layer(model, li, init, trainset, test_images, test_labels, cfg, dev, progress, recalibrate_bn)
    table.insert(0, "layer", layer)
    table.insert(0, "layer_index", li)
    write_parquet(table, out)
    return table

