"""Every dataset by name, built in (memloc.core.data.DATASETS) or declared in the config
(key `dataset_definitions`), and what it looks like (DatasetInfo).

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
(memloc.core.data.normalize), as always.  A declared dataset is standardized once, when it is
loaded: float32 [N, C, H, W] = (x / 255 - mean_c) / std_c, with the per-channel mean and std
of its training split, and `normalize` passes float images through.  So ImageData,
TrainingSet and the test images hold either dtype; training, rewinding, retraining, flipping
and dropout only gather their rows and call memloc.core.evaluation.prepare_batch.
`display_uint8` turns either into uint8 pixels for pictures (fig07).

Bad data raises DatasetError naming the file: `check_declared` (folder listings, headers and
labels: at DAG parse time, from memloc.config.check_config) and `fetch_dataset` (every file,
in the fetch_dataset job, before any job reads the dataset).
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from memloc.core.data import DATASETS, DataSource, ImageData, dataset_available, load_dataset
from memloc.core.dataset_cache import write_split_cache
from memloc.core.dataset_files import (
    DatasetError,
    Split,
    check_imagefolder,
    check_npz,
    image_spec,
    normalization_stats,
    read_imagefolder,
    read_npz,
    write_imagefolder,
)
from memloc.core.files import write_text_atomic
from memloc.core.paths import DATASET_INFO
from memloc.core.torchvision_datasets import read_torchvision

FORMATS = ("imagefolder", "npz", "torchvision")
KEYS = {"imagefolder": ("format", "path", "export_from"), "npz": ("format", "path"),
        "torchvision": ("format", "class", "path")}
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # names appear in paths and wildcards


class UnknownDataset(DatasetError, KeyError):
    """A dataset name neither built in nor declared (a KeyError too, as DATASETS[name] raised)."""

    __str__ = DatasetError.__str__


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and the label noise need to know of a dataset."""

    num_classes: int
    channels: int
    height: int
    width: int
    classes: tuple[str, ...] = ()  # class names by label

    @property
    def image_size(self) -> int:
        """The side of the (square) images; of others, the longer side."""
        return max(self.height, self.width)


def dataset_names(definitions: dict) -> list[str]:
    """The built-in datasets, then the declared ones."""
    return [*DATASETS, *definitions]


def check_definitions(definitions: dict) -> None:
    """The declarations' keys and values (no file is read); a DatasetError names the key."""
    for name, d in definitions.items():
        key = f"dataset_definitions.{name}"
        if name in DATASETS:
            raise DatasetError(f"{key}: {name!r} is a built-in dataset; give the declared one another name")
        if not NAME.fullmatch(name):
            raise DatasetError(f"{key}: a dataset name is a letter, then letters, digits and underscores")
        fmt = d.get("format")
        if fmt not in FORMATS:
            raise DatasetError(f"{key}.format: {fmt!r} is not one of {', '.join(FORMATS)}")
        extra = sorted(set(d) - set(KEYS[fmt]))
        if extra:
            raise DatasetError(f"{key}: {extra} not used by format {fmt} (its keys: {', '.join(KEYS[fmt])})")
        if fmt != "torchvision" and not d.get("path"):
            raise DatasetError(f"{key}.path: missing (the {fmt} dataset's "
                               f"{'folder' if fmt == 'imagefolder' else 'file'}, relative to the working directory)")
        if fmt == "torchvision":
            import torchvision.datasets as tvd

            if not isinstance(getattr(tvd, str(d.get("class")), None), type):
                raise DatasetError(f"{key}.class: {d.get('class')!r} is not a torchvision.datasets class")
        if d.get("export_from") is not None and d["export_from"] not in DATASETS:
            raise DatasetError(f"{key}.export_from: {d['export_from']!r} is not a built-in dataset "
                               f"({', '.join(DATASETS)})")


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


def dataset_info(name: str, source: dict | None = None) -> DatasetInfo:
    """Classes, channels and size of a built-in or declared dataset.  source: DataSource
    settings (memloc.runs.plan.data_source), whose `definitions` declare datasets.

    Cheap for built-ins (a table), ImageFolder (listings and one image header) and npz
    (headers and labels); an ImageFolder still to be exported from a built-in has the
    built-in's info; a torchvision class loads its training split."""
    source = source or {}
    definitions = source.get("definitions") or {}
    if name in definitions:
        definition, root = definitions[name], source.get("root", "data")
        path = Path(definition.get("path") or root)
        stamp = path.stat().st_mtime_ns if path.exists() else None  # a rewritten folder / file is read again
        return _declared_info(name, json.dumps(definition, sort_keys=True), root, stamp)
    if name in DATASETS:
        _, k, c, size = DATASETS[name]
        return DatasetInfo(k, c, size, size, tuple(str(i) for i in range(k)))
    raise UnknownDataset(f"unknown dataset {name!r}: neither built in ({', '.join(DATASETS)}) nor declared in "
                       f"dataset_definitions ({', '.join(definitions) or 'none'})")


@functools.lru_cache(maxsize=64)  # planning asks once per run; the folder / file stamp keys it
def _declared_info(name: str, definition_json: str, root: str, stamp: int | None) -> DatasetInfo:
    definition = json.loads(definition_json)
    fmt, path = definition["format"], Path(definition.get("path") or root)
    if fmt == "imagefolder":
        if definition.get("export_from") and not path.exists():
            return dataset_info(definition["export_from"])
        classes, sample = check_imagefolder(path)
        spec = image_spec(sample)
        return DatasetInfo(len(classes), spec.channels, spec.height, spec.width, tuple(classes))
    if fmt == "npz":
        k, c, h, w = check_npz(path)
        return DatasetInfo(k, c, h, w, tuple(str(i) for i in range(k)))
    fetched = Path(DATASET_INFO.format(dataset=name))  # the fetch_dataset job's record, once it ran
    if fetched.exists():
        d = json.loads(fetched.read_text())
        return DatasetInfo(d["num_classes"], d["channels"], d["height"], d["width"], tuple(d["classes"]))
    try:  # a torchvision class: its training split, if it is on disk already
        return _split_info(read_split(definition, root, train=True))
    except (OSError, RuntimeError) as err:  # not fetched yet: planning falls back (a KeyError, like unknown)
        raise UnknownDataset(f"{name}: torchvision {definition.get('class')} is not under {path} yet "
                             f"(the fetch_dataset job gets it): {err}") from err


def _split_info(split: Split) -> DatasetInfo:
    _, c, h, w = split.images.shape
    return DatasetInfo(len(split.classes), c, h, w, tuple(split.classes))


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


def export_imagefolder(builtin: str, folder: Path, source: DataSource) -> None:
    """Write a built-in dataset as an ImageFolder tree of PNGs (dataset_files.write_imagefolder)."""
    import torchvision.datasets as tvd

    k = DATASETS[builtin][1]
    names = getattr(getattr(tvd, DATASETS[builtin][0]), "classes", None)  # a class attribute of (Fashion-)MNIST
    classes = list(names) if isinstance(names, list) and len(names) == k else [str(c) for c in range(k)]
    splits = {}
    for split in ("train", "test"):
        data = load_dataset(builtin, source.root, split == "train", source.download, source.verify_checksums)
        splits[split] = Split(data.images.numpy(), data.labels.numpy(), classes)
    write_imagefolder(folder, splits)


def fetch_dataset(out: str | os.PathLike, name: str, source: dict, splits_out: str | os.PathLike | None = None) -> dict:
    """The fetch_dataset job: get one dataset ready before any job reads it, and describe it.

    Built-in and torchvision datasets: both splits through torchvision (downloaded only here,
    with source["download"]; checksums checked as torchvision checks them, unless
    verify_checksums is false).  Declared ImageFolder (first written from `export_from` when
    missing) and npz datasets: every file read and checked.  Writes (atomically) and returns
    the JSON: classes, channels, size, split sizes, and the training split's per-channel
    mean / std with the normalization the jobs apply; with splits_out, both splits as arrays
    for the later jobs (memloc.core.dataset_cache)."""
    src = DataSource(**source)
    definition = src.definitions.get(name)
    if definition is None:
        info = dataset_info(name)
        splits = [load_dataset(name, src.root, train, src.download, src.verify_checksums) for train in (True, False)]
        splits = [Split(d.images.numpy(), d.labels.numpy(), list(info.classes)) for d in splits]
        if _split_info(splits[0]) != info:
            raise DatasetError(f"{name} under {src.root}: {_split_info(splits[0])}, expected {info}")
        normalization = "x / 127.5 - 1 (uint8 images)"
    else:
        path = Path(definition.get("path") or src.root)
        if definition["format"] == "imagefolder" and definition.get("export_from") and not path.exists():
            export_imagefolder(definition["export_from"], path, src)
        splits = [read_split(definition, src.root, train, src.download, src.verify_checksums)
                  for train in (True, False)]
        info = _split_info(splits[0])
        normalization = "(x / 255 - mean) / std per channel"
    mean, std = normalization_stats(splits[0].images)
    if splits_out is not None:
        write_split_cache(splits_out, {k: (s.images, s.labels) for k, s in zip(("train", "test"), splits)}, mean, std)
    record = {"dataset": name, "format": definition["format"] if definition else "builtin",
              "classes": list(info.classes), "num_classes": info.num_classes, "channels": info.channels,
              "height": info.height, "width": info.width, "n_train": len(splits[0].labels),
              "n_test": len(splits[1].labels), "mean": mean, "std": std, "normalization": normalization}
    write_text_atomic(json.dumps(record, indent=1) + "\n", out)
    return record
