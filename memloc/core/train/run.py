"""Training with per-epoch checkpoints, per-example records and gradient accounting.

Checkpoint t (epoch_{t:03d}.pt; t = 0 is the initialization) holds the model's state (weights
and BatchNorm statistics: what rewinding needs) plus everything measured at the end of epoch t
(per-example correctness / loss / margin, group accuracies, gradient statistics of epoch t).
The optimizer, scheduler, loss-scaler and RNG states are kept for the latest epoch only, in
resume.pt beside them (SGD's momentum alone is as large as the weights).  A run that is
interrupted resumes from there and ends bitwise identical (on CPU) to one that was not, and
the run's tables are assembled from the checkpoints, so nothing is measured twice.

The training data live on the device for the whole run (one copy); `compile` (config key,
MEMLOC_COMPILE) trains through a torch.compile'd model, whose weights are the model's.

Models whose forward takes the batch's example indices (`takes_example_index`, e.g. with
example-tied dropout) get them from the training loop and the evaluation; a model with
example-tied dropout is measured in its training mode and after dropping
(`memloc.core.train.evaluation.TIED_VIEWS`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from memloc.core.data.run_data import TrainingSet
from memloc.core.device import compile_enabled, grad_scaler_for
from memloc.core.models.build import ModelConfig
from memloc.core.train.checkpoints import (
    check_gradient_format,
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    resume_path,
    save_atomic,
)
from memloc.core.train.config import TrainConfig
from memloc.core.train.evaluation import measure
from memloc.core.train.gradients import GradientAccountant
from memloc.core.train.sgd import cross_entropy, scheduled_sgd, sgd_epoch


@dataclass
class _Run:
    """What a run carries from epoch to epoch (and what its checkpoints restore)."""

    model: nn.Module
    forward: nn.Module  # what training's forward passes go through: the model, or its torch.compile'd wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None  # fp16 only
    order: torch.Generator  # the data order, independent of the initialization
    accountant: GradientAccountant | None
    config: dict  # model and train config, stored in (and checked against) every checkpoint


def _start(model_cfg: ModelConfig, cfg: TrainConfig, examples: int, device: torch.device, compile_model: bool) -> _Run:
    """The run at initialization.  Seeding first, then building the model, fixes the init."""
    torch.manual_seed(cfg.seed)
    model = model_cfg.build().to(device, memory_format=torch.channels_last)
    optimizer, scheduler = scheduled_sgd(model.parameters(), cfg, examples)
    order = torch.Generator().manual_seed(cfg.seed)
    accountant = GradientAccountant(model, device) if cfg.gradient_accounting else None
    forward = torch.compile(model) if compile_model else model  # shares the model's parameters and buffers
    config = {"model": asdict(model_cfg), "train": asdict(cfg)}
    return _Run(model, forward, optimizer, scheduler, grad_scaler_for(device), order, accountant, config)


def _checkpoint(run: _Run, epoch: int, measured: dict, grad_stats) -> dict:
    """What every epoch keeps: the model's state (the uncompiled module's names) and what was
    measured at the end of `epoch`."""
    return {
        "epoch": epoch,
        "config": run.config,
        "model": run.model.state_dict(),
        "measured": measured,
        "gradients": grad_stats,
        "layer_names": run.accountant.layer_names if run.accountant else None,
    }


def _resume_state(run: _Run, epoch: int, device: torch.device) -> dict:
    """With checkpoint `epoch`'s model: everything to resume after `epoch` bitwise."""
    return {
        "epoch": epoch,
        "config": run.config,
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler else None,
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
            "data_order": run.order.get_state(),
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
    state = load_checkpoint(path if path.exists() else existing[max(existing)])  # older memloc: in every checkpoint
    last = state["epoch"]
    if state["config"] != run.config:
        raise ValueError(f"checkpoints in {checkpoint_dir} were made with another config; remove them to retrain")
    if "optimizer" not in state or last not in existing:
        raise ValueError(f"{checkpoint_dir} has no resume state for its checkpoint {last} ({path.name}); "
                         "remove its checkpoints to retrain")
    ckpt = state if "model" in state else load_checkpoint(existing[last])
    check_gradient_format(ckpt, existing[last])
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    if run.scaler and state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    run.order.set_state(state["rng"]["data_order"])
    return last + 1


def _train_epoch(run: _Run, data: TrainingSet, cfg: TrainConfig, device: torch.device) -> None:
    """One epoch of SGD over every example.  The model gets each batch's rows (positions in
    the data table, which example-tied dropout ties units to); with gradient accounting the
    per-example losses are split into the two groups' gradients, whose sum is stepped on."""
    if run.accountant:
        run.accountant.reset()
    labels, group = data.labels.to(device), data.group.to(device)
    loss = cross_entropy(run.forward, data.images, labels, device, per_example=True, pass_rows=True)

    def backward(per_example: torch.Tensor, rows: torch.Tensor) -> None:
        if run.accountant:  # a backward pass per group; p.grad = their sum (fp16: scaled, the accounting not)
            run.accountant.backward(per_example, group[rows.to(device)], run.scaler.get_scale() if run.scaler else 1.0)
        else:
            per_example.mean().backward()

    perm = torch.randperm(len(data.labels), generator=run.order)
    sgd_epoch(run.forward, run.optimizer, run.scheduler, perm, cfg.batch_size, loss, backward, run.scaler)


def train(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    data: TrainingSet,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    checkpoint_dir: str | os.PathLike,
    device: torch.device,
    stop_after_epoch: int | None = None,
    progress: bool = True,
    compile_model: bool | None = None,
) -> list[Path]:
    """Train (or resume) a run; returns the checkpoint paths for epochs 0..epochs.

    `stop_after_epoch` ends the process early as an interruption would (for tests);
    `compile_model`: train through torch.compile (None: memloc.core.device.compile_enabled()).
    """
    checkpoint_dir = Path(checkpoint_dir)
    compile_model = compile_enabled() if compile_model is None else compile_model
    run = _start(model_cfg, cfg, len(data.labels), device, compile_model)
    # the images on the device once for the whole run (on the CPU: the same tensors)
    data, test_images = replace(data, images=data.images.to(device)), test_images.to(device)

    # resume after the last checkpoint, or measure and save the initialization (epoch 0)
    start = _resume(run, checkpoint_dir, device)
    if start is None:
        measured = measure(run.model, data, test_images, test_labels, cfg, device)
        _save(run, checkpoint_dir, 0, measured, None, device)
        start = 1

    bar = tqdm(range(start, cfg.epochs + 1), desc="train", disable=not progress, initial=start - 1, total=cfg.epochs)
    for epoch in bar:
        _train_epoch(run, data, cfg, device)
        # record: per-example records and accuracies at the end of the epoch (eval mode)
        measured = measure(run.model, data, test_images, test_labels, cfg, device)
        # checkpoint: written after every epoch, so an interrupted job resumes here
        grad_stats = run.accountant.epoch_statistics() if run.accountant else None
        _save(run, checkpoint_dir, epoch, measured, grad_stats, device)
        bar.set_postfix({k: f"{v:.3f}" for k, v in measured["accuracy"].items()})
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
    return list(list_checkpoints(checkpoint_dir).values())
