"""Datasets as in-memory tensors, class-balanced subsets and label noise.

Every dataset is loaded once and kept as an image tensor of shape [N, C, H, W] plus an
int64 label tensor [N]: the built-in ones through torchvision, as uint8; the ones declared in
the config (memloc.core.datasets) as standardized float32.  Batches are sliced from these on
the device, so the training hot path never touches PIL.  The corrupted training set is a
table with one row per example (see `corrupt_labels`) that every later stage reads.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

# name -> (torchvision class name, number of classes, input channels, image size)
DATASETS = {
    "cifar10": ("CIFAR10", 10, 3, 32),
    "mnist": ("MNIST", 10, 1, 28),
    "fashion_mnist": ("FashionMNIST", 10, 1, 28),
    "svhn": ("SVHN", 10, 3, 32),
}

SPLIT_SIZES = {"cifar10": (50_000, 10_000), "mnist": (60_000, 10_000), "fashion_mnist": (60_000, 10_000),
               "svhn": (73_257, 26_032)}  # name -> (training, test) examples of the whole splits

# Where Debian's dataset packages put the raw idx files (apt-get install dataset-fashion-mnist).
DEBIAN_SOURCES = {"fashion_mnist": "/usr/share/datasets/fashion-mnist"}


@dataclass
class ImageData:
    """A dataset held in memory: images [N, C, H, W] (uint8, or standardized float32 for a
    declared dataset), labels [N] int64."""

    images: torch.Tensor
    labels: torch.Tensor

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1

    def __len__(self) -> int:
        return len(self.labels)


def _stage_debian_idx(name: str, root: Path, source: Path) -> None:
    """Decompress Debian's gzipped idx files into torchvision's `<root>/<Class>/raw/` layout,
    under a private temporary name renamed into place: concurrent jobs never see a half-written
    copy (whoever renames first wins, the others discard theirs)."""
    raw = root / DATASETS[name][0] / "raw"
    if raw.exists():
        return
    raw.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="raw.tmp-", dir=raw.parent))
    for gz in sorted(source.glob("*-ubyte.gz")):
        with gzip.open(gz, "rb") as src, open(tmp / gz.name[: -len(".gz")], "wb") as dst:
            shutil.copyfileobj(src, dst)
    try:
        os.rename(tmp, raw)
    except OSError:  # another job staged it first
        shutil.rmtree(tmp, ignore_errors=True)


def dataset_available(name: str, root: str | os.PathLike, download: bool = False) -> bool:
    """Whether `load_dataset` can succeed without network access (or with download)."""
    if download:
        return True
    root = Path(root)
    cls = DATASETS[name][0]
    if (root / cls).exists() or (name == "cifar10" and (root / "cifar-10-batches-py").exists()):
        return True
    if name == "svhn" and (root / "train_32x32.mat").exists():
        return True
    source = DEBIAN_SOURCES.get(name)
    return source is not None and any(Path(source).glob("*-ubyte.gz"))


def _existence_only(cls: type) -> type:
    """A torchvision CIFAR-10 / SVHN class that checks that its files exist, not their MD5
    (re-packed local copies, the tests' tiny files); torchvision's own code still parses them."""

    def files(self) -> list[str]:
        if hasattr(self, "train_list"):  # CIFAR
            names = [f for f, _ in self.train_list + self.test_list] + [self.meta["filename"]]
            return [os.path.join(self.root, self.base_folder, f) for f in names]
        return [os.path.join(self.root, self.filename)]  # SVHN

    def check(self) -> bool:
        return all(os.path.isfile(f) for f in files(self))

    def load_meta(self) -> None:
        import pickle

        with open(os.path.join(self.root, self.base_folder, self.meta["filename"]), "rb") as f:
            self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    members = {"_check_integrity": check}
    if hasattr(cls, "_load_meta"):
        members["_load_meta"] = load_meta
    return type(cls.__name__, (cls,), members)


def load_dataset(
    name: str, root: str | os.PathLike, train: bool, download: bool = False, verify_checksums: bool = True
) -> ImageData:
    """Load a torchvision dataset split into memory.

    `root` is torchvision's root folder.  With `download=False` the files must already be
    there, except Fashion-MNIST, which is also found in Debian's package folder.
    `verify_checksums=False` accepts CIFAR-10 / SVHN files whose MD5 differs from the
    official archive's (torchvision checks it otherwise).
    """
    import torchvision.datasets as tvd

    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: not built in ({', '.join(DATASETS)}); a dataset declared in "
                         f"the config (dataset_definitions) is loaded through DataSource(definitions=...)")
    root = Path(root)
    cls_name = DATASETS[name][0]
    source = DEBIAN_SOURCES.get(name)
    if not download and source and not (root / cls_name / "raw").exists() and Path(source).exists():
        _stage_debian_idx(name, root, Path(source))
    cls = getattr(tvd, cls_name)
    if not verify_checksums and name in ("cifar10", "svhn"):
        cls = _existence_only(cls)
    try:
        if name == "svhn":
            ds = cls(str(root), split="train" if train else "test", download=download)
            images = torch.from_numpy(ds.data)  # already [N, 3, 32, 32]
            labels = torch.as_tensor(ds.labels, dtype=torch.int64)
        else:
            ds = cls(str(root), train=train, download=download)
            data = torch.as_tensor(ds.data)
            # CIFAR-10 stores [N, H, W, C]; MNIST-likes store [N, H, W].
            images = data.permute(0, 3, 1, 2) if data.ndim == 4 else data.unsqueeze(1)
            labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
        raise FileNotFoundError(
            f"dataset {name!r} not found under {root} ({err}); set download: true on a machine "
            f"with internet, or point data_root at a local copy"
        ) from err
    return ImageData(images.contiguous(), labels)


@dataclass
class DataSource:
    """Where the datasets come from: torchvision root, download permission, MD5 checks, the
    datasets declared in the config (key dataset_definitions; memloc.core.datasets), and the
    fetch_dataset job's copy of both splits (cache: a path with {dataset}; used where it exists,
    memloc.core.dataset_cache)."""

    root: str = "data"
    download: bool = False
    verify_checksums: bool = True
    definitions: dict = field(default_factory=dict)
    cache: str | None = None

    def load(self, name: str, train: bool) -> ImageData:
        if self.cache and os.path.exists(cached := self.cache.format(dataset=name)):
            from memloc.core.dataset_cache import read_split_cache

            return read_split_cache(cached, train, standardized=name in self.definitions)
        if name in self.definitions:
            from memloc.core.datasets import load_declared

            return load_declared(self.definitions[name], self.root, train, self.download, self.verify_checksums)
        return load_dataset(name, self.root, train, self.download, self.verify_checksums)

    def available(self, name: str) -> bool:
        if name in self.definitions:
            from memloc.core.datasets import declared_available

            return declared_available(self.definitions[name], self.root, self.download)
        return dataset_available(name, self.root, self.download)


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
    from memloc.core.datasets import dataset_info

    labels, noisy = corrupt_labels(true, noise, dataset_info(name, asdict(source)).num_classes, seed)
    return pd.DataFrame(
        {"index": np.arange(len(chosen)), "source_index": chosen, "true_label": true, "label": labels,
         "is_noisy": noisy}
    )


@dataclass
class TrainingSet:
    """The tensors a training run needs: images, training labels, per-example group."""

    images: torch.Tensor  # [n, C, H, W] uint8 (or float32, standardized: a declared dataset)
    labels: torch.Tensor  # [n] int64, the (possibly corrupted) training labels
    group: torch.Tensor  # [n] bool, e.g. is_noisy: which examples gradient accounting splits off
    true_labels: torch.Tensor  # [n] int64


def training_set(table: pd.DataFrame, data: ImageData, group_column: str = "is_noisy") -> TrainingSet:
    """Gather the table's examples from the in-memory split, in the table's row order."""
    if group_column not in table.columns:
        raise KeyError(f"group column {group_column!r} not in the data table ({list(table.columns)})")
    src = torch.tensor(table["source_index"].to_numpy())
    true = torch.tensor(table["true_label"].to_numpy())
    if not torch.equal(data.labels[src], true):
        raise ValueError("data table does not match the dataset: true labels differ at source_index")
    return TrainingSet(
        images=data.images[src],
        labels=torch.tensor(table["label"].to_numpy(), dtype=torch.int64),
        group=torch.tensor(table[group_column].to_numpy(), dtype=torch.bool),
        true_labels=true,
    )


def load_run_data(
    data_table: str | os.PathLike, dataset: str, source: dict, test_subset: int | None, group_column: str = "is_noisy"
) -> tuple[TrainingSet, torch.Tensor, torch.Tensor]:
    """A run's training set (the data table's examples, in its order) and its test images
    and labels (the first `test_subset` of the test split; all when None).

    source: DataSource settings (root, download, verify_checksums, definitions)."""
    data = DataSource(**source)
    trainset = training_set(pd.read_parquet(data_table), data.load(dataset, train=True), group_column)
    test = data.load(dataset, train=False)
    n_test = len(test) if test_subset is None else min(test_subset, len(test))
    return trainset, test.images[:n_test], test.labels[:n_test]


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, C, H, W] -> float in [-1, 1] (on the device, per batch).  Float images (a declared
    dataset, standardized when loaded) are copied: nothing done to a batch writes into the dataset."""
    if images.dtype != torch.uint8:
        return images.to(torch.float32, copy=True)
    return images.float().div_(127.5).sub_(1.0)
