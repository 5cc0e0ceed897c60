"""Where a job's datasets come from (`DataSource`): the fetch_dataset job's cache of both
splits (memloc.core.data.cache), a dataset declared in the config (memloc.core.data.declared)
or a built-in one (memloc.core.data.builtin)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from memloc.core.data.builtin import ImageData, dataset_available, load_dataset
from memloc.core.data.cache import read_split_cache
from memloc.core.data.declared import declared_available, load_declared


@dataclass
class DataSource:
    """Where the datasets come from: torchvision root, download permission, MD5 checks, the
    datasets declared in the config (key dataset_definitions; memloc.core.data.declared), and the
    fetch_dataset job's copy of both splits (cache: a path with {dataset}; used where it exists,
    memloc.core.data.cache)."""

    root: str
    download: bool
    verify_checksums: bool
    definitions: dict
    cache: str | None  # None: no cache (the fetch job itself)

    def load(self, name: str, train: bool) -> ImageData:
        if self.cache and os.path.exists(cached := self.cache.format(dataset=name)):
            return read_split_cache(cached, train, standardized=name in self.definitions)
        if name in self.definitions:
            return load_declared(self.definitions[name], self.root, train, self.download, self.verify_checksums)
        return load_dataset(name, self.root, train, self.download, self.verify_checksums)

    def available(self, name: str) -> bool:
        if name in self.definitions:
            return declared_available(self.definitions[name], self.root, self.download)
        return dataset_available(name, self.root, self.download)
