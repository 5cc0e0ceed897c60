"""The corrupted training set of a dataset and noise rate: a seeded, class-balanced subset
and label noise, as a table with one row per example (`make_corrupted_table`) that every
later stage reads."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
import torch

from memloc.core.data.catalog import dataset_info
from memloc.core.data.source import DataSource


def balanced_subset(labels: torch.Tensor, size: int | None, seed: int) -> np.ndarray:
    """Indices of a seeded, class-balanced subset of `size` examples (all when None).

    Each class gets size // K examples, the remainder going to the first classes; the
    indices are returned sorted so the subset keeps the dataset's order.
    """
    n = len(labels)
    if size is not None and size > n:  # memloc.config_settings stops such a train_subset when the DAG is parsed
        raise ValueError(f"train_subset ({size}) is larger than the training split ({n} examples)")
    if size is None or size == n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    labels = labels.numpy()
    classes = np.unique(labels)
    per_class = np.full(len(classes), size // len(classes))
    per_class[: size % len(classes)] += 1
    chosen = []
    for c, k in zip(classes, per_class):
        members = np.flatnonzero(labels == c)
        if k > len(members):
            raise ValueError(f"class {c} has {len(members)} examples, {k} requested")
        chosen.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(chosen))


def noisy_count(n: int, fraction: float) -> int:
    """How many of n examples `corrupt_labels` mislabels (also the config check's number)."""
    return int(round(fraction * n))


def corrupt_labels(labels: np.ndarray, fraction: float, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Label noise: exactly round(fraction * n) examples get a wrong label.

    The wrong label is drawn uniformly from the K-1 other classes (true + offset in
    1..K-1, modulo K), so it never equals the true label and every wrong class is
    reachable.  Returns (training labels, is_noisy mask).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"noise fraction must be in [0, 1), got {fraction}")
    n = len(labels)
    rng = np.random.default_rng(seed)
    noisy = np.zeros(n, dtype=bool)
    noisy[rng.choice(n, size=noisy_count(n, fraction), replace=False)] = True
    offsets = rng.integers(1, num_classes, size=n)
    new_labels = np.where(noisy, (labels + offsets) % num_classes, labels)
    return new_labels.astype(np.int64), noisy


def make_corrupted_table(name: str, source: DataSource, noise: float, subset: int | None, seed: int) -> pd.DataFrame:
    """The training set of one (dataset, noise rate): one row per example.

    Columns: index (row position, 0..n-1; what every later stage calls the example),
    source_index (position in the torchvision training split), true_label, label (the
    training label), is_noisy.
    """
    train = source.load(name, train=True)
    chosen = balanced_subset(train.labels, subset, seed)
    true = train.labels.numpy()[chosen]
    labels, noisy = corrupt_labels(true, noise, dataset_info(name, asdict(source)).num_classes, seed)
    return pd.DataFrame(
        {"index": np.arange(len(chosen)), "source_index": chosen, "true_label": true, "label": labels,
         "is_noisy": noisy}
    )
