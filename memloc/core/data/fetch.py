"""The fetch_dataset job: one dataset, built in or declared, downloaded (or found, or exported
as an ImageFolder) and checked before any job reads it, described in a JSON record and cached
as arrays (memloc.core.data.cache) for the later jobs."""

from __future__ import annotations

import json
import os
from pathlib import Path

from memloc.core.data.builtin import DATASETS, load_dataset
from memloc.core.data.cache import write_split_cache
from memloc.core.data.catalog import dataset_info, split_info
from memloc.core.data.declared import read_split
from memloc.core.data.declared_files import DatasetError, Split, normalization_stats, write_imagefolder
from memloc.core.data.source import DataSource
from memloc.core.files import write_text_atomic


def export_imagefolder(builtin: str, folder: Path, source: DataSource) -> None:
    """Write a built-in dataset as an ImageFolder tree of PNGs (memloc.core.data.declared_files.write_imagefolder)."""
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
    for the later jobs (memloc.core.data.cache)."""
    src = DataSource(**source)
    definition = src.definitions.get(name)
    if definition is None:
        info = dataset_info(name)
        splits = [load_dataset(name, src.root, train, src.download, src.verify_checksums) for train in (True, False)]
        splits = [Split(d.images.numpy(), d.labels.numpy(), list(info.classes)) for d in splits]
        if split_info(splits[0]) != info:
            raise DatasetError(f"{name} under {src.root}: {split_info(splits[0])}, expected {info}")
        normalization = "x / 127.5 - 1 (uint8 images)"
    else:
        path = Path(definition.get("path") or src.root)
        if definition["format"] == "imagefolder" and definition.get("export_from") and not path.exists():
            export_imagefolder(definition["export_from"], path, src)
        splits = [read_split(definition, src.root, train, src.download, src.verify_checksums)
                  for train in (True, False)]
        info = split_info(splits[0])
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
