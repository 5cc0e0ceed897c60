"""The built-in datasets (CIFAR-10, MNIST, Fashion-MNIST, SVHN) as in-memory tensors,
loaded through torchvision: images uint8 [N, C, H, W], labels int64 [N].  Batches are sliced
from these on the device, so the training hot path never touches PIL.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

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


def existence_only(cls: type) -> type:
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
        cls = existence_only(cls)
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
