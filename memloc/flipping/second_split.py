"""Second-split forgetting time (Maini et al. 2022), one of the detection scores of
memloc.flipping.detection: split the training set into A and B, train on A from scratch
(same model, settings and seed as the run), fine-tune on B, and record for every A example
the fine-tuning epoch from which it stays misclassified."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from memloc.core.data.run_data import RunData, TrainingSet
from memloc.core.models.build import ModelConfig
from memloc.core.train.checkpoints import model_from_checkpoint
from memloc.core.train.config import TrainConfig
from memloc.core.train.evaluation import evaluate_examples
from memloc.core.train.run import train
from memloc.core.train.sgd import make_sgd, run_sgd
from memloc.flipping.detection import settled_epoch


def split_rows(n: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted training rows of split A (`fraction` of n, seeded); the rest are split B."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=int(round(fraction * n)), replace=False))


def _subset(data: TrainingSet, rows) -> TrainingSet:
    rows = torch.as_tensor(rows)
    return TrainingSet(data.images[rows], data.labels[rows], data.group[rows], data.true_labels[rows])


def fine_tune_tracking(model, train_on: TrainingSet, tracked: TrainingSet, cfg: TrainConfig, device,
                       progress: bool = True) -> np.ndarray:
    """Fine-tune `model` on `train_on` (SGD, one-cycle, cfg) and record after every epoch
    which `tracked` examples it classifies correctly: [epochs + 1, n_tracked] bool, row 0
    before fine-tuning."""
    torch.manual_seed(cfg.seed)
    n = len(train_on.labels)
    sgd = make_sgd(model, model.parameters(), cfg, n, device)
    records = []

    def record(epoch: int) -> None:
        correct = evaluate_examples(model, tracked.images, tracked.labels, device, cfg.eval_batch_size).correct
        records.append(correct.numpy())

    record(0)
    run_sgd(sgd, train_on, torch.arange(n), tqdm(range(1, cfg.epochs + 1), desc="fine-tune", disable=not progress),
            record, device)
    return np.stack(records)


def second_split_forgetting(data: TrainingSet, model: ModelConfig, first: TrainConfig, second: dict, split: dict,
                            checkpoints: str | os.PathLike, device: torch.device) -> pd.DataFrame:
    """Train on split A (`first`), fine-tune on split B (`first` with the fields `second`
    replaced), and return every A example's second-split forgetting time: columns index,
    ssft, learned_first (correct after training on A).  split: {fraction: of the examples in
    A, seed: of the split}.  A's checkpoints go to the folder `checkpoints`, from which an
    interrupted training resumes."""
    n = len(data.labels)
    rows_a = split_rows(n, split["fraction"], split["seed"])
    rows_b = np.setdiff1d(np.arange(n), rows_a)
    split_a, split_b = _subset(data, rows_a), _subset(data, rows_b)
    ckpts = train(model, first, RunData(split_a, split_b.images, split_b.labels), checkpoints, device)
    net = model_from_checkpoint(ckpts[-1], device)
    correct = fine_tune_tracking(net, split_b, split_a, replace(first, **second), device)
    return pd.DataFrame({"index": rows_a, "ssft": settled_epoch(correct, False), "learned_first": correct[0]})
