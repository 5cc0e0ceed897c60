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

from memloc.core.data.inputs import RunInputs
from memloc.core.device import precision_for
from memloc.core.files import file_id as _file_id
from memloc.core.files import load_partial, partial_path, write_parquet
from memloc.core.files import save_partial as _save_partial
from memloc.core.models.layer_rule import model_layers
from memloc.core.train.checkpoints import load_checkpoint, model_from_checkpoint
from memloc.core.train.config import TrainConfig
from memloc.layers.retraining import retrain_layer
from memloc.layers.rewinding import Examples, open_checkpoint, rewound_layers

# Rows of the rewinding table with every layer at epoch t: the checkpoint itself, whose
# accuracies training measured (the training curve beside the heatmaps in fig03).
ALL_LAYERS = "all"


def read_manifest(path: str | os.PathLike) -> list[Path]:
    """The checkpoint paths a run's manifest (checkpoints.txt) lists, epoch 0 first."""
    return [Path(line) for line in Path(path).read_text().split()]


def checkpoint_index(paths: list[Path]) -> tuple[dict[int, Path], list[dict], list[str]]:
    """One light pass over a run's checkpoints (memory-mapped: only the small entries are
    read): ({epoch: path}, the training curve rows (epoch, subset, accuracy) training
    measured, the group names of the final checkpoint)."""
    by_epoch, curve = {}, []
    for path in paths:
        ckpt = open_checkpoint(path)
        t = ckpt["epoch"]
        by_epoch[t] = path
        curve += [{"epoch": t, "subset": k, "accuracy": v} for k, v in ckpt["measured"]["accuracy"].items()]
    return by_epoch, curve, list(ckpt["config"]["train"]["group_names"])


def _rewind_run(inputs: RunInputs, checkpoints: str | os.PathLike, out: str | os.PathLike, epochs: list[int] | None,
                batch_size: int, device: torch.device) -> pd.DataFrame:
    """Rewind every layer of a run to every epoch of `epochs` (None: every checkpoint).

    Writes rows (layer_index, layer, epoch, subset, accuracy): subsets are the two group
    names and "test"; rows with layer "all" (layer_index -1) are the training curve
    (every layer at epoch t, as measured during training; also subset "train").
    Checkpoints are read one layer at a time (memloc.layers.rewinding), and each finished
    layer's rows go to `partial_path(out)`: a job that dies resumes at its first unfinished
    layer, and its table is the one an uninterrupted job writes.
    """
    paths = read_manifest(checkpoints)
    by_epoch, curve, group_names = checkpoint_index(paths)
    missing = sorted(set(epochs or []) - set(by_epoch))
    if missing:
        raise ValueError(f"rewind epochs {missing} have no checkpoint in {checkpoints}")
    states = {t: p for t, p in by_epoch.items() if epochs is None or t in epochs}
    model = model_from_checkpoint(paths[-1], device)
    layers = model_layers(model)
    names = [*group_names, "test"]
    key = {"files": [_file_id(p) for p in [*paths, inputs.table]], "epochs": sorted(states), "subsets": names,
           "layers": [x.name for x in layers], "dataset": inputs.dataset, "test_subset": inputs.test_subset,
           "group_column": inputs.group_column, "batch_size": batch_size, "device": device.type,
           "precision": precision_for(device)}  # the partial rows of another job are not reused
    partial = partial_path(out)
    done = load_partial(partial, key, "rewinding")
    if len(done) < len(layers):
        data = inputs.load()
        examples = Examples(torch.cat([data.train.images, data.test_images]),
                            torch.cat([data.train.labels, data.test_labels]),
                            torch.cat([data.train.group.long(), torch.full((len(data.test_labels),), 2)]),  # 2: test
                            names)
        for li, rows in rewound_layers(model, states, examples, device, batch_size, skip=set(done)):
            done[li] = rows
            _save_partial(partial, key, done)
    rewound = pd.DataFrame([row for li in range(len(layers)) for row in done[li]])
    curve = pd.DataFrame(curve).assign(layer_index=-1, layer=ALL_LAYERS)
    table = pd.concat([rewound, curve[rewound.columns]], ignore_index=True)
    write_parquet(table, out)
    return table


def _retrain_run(inputs: RunInputs, checkpoints: str | os.PathLike, out: str | os.PathLike, layers: list[str],
                 settings: dict, recalibrate_bn: bool, device: torch.device) -> pd.DataFrame:
    """Retrain each of `layers` of a run, one after another, from its initialization on group
    False (memloc.layers.retraining), each on a fresh copy of the final model.

    settings: TrainConfig fields but the groups' names, which are the run's (its final
    checkpoint's).  recalibrate_bn: re-estimate the BatchNorm running statistics on group False
    before each measurement.  Writes rows (layer_index, layer, epoch, subset, accuracy, loss),
    epoch 0 being the reset model, the layers in model order: the rows one job per layer
    would write.  Each finished layer's rows go to `partial_path(out)`, as in rewind_run: a job
    that dies resumes at its first unfinished layer.
    """
    paths = read_manifest(checkpoints)
    init = load_checkpoint(paths[0])["model"]
    group_names = load_checkpoint(paths[-1])["config"]["train"]["group_names"]
    names = [x.name for x in model_layers(model_from_checkpoint(paths[-1], torch.device("cpu")))]
    if unknown := [layer for layer in layers if layer not in names]:
        raise ValueError(f"model has no layers {unknown}; its layers: {names}")
    chosen = [names.index(layer) for layer in layers]
    cfg = TrainConfig(**settings, group_names=tuple(group_names))
    key = {"files": [_file_id(p) for p in [*paths, inputs.table]], "layers": chosen, "settings": settings,
           "recalibrate_bn": recalibrate_bn, "dataset": inputs.dataset, "test_subset": inputs.test_subset,
           "group_column": inputs.group_column, "device": device.type, "precision": precision_for(device)}
    partial = partial_path(out)
    done = load_partial(partial, key, "retraining")
    if len(done) < len(chosen):
        data = inputs.load().to(device)  # once for every layer
        for li in chosen:
            if li in done:
                continue
            table = retrain_layer(model_from_checkpoint(paths[-1], device), li, init, data, cfg, device, recalibrate_bn)
            done[li] = table.to_dict("records")
            _save_partial(partial, key, done)
    table = pd.concat([pd.DataFrame(done[li]).assign(layer=names[li], layer_index=li) for li in chosen],
                      ignore_index=True)
    table = table[["layer_index", "layer", *[c for c in table.columns if c not in ("layer_index", "layer")]]]
    write_parquet(table, out)
    return table


def rewind_run(inputs: RunInputs, checkpoints: str | os.PathLike, out: str | os.PathLike, epochs: list[int] | None,
               batch_size: int, device: torch.device) -> pd.DataFrame:
    """_rewind_run's table of one run (see there); its finished layers' rows are dropped once
    the table is written."""
    table = _rewind_run(inputs, checkpoints, out, epochs, batch_size, device)
    partial_path(out).unlink(missing_ok=True)
    return table


def retrain_run(inputs: RunInputs, checkpoints: str | os.PathLike, out: str | os.PathLike, layers: list[str],
                settings: dict, recalibrate_bn: bool, device: torch.device) -> pd.DataFrame:
    """_retrain_run's table of one run (see there); its finished layers' rows are dropped once
    the table is written."""
    table = _retrain_run(inputs, checkpoints, out, layers, settings, recalibrate_bn, device)
    partial_path(out).unlink(missing_ok=True)
    return table


def rewind_runs(inputs: RunInputs, runs: list[tuple[str, str]], epochs: list[int] | None, batch_size: int,
                device: torch.device) -> None:
    """Several runs of one setting in one process (config key runs_per_job): runs =
    [(checkpoints manifest, out)], each rewound as rewind_run does.  Every run keeps its
    finished layers' rows until the last table is written (Snakemake deletes a killed job's
    tables, so a rerun rebuilds the finished runs' tables from them): a killed job loses at
    most one layer."""
    for checkpoints, out in runs:
        _rewind_run(inputs, checkpoints, out, epochs, batch_size, device)
    for _, out in runs:
        partial_path(out).unlink(missing_ok=True)


def retrain_runs(inputs: RunInputs, runs: list[tuple[str, str, dict]], layers: list[str], recalibrate_bn: bool,
                 device: torch.device) -> None:
    """Several runs of one setting in one process: runs = [(checkpoints manifest, out,
    settings)], each retrained as retrain_run does; resumable per layer as rewind_runs."""
    for checkpoints, out, settings in runs:
        _retrain_run(inputs, checkpoints, out, layers, settings, recalibrate_bn, device)
    for _, out, _ in runs:
        partial_path(out).unlink(missing_ok=True)
