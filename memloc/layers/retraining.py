"""Layer retraining (Sec. 5.2 and App. B.2 of the paper).

Layer l of the final model is reset to its initialization (its whole epoch-0 state, as
`memloc.layers.rewinding.rewind_layer` puts it back), every other parameter is frozen, and the
model is trained on the examples of group False only (the clean ones; a later experiment
uses typical ones) with the one-cycle schedule and the SGD loop of memloc.core.train.sgd.
The model is in train mode while it trains, so every BatchNorm layer -- frozen or not -- normalises with
batch statistics and updates its running statistics, as the paper states.  After every
retraining epoch the accuracy on each group and on the test set is measured (eval mode).
If the examples of group True (never seen in retraining) are then predicted with their
assigned labels, layer l was not needed to memorize them.

BatchNorm statistics (`recalibrate_bn`).  The reset layer's running statistics start at
their epoch-0 values (mean 0, variance 1) and those of the layers after it were estimated
for the final layer l, so eval mode normalises with statistics of another network until
the momentum-0.1 running averages have caught up: ~20-40 steps, more than a short
retraining takes (the paper's runs take ~100 steps an epoch, so theirs have caught up at
every measurement).  With `recalibrate_bn`, before each measurement every BatchNorm's
running statistics are re-estimated from scratch by one pass over the group-False
examples in train mode without gradient (a cumulative average, torch's `update_bn`).
Training is unchanged by it: in train mode BatchNorm uses batch statistics, and the
running averages that the next epoch updates start from the re-estimated values.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn
from torch.optim.swa_utils import update_bn
from tqdm.auto import tqdm

from memloc.core.data.run_data import RunData
from memloc.core.models.layer_rule import model_layers
from memloc.core.train.config import TrainConfig
from memloc.core.train.evaluation import measure, prepare_batch
from memloc.core.train.sgd import make_sgd, run_sgd
from memloc.layers.rewinding import rewind_layer


def freeze_all_but(model: nn.Module, trainable: list[nn.Parameter]) -> None:
    """requires_grad only for `trainable`: the optimizer never sees the others, so neither
    their gradients nor weight decay can change them."""
    keep = {id(p) for p in trainable}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)


def recalibrate_batchnorm(model: nn.Module, images: torch.Tensor, rows: torch.Tensor, batch_size: int,
                          device: torch.device) -> None:
    """Re-estimate every BatchNorm's running statistics from one pass over `images[rows]`
    (uint8, any device) in train mode, without gradient: the running averages are reset and
    replaced by the cumulative average of the batches' statistics (momenta and mode restored)."""
    batches = (prepare_batch(images[rows[s : s + batch_size]], device) for s in range(0, len(rows), batch_size))
    update_bn(batches, model)


def retrain_layer(model: nn.Module, layer_index: int, init_state: dict[str, torch.Tensor], data: RunData,
                  cfg: TrainConfig, device: torch.device, recalibrate_bn: bool) -> pd.DataFrame:
    """Reset layer `layer_index` of `model` (the final model, on `device`; changed in place)
    to `init_state` (the epoch-0 state_dict), freeze the rest, retrain it on group False.
    recalibrate_bn: re-estimate the BatchNorm running statistics on group False before each
    measurement (module docstring).

    cfg: epochs, batch_size, peak_lr, peak_epoch (one-cycle), momentum, weight_decay, seed
    (data order), eval_batch_size and group_names (names of group False / True).
    Returns rows (epoch, subset, accuracy, loss); epoch 0 is the reset model before any
    retraining step, subsets are "train", the two group names and "test".
    """
    data = data.to(device)  # one copy of the images on the device per job (a no-op on CPU); batches index it there
    layer = model_layers(model)[layer_index]
    rewind_layer(model, layer, init_state)
    freeze_all_but(model, layer.parameters())
    seen = torch.nonzero(~data.train.group).squeeze(1)  # [m] indices of group False: the only ones trained on
    sgd = make_sgd(model, layer.parameters(), cfg, len(seen), device)
    rows = []

    def record(epoch: int) -> None:
        if recalibrate_bn:
            recalibrate_batchnorm(model, data.train.images, seen, cfg.eval_batch_size, device)
        m = measure(model, data, cfg, device)
        rows.extend({"epoch": epoch, "subset": k, "accuracy": v, "loss": m["loss"][k]}
                    for k, v in m["accuracy"].items())

    record(0)
    # train mode: every BatchNorm, frozen or not, uses batch statistics and updates its running ones
    run_sgd(sgd, data.train, seen, tqdm(range(1, cfg.epochs + 1), desc=f"retrain {layer.name}"), record, device)
    return pd.DataFrame(rows)
