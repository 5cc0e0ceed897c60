"""The paper's whole DAG, end to end: config/paper.yaml with config/smoke.yaml (the README's
smoke preset) through the real Snakemake, on tiny files in the datasets' real on-disk formats.

Before anyone spends GPU hours on the paper preset, every path it takes runs here: CIFAR-10's
pickled batches, MNIST's idx files and SVHN's .mat files through torchvision; the published
C-score formats (CIFAR-10's .npz of scores and labels, MNIST's bare .npy in TFDS order);
ResNet-9, ResNet-50 and ViT on each dataset; every rule of the paper's DAG but the
download ones' network part (fetch_cscores: the files are local here); and all 22 artefacts,
fig13/14 and fig16/17 included, in results_dir (results-smoke/), with nothing under results/.

A test overlay (ci_overlay) trims the fan-out and sizes, not the kinds of jobs: one noise
rate of the grid (fig11 keeps two), one flipping shard per model, one retrained layer, one
cell of tab2's grid, 50 + 50 images, 2 epochs; CPU, one thread per job (its time: docs/testing.md).
The numbers mean nothing at this size: the tests check that each table holds the runs,
groups and values the settings call for, not what the paper finds.
"""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from dataset_files import write_cifar10, write_cifar10_cscores, write_mnist, write_mnist_cscores, write_svhn

ROOT = Path(__file__).resolve().parents[1]
PAPER, SMOKE = ROOT / "config" / "paper.yaml", ROOT / "config" / "smoke.yaml"
S = yaml.safe_load(SMOKE.read_text())
RESULTS = S["results_dir"]

FIGURES = [f"fig{i:02d}" for i in range(1, 20) if i != 6]  # Fig. 6 is a schematic
TABLES = ["tab1", "tab2", "tab3", "auc"]
assert len(FIGURES + TABLES) == 22  # every artefact of the paper (FIGURES.md)
DATASETS, MODELS = ["cifar10", "mnist", "svhn"], ["resnet9", "resnet50", "vit_small"]
N_TRAIN, N_TEST = 120, 100  # files on disk (the smoke preset uses 100 + 100 of them)
SUBSET = 50  # train_subset and test_subset here: 5 images per class
EPOCHS = 2  # the smoke preset's 3, less one (its peak_epoch: 1)

NOISE = [0.1]  # the grid's noise rate here (the smoke preset: the paper's 5, 10, 20%)
SWEEP = [0.1, 0.5]  # fig11's rates here
RETRAINED = ["layer9"]
DROPOUT_GRID = {"p_gen": [0.4], "p_mem": [0.2]}  # tab1's cell
FLIP_SEEDS = S["flipping"]["seeds"]


def ci_overlay(data: Path, cscores: Path) -> dict:
    """The test's overlay on paper + smoke: local tiny data, CPU, less fan-out."""
    return {
        "data_root": str(data), "download": False,
        "verify_checksums": False,  # the files are not the official archives
        "device": "cpu", "threads": 1,
        "train_subset": SUBSET, "test_subset": SUBSET,
        # 2 epochs (fig01's window (1, 2]); batches of 10: the second split's 25 examples make 3
        # steps per epoch, so its warm-up to peak_epoch 1 spans more than one step
        "train": {"epochs": EPOCHS, "batch_size": 10},
        "noise_rates": NOISE,
        "dropout": {"grid": DROPOUT_GRID},
        "figures": {"fig11": {"noise_rates": SWEEP}},
        "retraining": {"layers": RETRAINED},
        "flipping": {"shards": 1},
        "atypical": {"cscore_files": {
            "cifar10": {"url": None, "sha256": None, "file": str(cscores / "cifar10-cscores-orig-order.npz")},
            "mnist": {"url": None, "sha256": None, "file": str(cscores / "mnist-cscores.npy")},
        }},
    }


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), *args,
           "--configfile", str(PAPER), str(SMOKE), str(workdir / "ci.yaml")]  # one flag, the files in order
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    """The working directory of one run of the whole paper DAG at the smoke preset's sizes."""
    workdir = tmp_path_factory.mktemp("paper_smoke")
    data, cscores = workdir / "downloads", workdir / "cscores"
    cscores.mkdir()
    cifar = write_cifar10(data, N_TRAIN, N_TEST)
    write_mnist(data, N_TRAIN, N_TEST)
    write_svhn(data, N_TRAIN, N_TEST)
    write_cifar10_cscores(cscores / "cifar10-cscores-orig-order.npz", cifar)
    write_mnist_cscores(cscores / "mnist-cscores.npy", N_TRAIN)
    (workdir / "ci.yaml").write_text(yaml.safe_dump(ci_overlay(data, cscores)))
    result = snakemake(workdir, "--cores", "2")
    assert result.returncode == 0, result.stderr[-8000:]
    return workdir


def read(workdir: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(workdir / RESULTS / "tables" / f"{name}.parquet")


def settings(df: pd.DataFrame, *columns: str) -> set[tuple]:
    return set(df[list(columns)].drop_duplicates().itertuples(index=False, name=None))


@pytest.mark.slow
def test_every_artefact_is_written_to_results_dir_and_nothing_to_results(smoke):
    assert not (smoke / "results").exists()
    figures = smoke / RESULTS / "figures"
    assert {p.name for p in figures.iterdir()} >= {f"{fig}.{ext}" for fig in FIGURES for ext in ("png", "pdf")}
    for fig in FIGURES:
        for ext in ("png", "pdf"):
            assert (figures / f"{fig}.{ext}").stat().st_size > 1000, fig
    for tab in TABLES + ["paper_vs_ours", "claims", "provenance"]:
        for ext in ("csv", "md"):
            assert (smoke / RESULTS / "tables" / f"{tab}.{ext}").stat().st_size > 0, tab
        assert len(read(smoke, tab)) > 0, tab


@pytest.mark.slow
def test_rerun_has_nothing_to_do(smoke):
    result = snakemake(smoke, "-n", "--cores", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_gradient_and_metric_tables_hold_every_dataset_model_and_noise_rate(smoke):
    grid = {(d, m, n) for d in DATASETS for m in MODELS for n in NOISE}  # fig12-14
    sweep = {("cifar10", "resnet9", n) for n in SWEEP}  # fig11
    for name in ("gradients", "metrics"):
        df = read(smoke, name)
        assert settings(df, "dataset", "model", "noise") == grid | sweep, name
        assert set(df["seed"]) == set(S["seeds"])
    g = read(smoke, "gradients")
    assert set(g["group"]) == {"clean", "noisy", "total"} and sorted(g["epoch"].unique()) == list(range(1, EPOCHS + 1))
    assert g["cosine"].between(-1, 1).all() and (g["norm"] >= 0).all()
    m = read(smoke, "metrics")
    assert set(m["subset"]) == {"train", "clean", "noisy", "test"}
    assert m["accuracy"].between(0, 1).all()


@pytest.mark.slow
def test_layer_tables_hold_every_model_and_the_typical_atypical_runs(smoke):
    rewinding = read(smoke, "rewinding")  # fig03, fig15-17
    assert settings(rewinding, "dataset", "model") == {(d, m) for d in DATASETS for m in MODELS}
    assert rewinding["accuracy"].between(0, 1).all()
    assert settings(read(smoke, "atypical_rewinding"), "dataset") == {("cifar10",), ("mnist",)}  # fig09
    retraining = read(smoke, "retraining")  # fig04, fig18: ResNet-9
    assert settings(retraining, "dataset", "model") == {(d, "resnet9") for d in DATASETS}
    assert set(retraining["layer"]) == set(RETRAINED)
    assert set(read(smoke, "atypical_retraining")["layer"]) == set(RETRAINED)  # fig19


@pytest.mark.slow
def test_typical_atypical_groups_come_from_the_published_cscore_files(smoke):
    for dataset in ("cifar10", "mnist"):
        data = pd.read_parquet(smoke / RESULTS / "data" / dataset / "atypical.parquet")
        assert len(data) == SUBSET and (data["times_held_out"] == -1).all()  # published, not estimated
        assert (data["is_atypical"] == (data["cscore"] < 0.5)).all()
        assert 0 < data["is_atypical"].sum() < len(data)
    g = read(smoke, "atypical_gradients")  # fig08
    assert settings(g, "dataset") == {("cifar10",), ("mnist",)}
    assert {"typical", "atypical"} <= set(g["group"])


@pytest.mark.slow
def test_flipping_dropout_and_detection_tables(smoke):
    flipping = read(smoke, "flipping")  # fig05: each selected example on each flipping model
    per_group = S["flipping"]["examples_per_group"]
    assert len(flipping) == 2 * per_group * len(FLIP_SEEDS) and set(flipping["seed"]) == set(FLIP_SEEDS)
    auc = read(smoke, "auc")  # at this size an AUC may be undefined (one group flipped): NaN
    assert {"flip count", "learning time"} <= set(auc["method"])
    assert auc["auc"].dropna().between(0, 1).all()
    assert set(read(smoke, "tab1")["dataset"]) == set(DATASETS)
    tab2 = read(smoke, "tab2")
    assert settings(tab2, "p_gen", "p_mem") == {(g, m) for g in DROPOUT_GRID["p_gen"] for m in DROPOUT_GRID["p_mem"]}
