"""The tensors a run trains and is measured on: its training set (the data table's examples,
in its order, gathered from the in-memory split) and its test images (RunData, which a job
reads through memloc.core.data.inputs.RunInputs); `normalize` maps a batch of them to the
network's input."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd
import torch

from memloc.core.data.builtin import ImageData


@dataclass
class TrainingSet:
    """The tensors a training run needs: images, training labels, per-example group."""

    images: torch.Tensor  # [n, C, H, W] uint8 (or float32, standardized: a declared dataset)
    labels: torch.Tensor  # [n] int64, the (possibly corrupted) training labels
    group: torch.Tensor  # [n] bool, e.g. is_noisy: which examples gradient accounting splits off
    true_labels: torch.Tensor  # [n] int64


def training_set(table: pd.DataFrame, data: ImageData, group_column: str) -> TrainingSet:
    """Gather the table's examples from the in-memory split, in the table's row order."""
    if group_column not in table.columns:
        raise KeyError(f"group column {group_column!r} not in the data table ({list(table.columns)})")
    src = torch.tensor(table["source_index"].to_numpy())
    true = torch.tensor(table["true_label"].to_numpy())
    if not torch.equal(data.labels[src], true):
        raise ValueError("data table does not match the dataset: true labels differ at source_index")
    return TrainingSet(
        images=data.images[src],
        labels=torch.tensor(table["label"].to_numpy(), dtype=torch.int64),
        group=torch.tensor(table[group_column].to_numpy(), dtype=torch.bool),
        true_labels=true,
    )


@dataclass
class RunData:
    """A run's training set and its test images and labels (each on one device)."""

    train: TrainingSet
    test_images: torch.Tensor  # [m, C, H, W]
    test_labels: torch.Tensor  # [m] int64

    def to(self, device: torch.device) -> RunData:
        """The images on `device`, once for a whole job (on the CPU: the same tensors)."""
        return RunData(replace(self.train, images=self.train.images.to(device)), self.test_images.to(device),
                       self.test_labels)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, C, H, W] -> float in [-1, 1] (on the device, per batch).  Float images (a declared
    dataset, standardized when loaded) are copied: nothing done to a batch writes into the dataset."""
    if images.dtype != torch.uint8:
        return images.to(torch.float32, copy=True)
    return images.float().div_(127.5).sub_(1.0)
