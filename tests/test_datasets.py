"""Datasets declared in the config (memloc.core.data.declared): ImageFolder trees of PNGs, .npz
arrays and torchvision classes by name, written here as real files; their info, loading and
standardization; every bad-data case's message naming the file, from the fetch job and at
DAG parse time; an ImageFolder exported from Fashion-MNIST; and the DAG's fetch_dataset jobs."""

import json
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from schema_defaults import data_source, model_settings, run_inputs, source_fields, train_config

from memloc.config import ConfigError, load_config
from memloc.config_checks import check_config
from memloc.core.data.builtin import DATASETS, load_dataset
from memloc.core.data.catalog import dataset_info
from memloc.core.data.declared import display_uint8, read_split
from memloc.core.data.declared_files import DatasetError, normalization_stats, png_bytes
from memloc.core.data.fetch import fetch_dataset
from memloc.core.data.noise import make_corrupted_table
from memloc.core.data.run_data import normalize, training_set
from memloc.core.data.source import DataSource
from memloc.core.paths import DATASET_INFO, DATASET_SPLITS

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "tests" / "config" / "test.yaml"


def pixels(n, size, channels, seed):
    rng = np.random.default_rng(seed)
    shape = (n, size, size) if channels == 1 else (n, size, size, channels)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def write_folder(root, classes=("ant", "bee", "cat"), per_class=6, size=8, channels=1, seed=0):
    """root/{train,test}/<class>/<i>.png; returns {split: (images [N, H, W(, C)], labels)} in
    ImageFolder order (sorted classes, then file names)."""
    out = {}
    for k, split in enumerate(("train", "test")):
        images, labels = [], []
        for label, name in enumerate(sorted(classes)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i, img in enumerate(pixels(per_class, size, channels, seed=seed + 10 * k + label)):
                Image.fromarray(img).save(folder / f"{i:02d}.png")
                images.append(img)
                labels.append(label)
        out[split] = (np.stack(images), np.array(labels))
    return out


def declared(name, **definition):
    return source_fields("unused", definitions={name: definition})


def nchw(images):
    return images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)


@pytest.mark.parametrize("channels", [1, 3])
def test_imagefolder_info_pixels_and_standardization(tmp_path, channels):
    written = write_folder(tmp_path / "shapes", channels=channels)
    source = declared("shapes", format="imagefolder", path=str(tmp_path / "shapes"))
    info = dataset_info("shapes", source)
    assert (info.num_classes, info.channels, info.height, info.width) == (3, channels, 8, 8)
    assert info.classes == ("ant", "bee", "cat")
    definition = source["definitions"]["shapes"]
    for train, split in ((True, "train"), (False, "test")):
        raw = read_split(definition, "unused", train)
        assert raw.images.dtype == np.uint8 and raw.images.shape == (18, channels, 8, 8)
        assert np.array_equal(raw.images, nchw(written[split][0]))
        assert np.array_equal(raw.labels, written[split][1])
    # float32, standardized per channel with the training split's statistics (the test split too)
    mean, std = normalization_stats(nchw(written["train"][0]))
    src = DataSource(**source)
    train, test = src.load("shapes", train=True), src.load("shapes", train=False)
    assert train.images.dtype == torch.float32 and train.images.shape == (18, channels, 8, 8)
    assert torch.allclose(train.images.mean(dim=(0, 2, 3)), torch.zeros(channels), atol=1e-5)
    assert torch.allclose(train.images.std(dim=(0, 2, 3), correction=0), torch.ones(channels), atol=1e-5)
    m, s = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
    expected = (torch.from_numpy(nchw(written["test"][0])).double() / 255 - m) / s
    assert torch.allclose(test.images.double(), expected, atol=1e-5)
    # the jobs' batches: float images pass normalize unchanged, as a copy
    batch = normalize(test.images[:4])
    assert torch.equal(batch, test.images[:4]) and batch.data_ptr() != test.images.data_ptr()
    # fig07's pixels: min-max per image
    shown = display_uint8(test.images[:2])
    assert shown.dtype == torch.uint8 and shown.flatten(1).min(1).values.tolist() == [0, 0]
    assert shown.flatten(1).max(1).values.tolist() == [255, 255]


@pytest.mark.parametrize("channels", [None, 1, 3])
def test_npz_info_and_pixels(tmp_path, channels):
    size = 5
    x_train, x_test = pixels(20, size, channels or 1, 0), pixels(7, size, channels or 1, 1)
    if channels == 1:
        x_train, x_test = x_train[..., None], x_test[..., None]
    y_train, y_test = np.arange(20) % 4, np.arange(7) % 4
    np.savez(tmp_path / "d.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    source = declared("arrays", format="npz", path=str(tmp_path / "d.npz"))
    info = dataset_info("arrays", source)
    assert (info.num_classes, info.channels, info.image_size) == (4, channels or 1, size)
    raw = read_split(source["definitions"]["arrays"], "unused", train=False)
    assert np.array_equal(raw.images, nchw(x_test))
    assert raw.labels.dtype == np.int64 and np.array_equal(raw.labels, y_test)
    record = fetch_dataset(tmp_path / "out" / "dataset.json", "arrays", source)
    assert json.loads((tmp_path / "out" / "dataset.json").read_text()) == record
    assert (record["n_train"], record["n_test"], record["num_classes"]) == (20, 7, 4)
    assert record["mean"] == pytest.approx(x_train.reshape(20, -1, channels or 1).mean(axis=(0, 1)) / 255)


def test_builtin_info_equals_the_table():
    for name, (_, classes, channels, size) in DATASETS.items():
        info = dataset_info(name)
        assert (info.num_classes, info.channels, info.height, info.width, info.image_size) == (
            classes, channels, size, size, size)
    with pytest.raises(KeyError, match="neither built in"):
        dataset_info("cifar100")


def test_label_noise_and_subsets_on_a_declared_dataset(tmp_path):
    write_folder(tmp_path / "shapes", per_class=10)
    src = data_source("data", definitions={"shapes": {"format": "imagefolder", "path": str(tmp_path / "shapes")}})
    table = make_corrupted_table("shapes", src, noise=0.2, subset=15, seed=0)
    assert np.bincount(table["true_label"], minlength=3).tolist() == [5, 5, 5]
    assert table["is_noisy"].sum() == 3 and (table["label"] != table["true_label"]).sum() == 3
    assert set(table["label"]) <= {0, 1, 2}
    ts = training_set(table, src.load("shapes", train=True), "is_noisy")
    assert ts.images.shape == (15, 1, 8, 8) and ts.images.dtype == torch.float32


# -- bad data: the fetch job (every file) and check_config (what is cheap) name the file -----

def bad_npz(path, drop=None, **arrays):
    base = {"x_train": pixels(6, 4, 1, 0), "y_train": np.arange(6) % 3, "x_test": pixels(3, 4, 1, 1),
            "y_test": np.arange(3)}
    base.update(arrays)
    base.pop(drop, None)
    np.savez(path, **base)
    return path


def bad_folder(root, case):
    """An ImageFolder with one defect; returns (the file or folder the message must name, parse-time check)."""
    write_folder(root)
    if case == "empty class":
        bad = root / "test" / "bee"
        for f in bad.iterdir():
            f.unlink()
        (bad / "notes.txt").write_text("not an image")
        return bad, True
    if case == "class folders differ":
        (root / "test" / "bee").rename(root / "test" / "bear")
        return root, True
    if case == "mixed sizes":
        bad = root / "train" / "cat" / "03.png"
        Image.fromarray(pixels(1, 9, 1, 0)[0]).save(bad)
        return bad, False
    if case == "mixed channels":
        bad = root / "test" / "ant" / "01.png"
        Image.fromarray(pixels(1, 8, 3, 0)[0]).save(bad)
        return bad, False
    if case == "unreadable":
        bad = root / "train" / "bee" / "02.png"
        bad.write_bytes(b"\x89PNG but not really")
        return bad, False
    raise AssertionError(case)


FOLDER_CASES = ["empty class", "class folders differ", "mixed sizes", "mixed channels", "unreadable"]
NPZ_CASES = {
    "missing arrays": (dict(drop="y_test"), "missing arrays ['y_test']"),
    "negative label": (dict(y_train=np.array([0, 1, 2, -1, 0, 1])), "y_train has labels outside 0..K-1"),
    "test label outside train's": (dict(y_test=np.array([0, 1, 3])), "y_test has labels that no training example"),
    "float images": (dict(x_train=pixels(6, 4, 1, 0).astype(np.float32)), "images must be uint8"),
    "mixed sizes": (dict(x_test=pixels(3, 5, 1, 1)), "all images of a dataset must have one size"),
    "label count": (dict(y_train=np.arange(5)), "one integer label per image of x_train"),
}


def config_with(tmp_path, name, definition):
    config = load_config(PRESET)
    config["dataset_definitions"] = {name: definition}
    config["primary"]["dataset"] = name
    return config


@pytest.mark.parametrize("case", FOLDER_CASES)
def test_bad_imagefolder_names_the_file(tmp_path, case):
    named, at_parse_time = bad_folder(tmp_path / "shapes", case)
    source = declared("shapes", format="imagefolder", path=str(tmp_path / "shapes"))
    with pytest.raises(DatasetError, match=re.escape(str(named))):
        fetch_dataset(tmp_path / "dataset.json", "shapes", source)
    assert not (tmp_path / "dataset.json").exists()
    if at_parse_time:
        with pytest.raises(ConfigError, match=re.escape(str(named))):
            check_config(config_with(tmp_path, "shapes", source["definitions"]["shapes"]))


@pytest.mark.parametrize("case", NPZ_CASES)
def test_bad_npz_names_the_file(tmp_path, case):
    arrays, message = NPZ_CASES[case]
    path = bad_npz(tmp_path / "bad.npz", **arrays)
    source = declared("arrays", format="npz", path=str(path))
    with pytest.raises(DatasetError, match=re.escape(str(path))) as err:
        fetch_dataset(tmp_path / "dataset.json", "arrays", source)
    assert message in str(err.value)
    with pytest.raises(ConfigError, match=re.escape(f"dataset_definitions.arrays (in primary.dataset): {path}")):
        check_config(config_with(tmp_path, "arrays", source["definitions"]["arrays"]))


@pytest.mark.parametrize("definition,message", [
    ({"format": "imagefolder"}, "dataset_definitions.mine.path: missing"),
    ({"format": "hdf5", "path": "x"}, "dataset_definitions.mine.format: 'hdf5' is not one of"),
    ({"format": "torchvision", "class": "NoSuchSet"}, "dataset_definitions.mine.class: 'NoSuchSet' is not"),
    ({"format": "npz", "path": "x.npz", "export_from": "mnist"}, "['export_from'] not used by format npz"),
    ({"format": "npz", "path": "missing.npz"}, "missing.npz: file missing"),
])
def test_bad_definition_names_the_key(tmp_path, definition, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config(config_with(tmp_path, "mine", definition))


def test_a_declared_name_may_not_shadow_a_built_in():
    config = load_config(PRESET)
    config["dataset_definitions"] = {"mnist": {"format": "npz", "path": "x.npz"}}
    with pytest.raises(ConfigError, match="dataset_definitions.mnist: 'mnist' is a built-in dataset"):
        check_config(config)


# -- torchvision classes by name ---------------------------------------------------------

def test_torchvision_class_by_name(tmp_path):
    """MNIST's idx files (train=) and SVHN's .mat (split=), declared by class name."""
    import struct

    from scipy.io import savemat

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    x = pixels(12, 28, 1, 0)
    y = np.arange(12) % 10
    for prefix in ("train", "t10k"):
        for kind, array in (("images-idx3", x), ("labels-idx1", y)):
            header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
            (raw / f"{prefix}-{kind}-ubyte").write_bytes(header + array.astype(np.uint8).tobytes())
    source = source_fields(str(tmp_path), definitions={"digits": {"format": "torchvision", "class": "MNIST"}})
    record = fetch_dataset(tmp_path / "digits.json", "digits", source)
    assert (record["num_classes"], record["channels"], record["height"], record["n_train"]) == (10, 1, 28, 12)
    assert np.array_equal(read_split(source["definitions"]["digits"], str(tmp_path), True).images[:, 0], x)

    svhn = np.random.default_rng(0).integers(0, 256, size=(32, 32, 3, 4), dtype=np.uint8)  # [H, W, C, N]
    savemat(tmp_path / "train_32x32.mat", {"X": svhn, "y": np.array([[10], [1], [2], [3]], dtype=np.uint8)})
    savemat(tmp_path / "test_32x32.mat", {"X": svhn[..., :2], "y": np.array([[1], [2]], dtype=np.uint8)})
    source = source_fields(str(tmp_path), verify_checksums=False,
                           definitions={"house": {"format": "torchvision", "class": "SVHN"}})
    record = fetch_dataset(tmp_path / "house.json", "house", source)
    assert (record["channels"], record["n_train"], record["n_test"]) == (3, 4, 2)
    with pytest.raises(FileNotFoundError, match="SVHN not found"):  # MD5 differs from the official files
        fetch_dataset(tmp_path / "house.json", "house", {**source, "verify_checksums": True})


# -- an ImageFolder exported from a built-in dataset -------------------------------------

@pytest.mark.parametrize("shape", [(7, 5), (6, 9, 3), (40, 40, 3)])  # the last one deflated (over 4 KiB)
def test_png_writer_round_trips_through_pil(shape):
    import io

    image = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    with Image.open(io.BytesIO(png_bytes(image))) as img:
        assert img.mode == ("L" if len(shape) == 2 else "RGB")
        assert np.array_equal(np.asarray(img), image)


@pytest.mark.slow  # writes and reads 70,000 PNGs
def test_export_from_fashion_mnist_equals_the_built_in(fashion_root, tmp_path):
    folder = tmp_path / "fashion_png"
    source = source_fields(fashion_root, definitions={"fpng": {"format": "imagefolder", "path": str(folder),
                                                               "export_from": "fashion_mnist"}})
    assert dataset_info("fpng", source).num_classes == 10  # before the export: the built-in's info
    record = fetch_dataset(tmp_path / "dataset.json", "fpng", source)
    assert (record["n_train"], record["n_test"], record["channels"], record["height"]) == (60000, 10000, 1, 28)
    assert record["classes"][0] == "0_T_shirt_top" and record["classes"][9] == "9_Ankle_boot"
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []  # no temporary folder left
    for train in (True, False):
        builtin = load_dataset("fashion_mnist", fashion_root, train)
        order = np.argsort(builtin.labels.numpy(), kind="stable")  # ImageFolder: by class, then file name
        exported = read_split(source["definitions"]["fpng"], fashion_root, train)
        assert np.array_equal(exported.labels, builtin.labels.numpy()[order])
        assert np.array_equal(exported.images, builtin.images.numpy()[order])


# -- the DAG: one fetch job per dataset, upstream of every job that loads it ---------------

CONSUMERS = {"corrupt_data", "train", "train_dropout", "holdout_model", "atypical_data", "rewind_layers",
             "retrain_layer", "flip_shard", "second_split", "fig07_table"}


def dry_run_jobs(workdir, override) -> list[dict]:
    """The jobs of `snakemake -n` of the test preset plus `override`: {rule, input (list),
    output, wildcards (dict), reason} each (group members too)."""
    (workdir / "override.yaml").write_text(yaml.safe_dump(override))
    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(PRESET), str(workdir / "override.yaml")]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs, job = [], None
    for line in (result.stdout + result.stderr).splitlines():
        head = re.fullmatch(r"\s*(?:local)?rule (\w+):", line)
        field = re.fullmatch(r"\s+(\w+): (.*)", line)
        if head:
            job = {"rule": head[1], "input": [], "wildcards": {}}
            jobs.append(job)
        elif job is not None and field:
            key, value = field.groups()
            job[key] = value.split(", ") if key == "input" else value
            if key == "wildcards":
                job[key] = dict(pair.split("=", 1) for pair in value.split(", "))
        else:
            job = None
    return jobs


def test_dag_fetches_each_dataset_once_before_its_readers(tmp_path):
    """A built-in and a declared dataset: one fetch_dataset job each, and every job that
    loads a dataset has its dataset.json as an input that the fetch job makes."""
    x = pixels(300, 16, 1, 0)  # the preset's train_subset (a larger one stops the DAG)
    np.savez(tmp_path / "tiny.npz", x_train=x, y_train=np.arange(300) % 4, x_test=x[:8], y_test=np.arange(8) % 4)
    override = {"dataset_definitions": {"tiny": {"format": "npz", "path": str(tmp_path / "tiny.npz")}},
                "datasets": ["fashion_mnist", "tiny"], "dropout": {"datasets": ["tiny"]}}
    jobs = dry_run_jobs(tmp_path, override)
    fetches = sorted(job["output"] for job in jobs if job["rule"] == "fetch_dataset")
    assert fetches == [f"{DATASET_INFO.format(dataset=d)}, {DATASET_SPLITS.format(dataset=d)}"
                       for d in ("fashion_mnist", "tiny")]
    readers = [job for job in jobs if job["rule"] in CONSUMERS]
    assert {job["rule"] for job in readers} == CONSUMERS
    assert {job["wildcards"].get("dataset") for job in readers} == {"fashion_mnist", "tiny", None}
    for job in readers:
        dataset = job["wildcards"].get("dataset", "tiny")  # fig07_table: dropout's
        for fetched in (DATASET_INFO.format(dataset=dataset), DATASET_SPLITS.format(dataset=dataset)):
            assert fetched in job["input"], job
            assert fetched in job["reason"].split("Input files updated by another job: ", 1)[1].split(", "), job


def test_a_declared_dataset_trains_rewinds_and_retrains(tmp_path):
    """Standardized float images (RGB 16x16 .npz, 3 classes) through a run, rewinding and
    the retraining of a layer: the jobs' own functions, as the rules call them."""
    from memloc.layers.jobs import retrain_run, rewind_run
    from memloc.runs.jobs import train_run, write_corrupted_dataset

    rng = np.random.default_rng(0)
    y_train, y_test = np.arange(60) % 3, np.arange(12) % 3
    x_train = (rng.integers(0, 60, size=(60, 16, 16, 3)) + 60 * y_train[:, None, None, None]).astype(np.uint8)
    x_test = (rng.integers(0, 60, size=(12, 16, 16, 3)) + 60 * y_test[:, None, None, None]).astype(np.uint8)
    np.savez(tmp_path / "blobs.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    source = source_fields("data", definitions={"blobs": {"format": "npz", "path": str(tmp_path / "blobs.npz")}})
    table = tmp_path / "data.parquet"
    write_corrupted_dataset(table, "blobs", source, noise=0.1, subset=None, seed=0)
    outputs = {name: str(tmp_path / f"{name}.parquet") for name in ("metrics", "examples", "gradients")}
    outputs["checkpoints"] = str(tmp_path / "checkpoints.txt")
    settings = asdict(train_config(epochs=2, peak_epoch=1, batch_size=16, seed=0, eval_batch_size=64))
    inputs, cpu = run_inputs(table, "blobs", source, None), torch.device("cpu")
    train_run(inputs, model_settings("resnet9", width=0.125), settings, outputs, cpu)
    examples = __import__("pandas").read_parquet(outputs["examples"])
    assert len(examples[examples["epoch"] == 2]) == 60 and examples["loss"].notna().all()
    rewound = rewind_run(inputs, outputs["checkpoints"], tmp_path / "rewinding.parquet", None, 64, cpu)
    assert set(rewound["subset"]) >= {"clean", "noisy", "test"} and rewound["accuracy"].between(0, 1).all()
    retraining = {k: v for k, v in settings.items() if k != "group_names"} | {"gradient_accounting": False}
    retrained = retrain_run(inputs, outputs["checkpoints"], tmp_path / "retraining.parquet", ["layer9"], retraining,
                            False, cpu)
    assert retrained["accuracy"].between(0, 1).all() and len(retrained)


def test_fetch_of_a_built_in_dataset(fashion_root, tmp_path):
    """Fashion-MNIST from Debian's files: both splits checked, the info and statistics written."""
    record = fetch_dataset(tmp_path / "dataset.json", "fashion_mnist", source_fields(fashion_root))
    assert (record["format"], record["n_train"], record["n_test"], record["num_classes"]) == ("builtin", 60000,
                                                                                                10000, 10)
    assert record["mean"] == pytest.approx([0.2860], abs=1e-4) and record["std"] == pytest.approx([0.3530], abs=1e-4)
    assert record["normalization"].startswith("x / 127.5 - 1")
