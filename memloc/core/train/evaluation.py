"""Per-example evaluation: correctness, loss and margin of every example, in eval mode; and
`measure`, what training and retraining record after every epoch (per-example records,
accuracy and loss per group and on the test set)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from memloc.core.data.run_data import RunData, normalize
from memloc.core.device import autocast_for
from memloc.core.example_index import forward_with_index, index_mode, indexed_layers
from memloc.core.train.config import TrainConfig


def prepare_batch(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 [B, C, H, W] (any device) -> normalized float on `device`, channels_last.

    channels_last is the fast layout for convolutions on CUDA and, with oneDNN, on CPU
    too (~25% faster training of ResNet-9 at batch 128 on 2 cores)."""
    x = normalize(images.to(device, non_blocking=True))
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Assigned-label logit minus the largest other logit (Pleiss et al.'s AUM margin). [B]"""
    assigned = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return assigned - others.max(dim=1).values


@dataclass
class ExampleStats:
    """Per-example results of one evaluation pass, each [n] on the CPU."""

    correct: torch.Tensor  # bool
    loss: torch.Tensor  # float32
    margin: torch.Tensor  # float32
    prediction: torch.Tensor  # int64


@torch.no_grad()
def evaluate_examples(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device,
    batch_size: int = 1024,
    forward=None,
) -> ExampleStats:
    """Run `model` (in eval mode, restored afterwards) over all examples.

    `forward(model, x, batch_indices)` replaces `model(x)` for models that need more than
    the input (e.g. example-tied dropout); results are gathered on the device and copied
    to the CPU once at the end.
    """
    was_training = model.training
    model.eval()
    outs = {k: [] for k in ("correct", "loss", "margin", "prediction")}
    labels_dev = labels.to(device)
    for start in range(0, len(labels), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(labels)))
        x = prepare_batch(images[start : start + batch_size], device)
        y = labels_dev[start : start + batch_size]
        with autocast_for(device):
            logits = model(x) if forward is None else forward(model, x, idx)
        logits = logits.float()
        pred = logits.argmax(1)
        outs["correct"].append(pred == y)
        outs["loss"].append(F.cross_entropy(logits, y, reduction="none"))
        outs["margin"].append(margins(logits, y))
        outs["prediction"].append(pred)
    model.train(was_training)
    return ExampleStats(**{k: torch.cat(v).cpu() for k, v in outs.items()})


# How a model with example-tied dropout is measured (memloc.dropout.tied): suffix of the subset
# names -> (mode of the training examples, mode of the test examples).  "" is the training
# mode (a training example through its own units; test examples own none, so every unit is
# on, scaled); "/drop" has every memorization unit dropped (the paper's "after dropping").
TIED_VIEWS = {"": ("train", "all"), "/drop": ("drop", "drop")}


def _measure_view(model, data: RunData, cfg: TrainConfig, device, modes: tuple[str, str], suffix: str):
    # forward_with_index passes the examples' positions (= their index in the data table)
    train = data.train
    with index_mode(model, modes[0]):
        stats = evaluate_examples(model, train.images, train.labels, device, cfg.eval_batch_size, forward_with_index)
    with index_mode(model, modes[1]):
        test = evaluate_examples(model, data.test_images, data.test_labels, device, cfg.eval_batch_size,
                                 forward_with_index)
    a, g = cfg.group_names
    out = {}
    for key, value in (("accuracy", lambda r: r.correct.float()), ("loss", lambda r: r.loss)):
        v = value(stats)
        out[key] = {
            "train" + suffix: v.mean().item(),
            a + suffix: v[~train.group].mean().item() if (~train.group).any() else float("nan"),
            g + suffix: v[train.group].mean().item() if train.group.any() else float("nan"),
            "test" + suffix: value(test).mean().item(),
        }
    return stats, out


def measure(model, data: RunData, cfg: TrainConfig, device) -> dict:
    """Per-example records on the training set and accuracies per group and on the test set.

    A model with example-tied dropout is also measured after dropping: subsets
    "<name>/drop" and per-example "records_drop" (with the prediction, for fig07)."""
    views = TIED_VIEWS if indexed_layers(model) else {"": ("train", "train")}
    measured = {"accuracy": {}, "loss": {}}
    for suffix, modes in views.items():
        stats, out = _measure_view(model, data, cfg, device, modes, suffix)
        for key in ("accuracy", "loss"):
            measured[key].update(out[key])
        records = {"correct": stats.correct, "loss": stats.loss, "margin": stats.margin}
        if suffix:
            records["prediction"] = stats.prediction
        measured["records" + suffix.replace("/", "_")] = records
    return measured
