"""The SGD loop every training in memloc shares: a run's training (memloc.core.train.run),
layer retraining (memloc.layers.retraining) and second-split fine-tuning
(memloc.flipping.second_split).

SGD with momentum and weight decay under a per-step one-cycle schedule; an epoch visits the
examples in an order the caller draws (each caller owns its data-order generator, which is
part of what makes its runs reproducible).  What differs between the callers is passed in:
the loss of a batch (`batch_loss`) and how its gradient is formed (`backward`: gradient
accounting splits it into two groups).  In fp16 (memloc.core.device.grad_scaler_for) the
caller passes a GradScaler: the loss is scaled before `backward` and the step is skipped
when the scaled gradients overflowed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from memloc.core.device import autocast_for
from memloc.core.example_index import forward_with_index
from memloc.core.train.config import TrainConfig, check_warmup, steps_per_epoch
from memloc.core.train.evaluation import prepare_batch

BatchLoss = Callable[[torch.Tensor], torch.Tensor]  # rows of the batch -> loss with its graph
Backward = Callable[[torch.Tensor, torch.Tensor], object]  # (loss, rows) -> sets every p.grad


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


def cross_entropy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
                  per_example: bool = False, pass_rows: bool = False) -> BatchLoss:
    """The batch loss of `sgd_epoch`: rows -> cross-entropy (in fp32) of those examples of
    `images` (uint8 or normalized float, any device) against `labels` (on `device`).

    per_example: the [B] losses instead of their mean (gradient accounting splits them);
    pass_rows: the model also gets the rows (example-tied dropout ties units to them, so
    they must be positions in the data table)."""

    images = images.to(device)  # resident on the device: one copy per job, batches gathered there (uint8: 4x smaller)

    def loss(rows: torch.Tensor) -> torch.Tensor:
        rows_dev = rows.to(device)
        x = prepare_batch(images[rows_dev], device)
        with autocast_for(device):
            logits = forward_with_index(model, x, rows_dev) if pass_rows else model(x)
        return F.cross_entropy(logits.float(), labels[rows_dev], reduction="none" if per_example else "mean")

    return loss


def plain_backward(loss: torch.Tensor, rows: torch.Tensor) -> None:
    loss.backward()


def sgd_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, order: torch.Tensor,
              batch_size: int, batch_loss: BatchLoss, backward: Backward = plain_backward,
              scaler: torch.amp.GradScaler | None = None) -> None:
    """One epoch: the examples at `order` (rows, already shuffled) in consecutive batches of
    `batch_size`; per batch the forward (`batch_loss`), the gradient (`backward`), one
    optimizer step and one scheduler step (the schedule is per step).

    scaler (fp16): `backward` gets the loss times the scaler's scale, GradScaler.step unscales
    p.grad and skips the optimizer step when it holds inf / NaN; the schedule steps anyway."""
    model.train()  # batch statistics; every BatchNorm's running statistics update, frozen or not
    for s in range(math.ceil(len(order) / batch_size)):
        rows = order[s * batch_size : (s + 1) * batch_size]
        loss = batch_loss(rows)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            backward(loss, rows)
            optimizer.step()
        else:
            backward(scaler.scale(loss), rows)
            scaler.step(optimizer)
            scaler.update()
        scheduler.step()
