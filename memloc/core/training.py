"""Training with per-epoch checkpoints, per-example records and gradient accounting.

Checkpoint t (t = 0 is the initialization) holds the model, optimizer, scheduler and RNG
states plus everything measured at the end of epoch t (per-example correctness / loss /
margin, group accuracies, gradient statistics of epoch t).  A run that is interrupted
resumes from its last checkpoint and ends bitwise identical (on CPU) to one that was not,
and the run's tables are assembled from the checkpoints, so nothing is measured twice.

Models whose forward takes the batch's example indices (`takes_example_index`, e.g. with
example-tied dropout) get them from the training loop and the evaluation; a model with
example-tied dropout is measured in its training mode and after dropping (`TIED_VIEWS`).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from memloc.core.data import TrainingSet
from memloc.core.tied_dropout import dropout_mode, forward_with_index, tied_modules
from memloc.core.evaluation import autocast_for, evaluate_examples, prepare_batch
from memloc.core.gradients import STATISTICS, GradientAccountant
from memloc.core.models import ModelConfig, build_model


@dataclass
class TrainConfig:
    epochs: int = 50
    batch_size: int = 512
    peak_lr: float = 0.1
    peak_epoch: float = 10  # the one-cycle lr rises linearly from 0 to peak_lr here, then falls to 0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    eval_batch_size: int = 1024
    gradient_accounting: bool = True
    group_column: str = "is_noisy"  # the data-table column that splits the examples in two groups
    group_names: tuple[str, str] = ("clean", "noisy")  # names of group False / True

    def __post_init__(self):
        if not 0 < self.peak_epoch < self.epochs:  # OneCycleLR needs steps on both sides of the peak
            raise ValueError(f"peak_epoch {self.peak_epoch} must be in (0, epochs={self.epochs})")
        self.group_names = tuple(self.group_names)


def one_cycle(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Linear warm-up from 0 to peak_lr at peak_epoch, then linear decay to 0 (per step).

    Momentum stays fixed (cycle_momentum=False): the paper uses SGD with momentum 0.9.
    """
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=cfg.peak_lr,
        total_steps=cfg.epochs * steps_per_epoch,
        pct_start=cfg.peak_epoch / cfg.epochs,
        anneal_strategy="linear",
        cycle_momentum=False,
        div_factor=float("inf"),  # start at exactly 0
        final_div_factor=1.0,  # end at (0 / 1) = 0
    )


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=cfg.peak_lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def checkpoint_path(directory: str | os.PathLike, epoch: int) -> Path:
    return Path(directory) / f"epoch_{epoch:03d}.pt"


def list_checkpoints(directory: str | os.PathLike) -> dict[int, Path]:
    """{epoch: path} of the complete checkpoints in `directory`."""
    out = {}
    for p in Path(directory).glob("epoch_*.pt"):
        m = re.fullmatch(r"epoch_(\d+)\.pt", p.name)
        if m:
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def save_atomic(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    return torch.load(path, map_location=map_location, weights_only=False)


def model_from_checkpoint(path: str | os.PathLike, device: torch.device) -> nn.Module:
    """Rebuild the model a checkpoint belongs to and load its weights."""
    ckpt = load_checkpoint(path)
    model = build_model(ModelConfig(**ckpt["config"]["model"]))
    model.load_state_dict(ckpt["model"])
    return model.to(device, memory_format=torch.channels_last)


# How a model with example-tied dropout is measured (memloc.core.tied_dropout): suffix of the subset
# names -> (mode of the training examples, mode of the test examples).  "" is the training
# mode (a training example through its own units; test examples own none, so every unit is
# on, scaled); "/drop" has every memorization unit dropped (the paper's "after dropping").
TIED_VIEWS = {"": ("train", "all"), "/drop": ("drop", "drop")}


def _measure_view(model, data: TrainingSet, test_images, test_labels, cfg: TrainConfig, device, modes, suffix):
    # forward_with_index passes the examples' positions (= their index in the data table)
    with dropout_mode(model, modes[0]):
        stats = evaluate_examples(model, data.images, data.labels, device, cfg.eval_batch_size, forward_with_index)
    with dropout_mode(model, modes[1]):
        test = evaluate_examples(model, test_images, test_labels, device, cfg.eval_batch_size, forward_with_index)
    a, g = cfg.group_names
    out = {}
    for key, value in (("accuracy", lambda r: r.correct.float()), ("loss", lambda r: r.loss)):
        v = value(stats)
        out[key] = {
            "train" + suffix: v.mean().item(),
            a + suffix: v[~data.group].mean().item() if (~data.group).any() else float("nan"),
            g + suffix: v[data.group].mean().item() if data.group.any() else float("nan"),
            "test" + suffix: value(test).mean().item(),
        }
    return stats, out


def measure(model, data: TrainingSet, test_images, test_labels, cfg: TrainConfig, device) -> dict:
    """Per-example records on the training set and accuracies per group and on the test set.

    A model with example-tied dropout is also measured after dropping: subsets
    "<name>/drop" and per-example "records_drop" (with the prediction, for fig07)."""
    views = TIED_VIEWS if tied_modules(model) else {"": ("train", "train")}
    measured = {"accuracy": {}, "loss": {}}
    for suffix, modes in views.items():
        stats, out = _measure_view(model, data, test_images, test_labels, cfg, device, modes, suffix)
        for key in ("accuracy", "loss"):
            measured[key].update(out[key])
        records = {"correct": stats.correct, "loss": stats.loss, "margin": stats.margin}
        if suffix:
            records["prediction"] = stats.prediction
        measured["records" + suffix.replace("/", "_")] = records
    return measured


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
) -> list[Path]:
    """Train (or resume) a run; returns the checkpoint paths for epochs 0..epochs.

    `stop_after_epoch` ends the process early as an interruption would (for tests).
    """
    checkpoint_dir = Path(checkpoint_dir)
    n = len(data.labels)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    torch.manual_seed(cfg.seed)
    model = build_model(model_cfg).to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(model.parameters(), cfg)
    scheduler = one_cycle(optimizer, cfg, steps_per_epoch)
    order = torch.Generator().manual_seed(cfg.seed)  # the data order, independent of the init
    accountant = GradientAccountant(model, device) if cfg.gradient_accounting else None
    config = {"model": asdict(model_cfg), "train": asdict(cfg)}

    def save(epoch: int, measured: dict, grad_stats) -> None:
        state = {
            "epoch": epoch,
            "config": config,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
                "data_order": order.get_state(),
            },
            "measured": measured,
            "gradients": grad_stats,
            "layer_names": accountant.layer_names if accountant else None,
        }
        save_atomic(state, checkpoint_path(checkpoint_dir, epoch))

    existing = list_checkpoints(checkpoint_dir)
    if existing:
        last = max(existing)
        ckpt = load_checkpoint(existing[last])
        if ckpt["config"] != config:
            raise ValueError(f"checkpoints in {checkpoint_dir} were made with another config; remove them to retrain")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if ckpt["rng"]["cuda"] is not None and device.type == "cuda":
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        order.set_state(ckpt["rng"]["data_order"])
        start = last + 1
    else:
        save(0, measure(model, data, test_images, test_labels, cfg, device), None)
        start = 1

    images, labels, group = data.images, data.labels.to(device), data.group.to(device)
    bar = tqdm(range(start, cfg.epochs + 1), desc="train", disable=not progress, initial=start - 1, total=cfg.epochs)
    for epoch in bar:
        model.train()
        if accountant:
            accountant.reset()
        perm = torch.randperm(n, generator=order)
        for s in range(steps_per_epoch):
            idx = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
            x = prepare_batch(images[idx], device)
            idx_dev = idx.to(device)
            with autocast_for(device):
                logits = forward_with_index(model, x, idx_dev)  # idx: positions in the data table
            per_example = F.cross_entropy(logits.float(), labels[idx_dev], reduction="none")
            optimizer.zero_grad(set_to_none=True)
            if accountant:
                accountant.backward(per_example, group[idx_dev])
            else:
                per_example.mean().backward()
            optimizer.step()
            scheduler.step()
        measured = measure(model, data, test_images, test_labels, cfg, device)
        save(epoch, measured, accountant.epoch_statistics() if accountant else None)
        acc = measured["accuracy"]
        bar.set_postfix({k: f"{v:.3f}" for k, v in acc.items()})
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
    return list(list_checkpoints(checkpoint_dir).values())


def run_tables(checkpoints: list[str | os.PathLike]) -> dict[str, pd.DataFrame]:
    """Assemble a run's tables from its checkpoints (epoch 0..E).

    - metrics: epoch, subset (train / test / each group name; with example-tied dropout also
      each of them + "/drop"), accuracy, loss
    - examples: epoch, index, correct, loss, margin (every training example, every epoch; with
      example-tied dropout also correct_drop, loss_drop, margin_drop, prediction_drop)
    - gradients: epoch, layer, layer_index, group (each group name / total), norm (normalised
      by sqrt(#params)), cosine (of the two groups' gradients, repeated on the epoch-layer's rows)
    """
    metrics, examples, gradients = [], [], []
    for path in checkpoints:
        ckpt = load_checkpoint(path)
        t, m = ckpt["epoch"], ckpt["measured"]
        for subset, acc in m["accuracy"].items():
            metrics.append({"epoch": t, "subset": subset, "accuracy": acc, "loss": m["loss"][subset]})
        rec = m["records"]
        columns = {
            "epoch": np.full(len(rec["correct"]), t, dtype=np.int32),
            "index": np.arange(len(rec["correct"])),
            "correct": rec["correct"].numpy(),
            "loss": rec["loss"].numpy(),
            "margin": rec["margin"].numpy(),
        }
        for name, values in m.get("records_drop", {}).items():  # example-tied dropout runs only
            columns[f"{name}_drop"] = values.numpy()
        examples.append(pd.DataFrame(columns))
        if ckpt["gradients"] is not None:
            stats = ckpt["gradients"].numpy()  # [4, L], rows as STATISTICS
            a, g = ckpt["config"]["train"]["group_names"]
            for li, name in enumerate(ckpt["layer_names"]):
                cos = stats[STATISTICS.index("cosine"), li]
                for group, row in ((a, "norm_a"), (g, "norm_b"), ("total", "norm_total")):
                    gradients.append(
                        {"epoch": t, "layer": name, "layer_index": li, "group": group,
                         "norm": stats[STATISTICS.index(row), li], "cosine": cos}
                    )
    return {
        "metrics": pd.DataFrame(metrics),
        "examples": pd.concat(examples, ignore_index=True),
        "gradients": pd.DataFrame(gradients, columns=["epoch", "layer", "layer_index", "group", "norm", "cosine"]),
    }
