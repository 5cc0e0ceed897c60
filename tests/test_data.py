"""Label noise, subsets, and the torchvision loaders on files in their real on-disk formats."""

import pickle

import numpy as np
import pytest
import torch
from dataset_files import write_idx
from schema_defaults import data_source

from memloc.core.data import builtin
from memloc.core.data.builtin import load_dataset
from memloc.core.data.noise import balanced_subset, corrupt_labels, make_corrupted_table
from memloc.core.data.run_data import training_set


def test_noise_exact_count_never_true_label_all_classes_reachable():
    labels = np.random.default_rng(0).integers(0, 10, size=5000)
    new, noisy = corrupt_labels(labels, 0.1, 10, seed=3)
    assert noisy.sum() == round(0.1 * 5000)
    assert np.all(new[noisy] != labels[noisy])
    assert np.all(new[~noisy] == labels[~noisy])
    for c in range(10):  # from every true class, each of the 9 wrong classes is drawn
        wrong = set(new[noisy & (labels == c)])
        assert wrong == set(range(10)) - {c}


def test_noise_rounding_and_seed():
    labels = np.arange(37) % 5
    _, noisy = corrupt_labels(labels, 0.05, 5, seed=1)
    assert noisy.sum() == round(0.05 * 37) == 2
    a = corrupt_labels(labels, 0.3, 5, seed=7)
    b = corrupt_labels(labels, 0.3, 5, seed=7)
    c = corrupt_labels(labels, 0.3, 5, seed=8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    with pytest.raises(ValueError, match="noise fraction"):
        corrupt_labels(labels, 1.0, 5, seed=0)


def test_balanced_subset():
    labels = torch.tensor(np.random.default_rng(0).integers(0, 10, size=3000))
    idx = balanced_subset(labels, 205, seed=0)
    counts = np.bincount(labels.numpy()[idx], minlength=10)
    assert len(idx) == 205 and len(set(idx)) == 205
    assert counts.max() - counts.min() <= 1
    assert np.array_equal(idx, balanced_subset(labels, 205, seed=0))
    assert np.array_equal(idx, np.sort(idx))
    assert len(balanced_subset(labels, None, seed=0)) == 3000


def test_corrupted_table_from_real_fashion_mnist(fashion_root):
    src = data_source(fashion_root)
    table = make_corrupted_table("fashion_mnist", src, 0.2, subset=500, seed=0)
    assert list(table.columns) == ["index", "source_index", "true_label", "label", "is_noisy"]
    assert table["is_noisy"].sum() == 100
    assert (table["label"] != table["true_label"]).sum() == 100
    assert np.bincount(table["true_label"], minlength=10).tolist() == [50] * 10
    data = src.load("fashion_mnist", train=True)
    assert data.images.shape == (60000, 1, 28, 28) and data.images.dtype == torch.uint8
    ts = training_set(table, data, "is_noisy")
    assert ts.images.shape == (500, 1, 28, 28)
    assert torch.equal(ts.group, torch.tensor(table["is_noisy"].to_numpy()))
    table.loc[0, "true_label"] = (table.loc[0, "true_label"] + 1) % 10
    with pytest.raises(ValueError, match="does not match"):
        training_set(table, data, "is_noisy")


# -- tiny files in each dataset's real on-disk format -------------------------------------

def _idx_split(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28)), rng.integers(0, 10, size=n)


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_loaders(tmp_path, name, folder):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    splits = {"train": _idx_split(12, seed=0), "t10k": _idx_split(5, seed=1)}
    for prefix, (images, labels) in splits.items():
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    for prefix, (images, labels) in splits.items():
        n = len(labels)
        data = load_dataset(name, tmp_path, train=prefix == "train")
        assert data.images.shape == (n, 1, 28, 28)
        assert np.array_equal(data.images[:, 0].numpy(), images)
        assert np.array_equal(data.labels.numpy(), labels)


def test_fashion_mnist_from_debian_layout(tmp_path, monkeypatch):
    """The offline default: gzipped idx files in a Debian package folder are staged for torchvision."""
    debian = tmp_path / "debian"
    debian.mkdir()
    images, labels = _idx_split(9, seed=0)
    for prefix in ("train", "t10k"):
        write_idx(debian / f"{prefix}-images-idx3-ubyte.gz", images, gz=True)
        write_idx(debian / f"{prefix}-labels-idx1-ubyte.gz", labels, gz=True)
    monkeypatch.setitem(builtin.DEBIAN_SOURCES, "fashion_mnist", str(debian))
    root = tmp_path / "root"
    assert data_source(str(root)).available("fashion_mnist")
    data = load_dataset("fashion_mnist", root, train=True)
    assert np.array_equal(data.images[:, 0].numpy(), images)
    assert sorted(p.name for p in (root / "FashionMNIST").iterdir()) == ["raw"]  # no temp folder left


def test_cifar10_loader(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    expected = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(3, 3072), dtype=np.uint8)  # rows: R plane, G plane, B plane
        labels = rng.integers(0, 10, size=3).tolist()
        with open(base / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
        expected.append((data, labels))
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    with pytest.raises(FileNotFoundError, match="cifar10"):  # MD5 differs from the official files
        load_dataset("cifar10", tmp_path, train=True)
    train = load_dataset("cifar10", tmp_path, train=True, verify_checksums=False)
    assert train.images.shape == (15, 3, 32, 32)
    first = expected[0][0][0].reshape(3, 32, 32)
    assert np.array_equal(train.images[0].numpy(), first)
    assert train.labels.tolist() == sum((lab for _, lab in expected[:5]), [])
    test = load_dataset("cifar10", tmp_path, train=False, verify_checksums=False)
    assert test.labels.tolist() == expected[5][1]


def test_svhn_loader(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(32, 32, 3, 4), dtype=np.uint8)  # SVHN .mat: [H, W, C, N]
    y = np.array([[10], [1], [2], [10]], dtype=np.uint8)  # label 10 means digit 0
    savemat(tmp_path / "train_32x32.mat", {"X": x, "y": y})
    with pytest.raises(FileNotFoundError, match="svhn"):
        load_dataset("svhn", tmp_path, train=True)
    data = load_dataset("svhn", tmp_path, train=True, verify_checksums=False)
    assert data.images.shape == (4, 3, 32, 32)
    assert data.labels.tolist() == [0, 1, 2, 0]
    # torchvision transposes [H, W, C, N] -> [N, C, H, W]
    assert np.array_equal(data.images[1].numpy(), x[..., 1].transpose(2, 0, 1))
