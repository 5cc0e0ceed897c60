"""memloc.layers.plan on the real offline default (config.yaml, loaded as the Snakefile
loads it: memloc.config.load_config): which runs are rewound and retrained, which files each
layer table collects, and what each layer figure selects."""

import copy
from pathlib import Path

import pytest
import yaml

from memloc.config import load_config
from memloc.core.train.config import TrainConfig
from memloc.layers.plan import (
    LayerFigure,
    LayerTables,
    layer_figure,
    layer_names,
    layer_tables,
    retrained_layers,
    retraining_runs,
    retraining_settings,
    rewinding_runs,
)

ROOT = Path(__file__).resolve().parents[1]
RESNET9_LAYERS = [f"layer{i}" for i in range(1, 10)]  # 9 ConvBN layers (the residual blocks' included)


def run(noise, seed=0, dataset="fashion_mnist"):
    return {"dataset": dataset, "model": "resnet9", "noise": noise, "seed": seed}


@pytest.fixture
def config():
    # as the Snakefile has it: validated against workflow/schemas/config.schema.yaml
    # (snakemake.utils.validate fills in the defaults), then its nulls resolved
    return load_config(ROOT / "config.yaml")


def test_rewinding_runs_of_the_default(config):
    # fig03's primary run first, then fig15's grid on the primary dataset (no CIFAR-10 configured)
    assert rewinding_runs(config) == [run(0.1), run(0.05), run(0.2)]


def test_retraining_runs_of_the_default(config):
    # fig04's primary run (no MNIST configured), then fig18's noise rates
    assert retraining_runs(config) == [run(0.1), run(0.05), run(0.2)]


def test_null_seeds_mean_every_seed(tmp_path):
    settings = yaml.safe_load((ROOT / "config.yaml").read_text())
    settings["rewinding"]["seeds"] = None
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(settings))
    config = load_config(tmp_path / "config.yaml")
    assert rewinding_runs(config) == [run(n, s) for n in (0.1, 0.05, 0.2) for s in (0, 1)]
    assert layer_figure(config, "fig03").selection["seeds"] == [0, 1]
    assert layer_figure(config, "fig04").selection["seeds"] == [0]  # retraining.seeds stays [0]


def test_retraining_adds_mnist_for_fig04(config):
    config = copy.deepcopy(config)
    config["datasets"] = ["fashion_mnist", "mnist"]
    runs = retraining_runs(config)
    assert runs[:2] == [run(0.1), run(0.1, dataset="mnist")]  # fig04: primary + MNIST
    assert len(runs) == 2 * 3  # fig18: 2 datasets x 3 noise rates, no duplicates


def test_layer_names_of_resnet9(config):
    assert layer_names(config, "resnet9") == RESNET9_LAYERS


def test_rewinding_tables(config):
    tables = layer_tables(config, "rewinding")
    assert isinstance(tables, LayerTables)
    assert tables.runs == rewinding_runs(config)
    assert tables.files == [
        f"results/runs/fashion_mnist/resnet9/noise{n}/seed0/rewinding.parquet" for n in ("0.1", "0.05", "0.2")
    ]
    atypical = layer_tables(config, "atypical_rewinding")
    assert atypical.files == ["results/runs/fashion_mnist/resnet9/atypical/seed0/rewinding.parquet"]
    assert atypical.runs == [{**run(0.0), "variant": "atypical"}]


def test_retraining_tables_one_file_per_run(config):
    tables = layer_tables(config, "retraining")  # one job per run retrains all its layers
    assert len(tables.files) == len(tables.runs) == 3
    assert tables.files[0] == "results/runs/fashion_mnist/resnet9/noise0.1/seed0/retraining.parquet"
    assert tables.files[1] == "results/runs/fashion_mnist/resnet9/noise0.05/seed0/retraining.parquet"
    assert tables.runs[0] == run(0.1) and tables.runs[1] == run(0.05)
    atypical = layer_tables(config, "atypical_retraining")
    assert atypical.files == ["results/runs/fashion_mnist/resnet9/atypical/seed0/retraining.parquet"]


def test_retraining_a_subset_of_layers(config):
    config["retraining"]["layers"] = ["layer9", "layer1"]  # retrained in model order
    assert retrained_layers(config, "resnet9") == ["layer1", "layer9"]
    assert len(layer_tables(config, "retraining").files) == 3  # still one job per run
    assert len(layer_tables(config, "rewinding").files) == len(rewinding_runs(config))  # rewinding: every layer
    config["retraining"]["layers"] = ["layer1", "fc"]
    with pytest.raises(ValueError, match=r"retraining.layers: \['fc'\] are not layers of resnet9"):
        retrained_layers(config, "resnet9")  # the retraining job's params (and the config check) call it


def test_fig03_and_the_rewinding_grid(config):
    rewound = dict(models=["resnet9"], seeds=[0])
    assert layer_figure(config, "fig03") == LayerFigure(
        "fig03", "rewinding", dict(dataset="fashion_mnist", noise=0.1, **rewound)
    )
    assert layer_figure(config, "fig15") == LayerFigure(
        "rewinding_grid", "rewinding", dict(dataset="fashion_mnist", noise_rates=[0.05, 0.1, 0.2], **rewound)
    )
    with pytest.raises(KeyError):  # fig16 draws MNIST, which the default does not configure
        layer_figure(config, "fig16")


def test_fig04_and_fig18_selections(config):
    fig04 = layer_figure(config, "fig04")
    assert (fig04.figure, fig04.table) == ("retraining", "retraining")
    assert fig04.selection == dict(datasets=["fashion_mnist"], noise_rates=[0.1], model="resnet9", seeds=[0])
    fig18 = layer_figure(config, "fig18")
    assert fig18.selection == dict(datasets=["fashion_mnist"], noise_rates=[0.05, 0.1, 0.2], model="resnet9", seeds=[0])


def test_fig09_and_fig19_read_the_atypical_tables(config):
    fig09 = layer_figure(config, "fig09")
    assert fig09 == LayerFigure(
        "fig03", "atypical_rewinding", dict(models=["resnet9"], seeds=[0], dataset="fashion_mnist", noise=0.0)
    )
    fig19 = layer_figure(config, "fig19")
    assert fig19 == LayerFigure(
        "retraining",
        "atypical_retraining",
        dict(datasets=["fashion_mnist"], noise_rates=[0.0], model="resnet9", seeds=[0]),
    )


def test_retraining_settings(config):
    settings = retraining_settings(config, "1")  # wildcards are strings
    # the schedule is retraining's; momentum, weight decay, eval batch size and augmentation are train's
    schedule = {k: config["retraining"][k] for k in ("epochs", "batch_size", "peak_lr", "peak_epoch")}
    assert settings == {**schedule, "momentum": 0.9, "weight_decay": 5.0e-4, "eval_batch_size": 1024, "seed": 1,
                        "gradient_accounting": False, "augment": {"crop_padding": 0, "hflip": False}}
    # TrainConfig fields but the groups' names, the retrained run's: recalibrate_bn and seeds go elsewhere
    TrainConfig(**settings, group_names=("clean", "noisy"))
    assert isinstance(config["retraining"]["recalibrate_bn"], bool)  # the schema fills it in
