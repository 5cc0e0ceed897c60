"""Every dataset by name, built in (memloc.core.data.builtin.DATASETS) or declared in the config
(key `dataset_definitions`), and what it looks like (DatasetInfo).

A declaration is {format, path, class, export_from} (memloc.core.data.declared reads its
files); `check_definitions` checks the declarations' keys, `dataset_info` gives the classes,
channels and size of any dataset without loading it where that is cheap.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from memloc.core.data.builtin import DATASETS
from memloc.core.data.declared import read_split
from memloc.core.data.declared_files import DatasetError, Split, check_imagefolder, check_npz, image_spec
from memloc.core.paths import DATASET_INFO

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


def dataset_info(name: str, source: dict | None = None) -> DatasetInfo:
    """Classes, channels and size of a built-in or declared dataset.  source: DataSource
    settings (memloc.runs.plan.data_source), whose `definitions` declare datasets and whose
    `root` holds their files (None: the built-in datasets only).

    Cheap for built-ins (a table), ImageFolder (listings and one image header) and npz
    (headers and labels); an ImageFolder still to be exported from a built-in has the
    built-in's info; a torchvision class loads its training split."""
    if name in DATASETS:  # (a declared dataset never has a built-in's name: check_definitions)
        _, k, c, size = DATASETS[name]
        return DatasetInfo(k, c, size, size, tuple(str(i) for i in range(k)))
    definitions = source["definitions"] if source is not None else {}
    if name in definitions:
        definition, root = definitions[name], source["root"]
        path = Path(definition.get("path") or root)
        stamp = path.stat().st_mtime_ns if path.exists() else None  # a rewritten folder / file is read again
        return _declared_info(name, json.dumps(definition, sort_keys=True), root, stamp)
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
        return split_info(read_split(definition, root, train=True))
    except (OSError, RuntimeError) as err:  # not fetched yet: planning falls back (a KeyError, like unknown)
        raise UnknownDataset(f"{name}: torchvision {definition.get('class')} is not under {path} yet "
                             f"(the fetch_dataset job gets it): {err}") from err


def split_info(split: Split) -> DatasetInfo:
    _, c, h, w = split.images.shape
    return DatasetInfo(len(split.classes), c, h, w, tuple(split.classes))
