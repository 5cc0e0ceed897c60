"""A run's checkpoint files: epoch_{t:03d}.pt per epoch (the model's state and what was measured),
resume.pt (the latest epoch's optimizer, scheduler, loss-scaler and RNG states; see
memloc.core.train.run), written atomically."""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from torch import nn

from memloc.core.files import atomic_path
from memloc.core.models.build import ModelConfig


def checkpoint_path(directory: str | os.PathLike, epoch: int) -> Path:
    return Path(directory) / f"epoch_{epoch:03d}.pt"


def resume_path(directory: str | os.PathLike) -> Path:
    """The latest epoch's optimizer, scheduler, loss-scaler and RNG states."""
    return Path(directory) / "resume.pt"


def list_checkpoints(directory: str | os.PathLike) -> dict[int, Path]:
    """{epoch: path} of the complete checkpoints in `directory`."""
    out = {}
    for p in Path(directory).glob("epoch_*.pt"):
        m = re.fullmatch(r"epoch_(\d+)\.pt", p.name)
        if m:
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def save_atomic(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    return torch.load(path, map_location=map_location, weights_only=False)


def model_from_checkpoint(path: str | os.PathLike, device: torch.device, config_class: type = ModelConfig) -> nn.Module:
    """Rebuild the model a checkpoint belongs to and load its weights (config_class: its
    settings' class, e.g. memloc.dropout.model.DropoutModelConfig for a model with dropout)."""
    ckpt = load_checkpoint(path)
    model = config_class(**ckpt["config"]["model"]).build()
    model.load_state_dict(ckpt["model"])
    return model.to(device, memory_format=torch.channels_last)
