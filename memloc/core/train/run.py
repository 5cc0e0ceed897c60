"""Training with per-epoch checkpoints, per-example records and gradient accounting.

Checkpoint t (epoch_{t:03d}.pt; t = 0 is the initialization) holds the model's state (weights
and BatchNorm statistics: what rewinding needs) plus everything measured at the end of epoch t
(per-example correctness / loss / margin, group accuracies, gradient statistics of epoch t).
The optimizer, scheduler, loss-scaler and RNG states are kept for the latest epoch only, in
resume.pt beside them (SGD's momentum alone is as large as the weights).  A run that is
interrupted resumes from there and ends bitwise identical (on CPU) to one that was not, and
the run's tables are assembled from the checkpoints, so nothing is measured twice.

The training data live on the device for the whole run (one copy); `compile` (config key, a
rule parameter: memloc.core.device.current) trains through a torch.compile'd model, whose
weights are the model's.  A run's config (model, training and the precision its forward
passes run in) is stored in every checkpoint and checked when it resumes.

Models whose forward takes the batch's example indices (`takes_example_index`, e.g. with
example-tied dropout) get them from the training loop and the evaluation; a model with
example-tied dropout is measured in its training mode and after dropping
(`memloc.core.train.evaluation.TIED_VIEWS`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from memloc.core.data.run_data import RunData
from memloc.core.device import current, precision_for
from memloc.core.models.build import ModelConfig
from memloc.core.train.checkpoints import checkpoint_path, list_checkpoints, load_checkpoint, resume_path, save_atomic
from memloc.core.train.config import TrainConfig
from memloc.core.train.evaluation import measure
from memloc.core.train.gradients import GradientAccountant
from memloc.core.train.sgd import SGD, make_sgd, run_sgd


@dataclass
class _Run:
    """What a run carries from epoch to epoch (and what its checkpoints restore)."""

    model: nn.Module
    sgd: SGD  # its optimizer, schedule, loss scaler, data order and gradient accounting
    config: dict  # model and train config and precision, stored in (and checked against) every checkpoint


def _start(model_cfg: ModelConfig, cfg: TrainConfig, examples: int, device: torch.device) -> _Run:
    """The run at initialization.  Seeding first, then building the model, fixes the init."""
    torch.manual_seed(cfg.seed)
    model = model_cfg.build().to(device, memory_format=torch.channels_last)
    accountant = GradientAccountant(model, device) if cfg.gradient_accounting else None
    forward = torch.compile(model) if current().compile else model  # shares the model's parameters and buffers
    config = {"model": asdict(model_cfg), "train": asdict(cfg), "precision": precision_for(device)}
    return _Run(model, make_sgd(forward, model.parameters(), cfg, examples, device, accountant), config)


def _checkpoint(run: _Run, epoch: int, measured: dict, grad_stats) -> dict:
    """What every epoch keeps: the model's state (the uncompiled module's names) and what was
    measured at the end of `epoch`."""
    return {
        "epoch": epoch,
        "config": run.config,
        "model": run.model.state_dict(),
        "measured": measured,
        "gradients": grad_stats,
        "layer_names": run.sgd.accountant.layer_names if run.sgd.accountant else None,
    }


def _resume_state(run: _Run, epoch: int, device: torch.device) -> dict:
    """With checkpoint `epoch`'s model: everything to resume after `epoch` bitwise."""
    sgd = run.sgd
    return {
        "epoch": epoch,
        "config": run.config,
        "optimizer": sgd.optimizer.state_dict(),
        "scheduler": sgd.scheduler.state_dict(),
        "scaler": sgd.scaler.state_dict() if sgd.scaler else None,
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
            "data_order": sgd.order.get_state(),
        },
    }


def _save(run: _Run, checkpoint_dir: Path, epoch: int, measured: dict, grad_stats, device: torch.device) -> None:
    """The epoch's checkpoint, then the resume state (replacing the previous epoch's).  A crash
    between the two resumes from the previous epoch, whose state is still there, and redoes this one."""
    save_atomic(_checkpoint(run, epoch, measured, grad_stats), checkpoint_path(checkpoint_dir, epoch))
    save_atomic(_resume_state(run, epoch, device), resume_path(checkpoint_dir))


def _resume(run: _Run, checkpoint_dir: Path, device: torch.device) -> int | None:
    """Restore the latest resume state in `checkpoint_dir` (with its epoch's model) into `run`;
    the next epoch, or None when there are no checkpoints.  Checkpoints of another config are
    an error, not a silent restart."""
    existing = list_checkpoints(checkpoint_dir)
    if not existing:
        return None
    path = resume_path(checkpoint_dir)
    if not path.exists() or (state := load_checkpoint(path))["epoch"] not in existing:
        raise ValueError(f"{checkpoint_dir} has no resume state for its last checkpoint ({path.name}); "
                         "remove its checkpoints to retrain")
    if state["config"] != run.config:
        raise ValueError(f"checkpoints in {checkpoint_dir} were made with another config; remove them to retrain")
    sgd = run.sgd
    run.model.load_state_dict(load_checkpoint(existing[state["epoch"]])["model"])
    sgd.optimizer.load_state_dict(state["optimizer"])
    sgd.scheduler.load_state_dict(state["scheduler"])
    if sgd.scaler and state["scaler"]:
        sgd.scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    sgd.order.set_state(state["rng"]["data_order"])
    return state["epoch"] + 1


def train(model_cfg: ModelConfig, cfg: TrainConfig, data: RunData, checkpoint_dir: str | os.PathLike,
          device: torch.device, stop_after_epoch: int | None = None, progress: bool = True) -> list[Path]:
    """Train (or resume) a run; returns the checkpoint paths for epochs 0..epochs.

    `stop_after_epoch` ends the process early as an interruption would (for tests)."""
    checkpoint_dir = Path(checkpoint_dir)
    run = _start(model_cfg, cfg, len(data.train.labels), device)
    data = data.to(device)  # the images on the device once for the whole run (on the CPU: the same tensors)

    # resume after the last checkpoint, or measure and save the initialization (epoch 0)
    start = _resume(run, checkpoint_dir, device)
    if start is None:
        _save(run, checkpoint_dir, 0, measure(run.model, data, cfg, device), None, device)
        start = 1
    last = cfg.epochs if stop_after_epoch is None else min(cfg.epochs, max(start, stop_after_epoch))
    bar = tqdm(range(start, last + 1), desc="train", disable=not progress, initial=start - 1, total=cfg.epochs)

    def record(epoch: int) -> None:
        # per-example records and accuracies at the end of the epoch (eval mode), then the
        # checkpoint: written after every epoch, so an interrupted job resumes here
        measured = measure(run.model, data, cfg, device)
        grad_stats = run.sgd.accountant.epoch_statistics() if run.sgd.accountant else None
        _save(run, checkpoint_dir, epoch, measured, grad_stats, device)
        bar.set_postfix({k: f"{v:.3f}" for k, v in measured["accuracy"].items()})

    run_sgd(run.sgd, data.train, torch.arange(len(data.train.labels)), bar, record, device)
    return list(list_checkpoints(checkpoint_dir).values())
