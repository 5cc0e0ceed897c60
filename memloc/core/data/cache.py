"""A fetched dataset's two splits as plain arrays in one .npz, for the jobs that read it.

Why: a job that loads a built-in dataset through torchvision pays ~3 s of imports
(torchvision imports its models and ops, which pull in torch._dynamo): more than the rest of a
small job, and once per job of the DAG.  A declared ImageFolder costs more still (every PNG
decoded by every job).  The fetch_dataset job writes both splits here once, raw, exactly as
the dataset's own loader returned them; `DataSource(cache=...)` then loads them with numpy
alone, and falls back to the dataset's files where there is no cache.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from memloc.core.data.builtin import ImageData
from memloc.core.data.declared import standardize
from memloc.core.files import atomic_path


def write_split_cache(path: str | os.PathLike, splits: dict, mean: list[float], std: list[float]) -> None:
    """splits: {"train": (images, labels), "test": (images, labels)}, images uint8
    [N, C, H, W] and labels int64 [N] as the loader gave them; mean / std: the training
    split's per-channel statistics (in units of 255), with which a declared dataset is
    standardized.  Written to a temporary file, then renamed."""
    arrays = {"mean": np.asarray(mean, dtype=np.float64), "std": np.asarray(std, dtype=np.float64)}
    for split, (images, labels) in splits.items():
        arrays[f"{split}_images"] = np.ascontiguousarray(images)
        arrays[f"{split}_labels"] = np.asarray(labels, dtype=np.int64)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: numpy appends no second ".npz"
        np.savez(f, **arrays)


def read_split_cache(path: str | os.PathLike, train: bool, standardized: bool):
    """One split from the cache as memloc.core.data.builtin.ImageData: uint8 images (a built-in
    dataset), or standardized float32 ones (a declared dataset: standardized: True)."""
    split = "train" if train else "test"
    with np.load(path) as z:  # reads only the members asked for
        images, labels = z[f"{split}_images"], z[f"{split}_labels"]
        if standardized:
            return ImageData(standardize(images, z["mean"].tolist(), z["std"].tolist()), torch.from_numpy(labels))
    return ImageData(torch.from_numpy(images), torch.from_numpy(labels))
