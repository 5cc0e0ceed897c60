"""Tiny datasets and C-score files in their real published formats, for tests that load
them through torchvision and memloc.atypical.cscores as a download would be loaded.

- CIFAR-10: torchvision's `cifar-10-batches-py/` (pickled dicts `data` [N, 3072] uint8 with
  the R, G, B planes of each image, `labels`; data_batch_1..5, test_batch, batches.meta);
- MNIST: `MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte` (idx: magic, big-endian
  dims, raw bytes; uncompressed, as torchvision's MNIST reads them);
- SVHN: `train_32x32.mat` / `test_32x32.mat` (MATLAB: X [32, 32, 3, N], y [N, 1], label 10
  for the digit 0);
- C-scores: CIFAR-10's .npz (scores + labels in the dataset's order), MNIST's bare .npy
  (scores in the TFDS order of the training split, memloc.atypical.cscores.tfds_order).

The images are noise around a per-class grey level, so the classes are learnable.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def write_idx(path, array, gz=False):
    """idx format: magic (0, 0, dtype 0x08 = ubyte, ndim), big-endian dims, raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def balanced_labels(n: int, seed: int, classes: int = 10) -> np.ndarray:
    """[n] labels, every class n // classes times (the rest from the first classes), shuffled."""
    return np.random.default_rng(seed).permutation(np.arange(n) % classes)


def images(labels: np.ndarray, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """uint8 [N, *shape]: noise around a grey level of each example's class."""
    rng = np.random.default_rng(seed)
    level = (labels * 20 + 30).reshape(-1, *([1] * len(shape)))
    return np.clip(level + rng.normal(0, 30, size=(len(labels), *shape)), 0, 255).astype(np.uint8)


def write_cifar10(root: Path, n_train: int, n_test: int, seed: int = 0) -> np.ndarray:
    """root/cifar-10-batches-py with n_train (a multiple of 5) + n_test images; the training labels."""
    base = Path(root) / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    train, test = balanced_labels(n_train, seed), balanced_labels(n_test, seed + 1)
    splits = np.split(train, 5) + [test]
    for i, (name, labels) in enumerate(zip([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"], splits)):
        data = images(labels, (3, 32, 32), seed + 10 + i).reshape(len(labels), 3072)  # R, G, B planes
        with open(base / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": data, "labels": labels.tolist()}, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                     "ship", "truck"]}, f)
    return train


def write_mnist(root: Path, n_train: int, n_test: int, seed: int = 0) -> np.ndarray:
    """root/MNIST/raw/*-ubyte (uncompressed idx) with n_train + n_test digits; the training labels."""
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    train, test = balanced_labels(n_train, seed), balanced_labels(n_test, seed + 1)
    for prefix, labels, s in (("train", train, seed + 2), ("t10k", test, seed + 3)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images(labels, (28, 28), s))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return train


def write_svhn(root: Path, n_train: int, n_test: int, seed: int = 0) -> np.ndarray:
    """root/{train,test}_32x32.mat with n_train + n_test digits; the training labels (0-9)."""
    from scipy.io import savemat

    Path(root).mkdir(parents=True, exist_ok=True)
    train, test = balanced_labels(n_train, seed), balanced_labels(n_test, seed + 1)
    for split, labels, s in (("train", train, seed + 4), ("test", test, seed + 5)):
        x = images(labels, (32, 32, 3), s).transpose(1, 2, 3, 0)  # [H, W, C, N]
        y = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(-1, 1)  # SVHN: 10 is the digit 0
        savemat(Path(root) / f"{split}_32x32.mat", {"X": x, "y": y})
    return train


def write_cifar10_cscores(path: Path, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """The published CIFAR-10 format: an .npz of `scores` and `labels` in the dataset's order."""
    scores = np.random.default_rng(seed).uniform(0, 1, len(labels))
    np.savez(path, scores=scores, labels=np.asarray(labels, dtype=np.int64))
    return scores


def write_mnist_cscores(path: Path, n: int, seed: int = 0) -> np.ndarray:
    """The published MNIST format: a bare .npy of scores in the TFDS order of the training
    split; the scores in the dataset's own order."""
    from memloc.atypical.cscores import tfds_order

    scores = np.random.default_rng(seed).uniform(0, 1, n)
    np.save(path, scores[tfds_order(n)])  # file position p holds the score of original index order[p]
    return scores
