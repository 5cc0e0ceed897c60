"""C-scores (Jiang et al., 2021): published per-example scores, or a hold-out estimate.

An example is *atypical* when its C-score is below a threshold (the paper: 0.5).  The
data table of the typical/atypical experiments (Sec. 7) is the noise-free training set
plus the columns cscore, times_held_out and is_atypical; every later stage reads the
groups from is_atypical as it reads clean/noisy from is_noisy.

Published files, checked against the dataset before use:
- CIFAR-10: an .npz with `labels` and `scores`, 50,000 each, in the dataset's original
  order; `labels` must equal the torchvision labels.
- MNIST: an .npy of 60,000 scores in the TensorFlow-datasets order, which is not the
  original MNIST order.  The order cannot be inferred from the scores, so an `order`
  file is required: an .npy of 60,000 original-MNIST indices, one per TFDS position
  (a permutation).  Without it the loader refuses rather than misalign silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from memloc.core.data import DataSource, training_set, write_parquet
from memloc.core.evaluation import evaluate_examples, resolve_device
from memloc.core.models import ModelConfig
from memloc.core.training import TrainConfig, model_from_checkpoint, train


class CScoreFileError(ValueError):
    """A published C-score file that does not fit the dataset (the message names the file)."""


def load_published_cscores(path: str | os.PathLike, labels: np.ndarray, order: str | os.PathLike | None = None) -> np.ndarray:
    """Scores [N] aligned with the torchvision training split whose labels are `labels` [N].

    .npz: arrays `scores` and `labels` in the split's order (CIFAR-10's release); the labels
    must match.  .npy: bare scores, whose order nothing in the file establishes, so `order`
    (an .npy permutation: the split index of each position of the file) is required.
    """
    path = Path(path)
    if not path.is_file():
        raise CScoreFileError(f"C-score file {path} does not exist")
    n = len(labels)
    if path.suffix == ".npz":
        with np.load(path) as z:
            if "scores" not in z or "labels" not in z:
                raise CScoreFileError(f"{path}: expected arrays 'scores' and 'labels', found {sorted(z.files)}")
            scores, file_labels = np.asarray(z["scores"], dtype=np.float64), np.asarray(z["labels"])
        if len(scores) != n or len(file_labels) != n:
            raise CScoreFileError(f"{path}: {len(scores)} scores / {len(file_labels)} labels for a split of {n} examples")
        mismatch = np.flatnonzero(file_labels != labels)
        if len(mismatch):
            raise CScoreFileError(
                f"{path}: labels differ from the dataset's at {len(mismatch)} positions (first: {mismatch[:5].tolist()}); "
                f"the file is permuted or belongs to another dataset"
            )
        return scores
    scores = np.asarray(np.load(path), dtype=np.float64)
    if scores.ndim != 1 or len(scores) != n:
        raise CScoreFileError(f"{path}: {scores.shape} scores for a split of {n} examples")
    if order is None:
        raise CScoreFileError(
            f"{path}: a bare score array (e.g. MNIST's, in TFDS order) needs an `order` file mapping each position "
            f"to the original index; none given, so the alignment cannot be established"
        )
    perm = np.asarray(np.load(order))
    if perm.shape != (n,) or not np.array_equal(np.sort(perm), np.arange(n)):
        raise CScoreFileError(f"{order}: not a permutation of 0..{n - 1} (order file of {path})")
    aligned = np.empty(n)
    aligned[perm] = scores
    return aligned


@dataclass
class HoldoutConfig:
    models: int = 8  # K subset models
    fraction: float = 0.5  # fraction of the training set each model sees
    seed: int = 0


def holdout_subset(n: int, model_index: int, cfg: HoldoutConfig) -> np.ndarray:
    """[n] bool: the examples subset model `model_index` trains on (seeded per model)."""
    rng = np.random.default_rng([cfg.seed, model_index])
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=int(round(cfg.fraction * n)), replace=False)] = True
    return mask


def holdout_estimate(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Combine subset models' results into per-example scores.

    parts: one frame per subset model with columns index, in_subset, correct.  An example's
    score is its mean correctness over the models that did not train on it; an example
    held out of no model is unscored (NaN), never 0.
    """
    joined = pd.concat(parts, ignore_index=True)
    held = joined[~joined["in_subset"]]
    scores = held.groupby("index")["correct"].agg(["mean", "size"])
    out = pd.DataFrame({"index": np.sort(joined["index"].unique())})
    out["cscore"] = out["index"].map(scores["mean"])
    out["times_held_out"] = out["index"].map(scores["size"]).fillna(0).astype(int)
    return out


def train_holdout_model(
    data_table: str | os.PathLike,
    out: str | os.PathLike,
    dataset: str,
    source: dict,
    model: dict,
    train_settings: dict,
    model_index: int,
    holdout: dict,
    device: str = "auto",
    threads: int = 1,
) -> pd.DataFrame:
    """Train subset model `model_index` and write its correctness on every example.

    Checkpoints go to `<out without suffix>/checkpoints`, so the job resumes like a run.
    """
    torch.set_num_threads(threads)
    cfg = HoldoutConfig(**holdout)
    table = pd.read_parquet(data_table)
    data = DataSource(**source)
    split = data.load(dataset, train=True)
    full = training_set(table, split)
    mask = holdout_subset(len(table), model_index, cfg)
    subset = training_set(table[mask].reset_index(drop=True), split)
    model_cfg = ModelConfig.for_dataset(dataset, **model)
    tcfg = TrainConfig(**{**train_settings, "seed": cfg.seed * 1000 + model_index, "gradient_accounting": False})
    dev = resolve_device(device)
    ckpt_dir = Path(out).with_suffix("") / "checkpoints"
    test = data.load(dataset, train=False)
    paths = train(model_cfg, tcfg, subset, test.images[:1], test.labels[:1], ckpt_dir, dev, progress=True)
    stats = evaluate_examples(model_from_checkpoint(paths[-1], dev), full.images, full.labels, dev, tcfg.eval_batch_size)
    result = pd.DataFrame({"index": table["index"], "in_subset": mask, "correct": stats.correct.numpy().astype(float)})
    write_parquet(result, out)
    return result


def atypical_table(base: pd.DataFrame, scores: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """The noise-free data table plus cscore, times_held_out and is_atypical (score < threshold;
    unscored examples are not atypical)."""
    out = base.merge(scores, on="index", how="left", validate="one_to_one")
    out["is_atypical"] = (out["cscore"] < threshold).fillna(False).astype(bool)
    return out


def write_atypical_table(
    base_table: str | os.PathLike,
    out: str | os.PathLike,
    threshold: float,
    holdout_parts: list[str] | None = None,
    published: dict | None = None,
) -> pd.DataFrame:
    """Job: the typical/atypical data table from published scores or hold-out parts.

    published: {"file": path, "order": path or None, "dataset": name, "source": DataSource
    settings}; the scores are checked against the dataset's labels and picked by each
    example's source_index.
    """
    base = pd.read_parquet(base_table)
    if published:
        labels = DataSource(**published["source"]).load(published["dataset"], train=True).labels.numpy()
        scores = load_published_cscores(published["file"], labels, published.get("order"))
        per_example = pd.DataFrame(
            {"index": base["index"], "cscore": scores[base["source_index"].to_numpy()], "times_held_out": -1}
        )
    else:
        per_example = holdout_estimate([pd.read_parquet(p) for p in holdout_parts])
    table = atypical_table(base, per_example, threshold)
    write_parquet(table, out)
    return table
