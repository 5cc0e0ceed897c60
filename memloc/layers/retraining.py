"""Layer retraining (Sec. 5.2 and App. B.2 of the paper).

Layer l of the final model is reset to its initialization (its whole epoch-0 state, as
`memloc.layers.rewinding.rewind_layer` puts it back), every other parameter is frozen, and the
model is trained on the examples of group False only (the clean ones; a later experiment
uses typical ones) with the one-cycle schedule of `memloc.core.training`.  The model is in
train mode while it trains, so every BatchNorm layer -- frozen or not -- normalises with
batch statistics and updates its running statistics, as the paper states.  After every
retraining epoch the accuracy on each group and on the test set is measured (eval mode).
If the examples of group True (never seen in retraining) are then predicted with their
assigned labels, layer l was not needed to memorize them.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from memloc.core.data import TrainingSet
from memloc.core.evaluation import measure
from memloc.core.models import model_layers
from memloc.core.sgd import cross_entropy, scheduled_sgd, sgd_epoch
from memloc.core.training import TrainConfig
from memloc.layers.rewinding import rewind_layer


def freeze_all_but(model: nn.Module, trainable: list[nn.Parameter]) -> None:
    """requires_grad only for `trainable`: the optimizer never sees the others, so neither
    their gradients nor weight decay can change them."""
    keep = {id(p) for p in trainable}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)


def retrain_layer(
    model: nn.Module,
    layer_index: int,
    init_state: dict[str, torch.Tensor],
    data: TrainingSet,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    cfg: TrainConfig,
    device: torch.device,
    progress: bool = True,
) -> pd.DataFrame:
    """Reset layer `layer_index` of `model` (the final model, on `device`; changed in place)
    to `init_state` (the epoch-0 state_dict), freeze the rest, retrain it on group False.

    cfg: epochs, batch_size, peak_lr, peak_epoch (one-cycle), momentum, weight_decay, seed
    (data order), eval_batch_size and group_names (names of group False / True).
    Returns rows (epoch, subset, accuracy, loss); epoch 0 is the reset model before any
    retraining step, subsets are "train", the two group names and "test".
    """
    layer = model_layers(model)[layer_index]
    rewind_layer(model, layer, init_state)
    freeze_all_but(model, layer.parameters())
    seen = torch.nonzero(~data.group).squeeze(1)  # [m] indices of group False: the only ones trained on
    optimizer, scheduler = scheduled_sgd(layer.parameters(), cfg, len(seen))
    order = torch.Generator().manual_seed(cfg.seed)
    loss = cross_entropy(model, data.images, data.labels.to(device), device)
    rows = []

    def record(epoch: int) -> None:
        m = measure(model, data, test_images, test_labels, cfg, device)
        rows.extend({"epoch": epoch, "subset": k, "accuracy": v, "loss": m["loss"][k]}
                    for k, v in m["accuracy"].items())

    record(0)
    for epoch in tqdm(range(1, cfg.epochs + 1), desc=f"retrain {layer.name}", disable=not progress):
        perm = seen[torch.randperm(len(seen), generator=order)]
        # train mode: every BatchNorm, frozen or not, uses batch statistics and updates its running ones
        sgd_epoch(model, optimizer, scheduler, perm, cfg.batch_size, loss)
        record(epoch)
    return pd.DataFrame(rows)
