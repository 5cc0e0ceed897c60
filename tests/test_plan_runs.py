"""memloc.runs.plan on the real offline default (config.yaml, validated and resolved as the
Snakefile does): which training runs the gradient figures need, how each is trained, and
what each gradient figure selects."""

import copy
from pathlib import Path

import pytest

from memloc.config import load_config
from memloc.core.data.source import DataSource
from memloc.core.paths import DATASET_SPLITS
from memloc.runs.plan import (
    GradientFigure,
    appendix_datasets,
    data_source,
    fetch_source,
    gradient_figure,
    gradient_run_files,
    gradient_runs,
    noise_sweep_runs,
    primary_runs,
    run_inputs,
    train_settings,
)

ROOT = Path(__file__).resolve().parents[1]
SWEEP = [0.01, 0.05, 0.1, 0.2, 0.5, 0.99]  # config.yaml's figures.fig11.noise_rates


def run(noise, seed=0, dataset="fashion_mnist"):
    return {"dataset": dataset, "model": "resnet9", "noise": noise, "seed": seed}


@pytest.fixture
def config():
    return load_config(ROOT / "config.yaml")


def test_primary_runs_are_one_per_seed(config):
    assert primary_runs(config) == [run(0.1, 0), run(0.1, 1)]


def test_noise_sweep_runs_use_the_sweeps_seeds(config):
    assert noise_sweep_runs(config) == [run(n, 0) for n in SWEEP]


def test_gradient_runs_of_the_default_are_the_nine_noise_runs_trained(config):
    # primary (2 seeds), then the sweep's new noise rates (seed 0), then fig12's grid's new runs (seed 1)
    assert gradient_runs(config) == [
        run(0.1, 0), run(0.1, 1), run(0.01), run(0.05), run(0.2), run(0.5), run(0.99), run(0.05, 1), run(0.2, 1),
    ]


def test_gradient_run_files_follow_the_runs(config):
    files = gradient_run_files(config, "gradients")
    assert files[:2] == [
        "results/runs/fashion_mnist/resnet9/noise0.1/seed0/gradients.parquet",
        "results/runs/fashion_mnist/resnet9/noise0.1/seed1/gradients.parquet",
    ]
    assert len(files) == len(set(files)) == 9
    assert "results/runs/fashion_mnist/resnet9/noise0.01/seed0/metrics.parquet" in gradient_run_files(config, "metrics")


def test_appendix_grids_fall_back_to_the_primary_dataset(config):
    assert appendix_datasets(config) == {"fig12": "fashion_mnist"}  # no CIFAR-10, MNIST or SVHN configured
    assert appendix_datasets(config, ("fig15", "fig16", "fig17")) == {"fig15": "fashion_mnist"}
    config = copy.deepcopy(config)
    config["datasets"] = ["cifar10", "svhn"]
    assert appendix_datasets(config) == {"fig12": "cifar10", "fig14": "svhn"}


def test_more_datasets_add_their_grids(config):
    config = copy.deepcopy(config)
    config["datasets"] = ["fashion_mnist", "mnist"]
    runs = gradient_runs(config)
    assert len(runs) == 9 + 6  # MNIST: 3 noise rates x 2 seeds
    assert runs[-1] == run(0.2, 1, "mnist")


def test_train_settings_follow_the_data_variant(config):
    noisy = train_settings(config, "noise0.1", "1")
    assert noisy == {**config["train"], "seed": 1, "gradient_accounting": True, "group_names": ["clean", "noisy"]}
    assert (noisy["epochs"], noisy["batch_size"], noisy["peak_epoch"]) == (20, 128, 6)
    assert train_settings(config, "atypical", 0)["group_names"] == ["typical", "atypical"]
    # the data a job reads: the group column follows the variant too
    inputs = run_inputs(config, "fashion_mnist", "atypical")
    assert inputs == {"dataset": "fashion_mnist", "source": data_source(config), "test_subset": 1000,
                      "group_column": "is_atypical"}
    assert run_inputs(config, "fashion_mnist", "noise0.1")["group_column"] == "is_noisy"


def test_gradient_figures_select_the_primary_run(config):
    primary = {"dataset": "fashion_mnist", "model": "resnet9", "noise": 0.1}
    assert gradient_figure(config, "fig01") == GradientFigure("fig01", {**primary, "window": [6, 8]})
    assert gradient_figure(config, "fig02") == GradientFigure("fig02", primary)
    assert gradient_figure(config, "fig10").selection == {**primary, "window": 4}
    fig11 = gradient_figure(config, "fig11")
    assert fig11.figure == "fig11" and fig11.selection["noise_rates"] == SWEEP and fig11.selection["seeds"] == [0]


def test_gradient_grid_selects_every_model_noise_rate_and_seed(config):
    fig12 = gradient_figure(config, "fig12")
    assert fig12.figure == "gradient_grid"
    assert fig12.selection == {"dataset": "fashion_mnist", "models": ["resnet9"],  # all epochs: no window
                               "noise_rates": [0.05, 0.1, 0.2], "seeds": [0, 1]}


def test_data_source_names_dataclass_fields(config):
    # the jobs that read a dataset: fetch_dataset has downloaded and checked it before them
    # and written both splits to the cache they load
    assert data_source(config) == {"root": "data", "download": False, "verify_checksums": False, "definitions": {},
                                   "cache": DATASET_SPLITS}
    fetch = {**config, "download": True, "dataset_definitions": {"shapes": {"format": "npz", "path": "s.npz"}}}
    assert fetch_source(fetch) == {"root": "data", "download": True, "verify_checksums": True,
                                   "definitions": {"shapes": {"format": "npz", "path": "s.npz"}},
                                   "cache": DATASET_SPLITS}
    assert set(data_source(config)) == set(DataSource.__dataclass_fields__)
