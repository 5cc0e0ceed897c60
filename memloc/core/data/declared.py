"""A dataset declared in the config (key `dataset_definitions`): its checks and its splits.

A declaration is {format, path, class, export_from}:
- imagefolder: `path`/train/<class>/<image> and `path`/test/<class>/<image>.  The classes are
  the sorted folder names (torchvision.datasets.ImageFolder's order); the examples are ordered
  by class, then file name.  Grayscale images (PIL modes 1, L, LA) have one channel, colour
  ones (RGB, RGBA, P, ...) three.  With `export_from: <built-in>`, the fetch_dataset job writes
  that dataset there as PNG files (class folders "<label>_<name>") when `path` is missing.
- npz: `path` is an .npz file of x_train, y_train, x_test, y_test; images uint8 N x H x W or
  N x H x W x C.
- torchvision: `class` names a torchvision.datasets class with a train= (or split=) argument;
  its files are under `path` (default: data_root).
Paths are relative to the working directory.

Normalization.  Built-in datasets stay uint8 [N, C, H, W], mapped to [-1, 1] per batch
(memloc.core.data.run_data.normalize), as always.  A declared dataset is standardized once, when it is
loaded: float32 [N, C, H, W] = (x / 255 - mean_c) / std_c, with the per-channel mean and std
of its training split, and `normalize` passes float images through.  So ImageData,
TrainingSet and the test images hold either dtype; training, rewinding, retraining, flipping
and dropout only gather their rows and call memloc.core.train.evaluation.prepare_batch.
`display_uint8` turns either into uint8 pixels for pictures (fig07).

Bad data raises DatasetError naming the file: `check_declared` (folder listings, headers and
labels: at DAG parse time, from memloc.config_checks.check_config) and `fetch_dataset` (every file,
in the fetch_dataset job, before any job reads the dataset).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch

from memloc.core.data.builtin import ImageData, dataset_available
from memloc.core.data.declared_files import (
    DatasetError,
    Split,
    check_imagefolder,
    check_npz,
    image_spec,
    normalization_stats,
    read_imagefolder,
    read_npz,
)
from memloc.core.data.torchvision_classes import read_torchvision


def check_declared(definition: dict, root: str, download: bool) -> None:
    """Cheap checks of a declared dataset's files (folder listings, headers, labels): what
    can fail at DAG parse time; fetch_dataset checks every file.  torchvision datasets are
    checked by the fetch job only (their files depend on the class)."""
    fmt, path = definition["format"], Path(definition.get("path") or root)
    if fmt == "imagefolder":
        if definition.get("export_from") and not path.exists():
            if not dataset_available(definition["export_from"], root, download):
                raise DatasetError(f"{path} is missing and export_from {definition['export_from']!r} is not under "
                                   f"data_root ({root!r}) and download is false")
            return
        image_spec(check_imagefolder(path)[1])
    elif fmt == "npz":
        check_npz(path)


def declared_available(definition: dict, root: str, download: bool) -> bool:
    """Whether check_declared finds nothing wrong."""
    try:
        check_declared(definition, root, download)
    except DatasetError:
        return False
    return True


def read_split(definition: dict, root: str, train: bool, download: bool = False,
               verify_checksums: bool = True) -> Split:
    """A declared dataset's split as read from its files: uint8 images [N, C, H, W], labels,
    class names.  Cached per process (read-only arrays): a job reads each split once."""
    path = Path(definition.get("path") or root)
    stamp = path.stat().st_mtime_ns if path.exists() else None  # a rewritten file is read again
    key = (json.dumps(definition, sort_keys=True), str(root), train, download, verify_checksums, stamp)
    return _read_cached(key)


@functools.lru_cache(maxsize=2)  # a job's train and test split
def _read_cached(key: tuple) -> Split:
    definition, root, train, download, verify_checksums, _ = key
    definition = json.loads(definition)
    fmt, path = definition["format"], Path(definition.get("path") or root)
    if fmt == "imagefolder":
        split = read_imagefolder(path, train)
    elif fmt == "npz":
        split = read_npz(path, train)
    else:
        split = read_torchvision(definition["class"], path, train, download, verify_checksums)
    split.images.setflags(write=False)
    split.labels.setflags(write=False)
    return split


def standardize(images: np.ndarray, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float32 (x / 255 - mean_c) / std_c (a constant channel: std 1),
    through a lookup table per channel."""
    out = np.empty(images.shape, dtype=np.float32)
    for c, (m, s) in enumerate(zip(mean, std)):
        lut = ((np.arange(256) / 255 - m) / (s or 1.0)).astype(np.float32)
        out[:, c] = lut[images[:, c]]
    return torch.from_numpy(out)


def load_declared(definition: dict, root: str, train: bool, download: bool = False,
                  verify_checksums: bool = True) -> ImageData:
    """A declared dataset's split, standardized with its training split's statistics."""
    split = read_split(definition, root, train, download, verify_checksums)
    reference = split if train else read_split(definition, root, True, download, verify_checksums)
    mean, std = normalization_stats(reference.images)
    return ImageData(standardize(split.images, mean, std), torch.from_numpy(split.labels.copy()))


def display_uint8(images: torch.Tensor) -> torch.Tensor:
    """Pixels to show: uint8 images as they are; float (standardized) images [N, ...]
    min-max scaled to 0..255, each image on its own."""
    if images.dtype == torch.uint8:
        return images
    flat = images.float().flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(1e-12) * 255).round().to(torch.uint8).view(images.shape)
