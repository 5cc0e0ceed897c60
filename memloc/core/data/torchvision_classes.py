"""Any torchvision.datasets class by name, as a declared dataset (memloc.core.data.declared):
`format: torchvision, class: KMNIST`.

The class is called with train=True/False, or else split="train"/"test" (SVHN-like), and
download= where it takes it.  The images come from the dataset's in-memory arrays (`data`
with `targets` or `labels`, as MNIST-likes, CIFAR and SVHN keep them), else from
iterating it (PIL images).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np

from memloc.core.data.builtin import existence_only
from memloc.core.data.declared_files import DatasetError, Split


def _to_nchw(x: np.ndarray) -> np.ndarray:
    """[N, H, W] or [N, H, W, C] (C 1 or 3) or [N, C, H, W] -> [N, C, H, W]."""
    if x.ndim == 3:
        return x[:, None]
    if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        return x.transpose(0, 3, 1, 2)
    return x


def read_torchvision(class_name: str, root: Path, train: bool, download: bool = False,
                     verify_checksums: bool = True) -> Split:
    """A split of torchvision.datasets.<class_name> under `root` as uint8 [N, C, H, W].

    verify_checksums=False accepts re-packed CIFAR / SVHN files (their classes check MD5
    sums); other classes check their files as torchvision does."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, class_name)
    if not verify_checksums and issubclass(cls, (tvd.CIFAR10, tvd.SVHN)):
        cls = existence_only(cls)
    params = inspect.signature(cls.__init__).parameters
    kwargs = {"download": download} if "download" in params else {}
    if "train" in params:
        kwargs["train"] = train
    elif "split" in params:
        kwargs["split"] = "train" if train else "test"
    else:
        raise DatasetError(f"torchvision.datasets.{class_name} takes neither train= nor split=: declare it as an "
                           f"imagefolder or npz dataset")
    try:
        ds = cls(str(root), **kwargs)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
        raise FileNotFoundError(f"torchvision.datasets.{class_name} not found under {root} ({err}); set download: "
                                f"true on a machine with internet, or put a copy there") from err
    data, targets = getattr(ds, "data", None), getattr(ds, "targets", getattr(ds, "labels", None))
    if data is not None and targets is not None and len(data) == len(targets) and np.asarray(data).dtype == np.uint8:
        images = _to_nchw(np.asarray(data))
    else:  # no uint8 arrays: decode every example
        pairs = [ds[i] for i in range(len(ds))]
        images = _to_nchw(np.stack([np.asarray(img, dtype=np.uint8) for img, _ in pairs]))
        targets = [t for _, t in pairs]
    labels = np.asarray(targets, dtype=np.int64)
    if labels.ndim == 2:  # QMNIST: [N, 8], the class first
        labels = labels[:, 0]
    classes = [str(c) for c in getattr(ds, "classes", None) or []]
    k = int(labels.max()) + 1
    if len(classes) < k:
        classes = [str(c) for c in range(k)]
    return Split(np.ascontiguousarray(images), labels, classes)
