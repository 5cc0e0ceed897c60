"""The fetch_dataset job's copy of both splits (memloc.core.data.cache): the jobs after it
load exactly what the dataset's own loader gives, without importing torchvision."""

import subprocess
import sys

import numpy as np
import torch
from schema_defaults import data_source, source_fields

from memloc.core.data.fetch import fetch_dataset


def test_a_built_in_dataset_loads_from_the_cache_as_from_torchvision(fashion_root, tmp_path):
    cache = str(tmp_path / "{dataset}" / "splits.npz")
    record = fetch_dataset(tmp_path / "fashion_mnist" / "dataset.json", "fashion_mnist", source_fields(fashion_root),
                           splits_out=cache.format(dataset="fashion_mnist"))
    assert sorted(p.name for p in (tmp_path / "fashion_mnist").iterdir()) == ["dataset.json", "splits.npz"]
    plain, cached = data_source(fashion_root), data_source(fashion_root, cache=cache)
    for train, n in ((True, record["n_train"]), (False, record["n_test"])):
        a, b = plain.load("fashion_mnist", train), cached.load("fashion_mnist", train)
        assert b.images.dtype == torch.uint8 and b.images.shape == (n, 1, 28, 28)
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    # a job's process: the cached splits come without torchvision (~3 s of imports a job)
    code = ("import sys; from memloc.core.data.source import DataSource; "
            f"d = DataSource('/nonexistent', False, True, {{}}, {cache!r}).load('fashion_mnist', train=False); "
            "print(len(d), 'torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [str(record["n_test"]), "False"]


def test_a_declared_dataset_loads_from_the_cache_standardized_as_from_its_files(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(30, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "blobs.npz", x_train=x, y_train=np.arange(30) % 3, x_test=x[:9], y_test=np.arange(9) % 3)
    definitions = {"blobs": {"format": "npz", "path": str(tmp_path / "blobs.npz")}}
    cache = str(tmp_path / "cache" / "{dataset}.npz")
    fetch_dataset(tmp_path / "blobs.json", "blobs", source_fields("data", definitions=definitions),
                  splits_out=cache.format(dataset="blobs"))
    assert not list((tmp_path / "cache").glob("*.tmp"))  # written under a temporary name, then renamed
    plain = data_source("data", definitions=definitions)
    cached = data_source("data", definitions=definitions, cache=cache)
    for train in (True, False):
        a, b = plain.load("blobs", train), cached.load("blobs", train)
        assert b.images.dtype == torch.float32 and b.images.shape == (30 if train else 9, 3, 8, 8)
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    # no cache file (a run from before the cache, or deleted): the dataset's own files
    gone = data_source("data", definitions=definitions, cache=str(tmp_path / "missing" / "{dataset}.npz"))
    assert torch.equal(gone.load("blobs", True).images, plain.load("blobs", True).images)
