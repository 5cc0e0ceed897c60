"""The SGD loop every training in memloc runs: a run's training (memloc.core.train.run), layer
retraining (memloc.layers.retraining) and second-split fine-tuning (memloc.flipping.second_split).

SGD with momentum and weight decay under a per-step one-cycle schedule (`scheduled_sgd`); an
epoch visits the rows trained on in an order drawn from the training's own generator (part of
what makes it reproducible).  With gradient accounting (memloc.core.train.gradients) the
batch's per-example losses are split into the two groups' gradients, whose sum is stepped on;
without it the step is on the gradient of the batch's mean loss.  In fp16
(memloc.core.device.grad_scaler_for) a GradScaler scales the loss before the backward pass and
skips the step when the scaled gradients overflowed.  What differs between the trainings is
what they record after each epoch (`record`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from memloc.core.data.run_data import TrainingSet
from memloc.core.device import autocast_for, grad_scaler_for
from memloc.core.example_index import forward_with_index
from memloc.core.train.augment import Augment, augment_batch
from memloc.core.train.config import TrainConfig, check_warmup, steps_per_epoch
from memloc.core.train.evaluation import prepare_batch
from memloc.core.train.gradients import GradientAccountant


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=cfg.peak_lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def one_cycle(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps: int):
    """Linear warm-up from 0 to peak_lr at peak_epoch, then linear decay to 0 (per step).

    Momentum stays fixed (cycle_momentum=False): the paper uses SGD with momentum 0.9.
    """
    check_warmup(cfg, steps)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=cfg.peak_lr,
        total_steps=cfg.epochs * steps,
        pct_start=cfg.peak_epoch / cfg.epochs,
        anneal_strategy="linear",
        cycle_momentum=False,
        div_factor=float("inf"),  # start at exactly 0
        final_div_factor=1.0,  # end at (0 / 1) = 0
    )


def scheduled_sgd(params, cfg: TrainConfig, examples: int):
    """(optimizer, one-cycle scheduler) for cfg.epochs epochs over `examples` examples in
    batches of cfg.batch_size (the last batch of an epoch may be smaller)."""
    optimizer = make_optimizer(params, cfg)
    return optimizer, one_cycle(optimizer, cfg, steps_per_epoch(examples, cfg.batch_size))


@dataclass
class SGD:
    """What the loop steps, and how."""

    model: nn.Module  # what the forward passes go through: the model, or its torch.compile'd wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None  # fp16 only
    order: torch.Generator  # the data order (and the augmentation's draws), independent of the initialization
    batch_size: int
    accountant: GradientAccountant | None  # gradient accounting, or None
    augment: Augment  # random crops and flips of each batch (inactive: none)


def make_sgd(model: nn.Module, params, cfg: TrainConfig, examples: int, device: torch.device,
             accountant: GradientAccountant | None = None) -> SGD:
    """SGD on `params` of `model` for cfg's schedule over `examples` examples a epoch, its data
    order seeded by cfg.seed."""
    optimizer, scheduler = scheduled_sgd(params, cfg, examples)
    order = torch.Generator().manual_seed(cfg.seed)
    return SGD(model, optimizer, scheduler, grad_scaler_for(device), order, cfg.batch_size, accountant, cfg.augment)


def run_sgd(sgd: SGD, data: TrainingSet, rows: torch.Tensor, epochs: Iterable[int],
            record: Callable[[int], None], device: torch.device) -> None:
    """Train on the examples `rows` of `data` for each epoch of `epochs`; record(epoch) after each."""
    images, labels, group = data.images.to(device), data.labels.to(device), data.group.to(device)
    for epoch in epochs:
        # the epoch's order: the rows shuffled by the training's own generator
        order = rows[torch.randperm(len(rows), generator=sgd.order)]
        # train mode: every BatchNorm, frozen or not, normalises with batch statistics and updates its running ones
        sgd.model.train()
        if sgd.accountant is not None:
            sgd.accountant.reset()
        for start in range(0, len(order), sgd.batch_size):
            batch = order[start : start + sgd.batch_size].to(device)
            # forward: the batch's images (augmented: each cropped and mirrored at random), normalized on
            # the device, in the job's precision; the model gets the batch's rows (positions in the data
            # table, which example-tied dropout ties units to)
            x = prepare_batch(augment_batch(images[batch], sgd.augment, sgd.order), device)
            with autocast_for(device):
                logits = forward_with_index(sgd.model, x, batch)
            losses = F.cross_entropy(logits.float(), labels[batch], reduction="none")  # per example, in fp32
            # backward: p.grad of the batch's mean loss (fp16: of the loss times the scaler's scale)
            sgd.optimizer.zero_grad(set_to_none=True)
            scaled = losses if sgd.scaler is None else sgd.scaler.scale(losses)
            if sgd.accountant is None:
                scaled.mean().backward()
            else:  # gradient accounting: a backward pass per group, p.grad = their sum (the accounting unscaled)
                sgd.accountant.backward(scaled, group[batch], 1.0 if sgd.scaler is None else sgd.scaler.get_scale())
            # step: the optimizer (fp16: unless the scaled gradients overflowed), then the schedule
            if sgd.scaler is None:
                sgd.optimizer.step()
            else:
                sgd.scaler.step(sgd.optimizer)
                sgd.scaler.update()
            sgd.scheduler.step()
        # record: what this training measures after every epoch (and, for a run, its checkpoint)
        record(epoch)
