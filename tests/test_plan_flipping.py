"""memloc.flipping.plan on the real offline default (config.yaml, loaded as the Snakefile
loads it: memloc.config.load_config): which runs are flipped, the parts of the flipping
table, the settings of flip_shard and second_split, and the inputs of the auc table and fig05."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from memloc.config import load_config
from memloc.flipping import plan
from memloc.plan import resources

ROOT = Path(__file__).resolve().parents[1]
FLIP = "results/flipping/fashion_mnist/resnet9/noise0.1"


def run(seed):
    return {"dataset": "fashion_mnist", "model": "resnet9", "noise": 0.1, "seed": seed}


@pytest.fixture
def config():
    # as the Snakefile has it: validated against workflow/schemas/config.schema.yaml
    # (snakemake.utils.validate fills in the defaults), then its nulls resolved
    return load_config(ROOT / "config.yaml")


def test_flipped_runs_and_the_parts_of_the_flipping_table(config):
    assert plan.flip_runs(config) == [run(0), run(1)]  # the primary run of each flipping seed
    parts = plan.flip_parts(config)
    # 2 seeds x 2 shards: the 4 flip_shard jobs, seed-major as merge_flipping concatenates them
    assert [p.path for p in parts] == [f"{FLIP}/seed{s}/shard{k}.parquet" for s in (0, 1) for k in (0, 1)]
    assert [p.run for p in parts] == [run(0), run(0), run(1), run(1)]
    config["flipping"]["shards"] = 3
    assert len(plan.flip_parts(config)) == 6


def test_flip_settings_are_the_flip_config_fields_but_the_seed(config):
    from memloc.flipping.objective import FlipConfig

    settings = plan.flip_settings(config, "1")  # the seed: the {seed} wildcard's
    assert settings == {"max_removals": 50, "noise_copies": 5, "noise_scale": 0.01, "population_batch": 64,
                        "resample_every": 0, "examples_per_batch": 32, "max_rows": 2048, "memory_gb": None,
                        "accuracy_examples": None, "seed": 1}
    assert set(plan.FLIP_SETTINGS) == {f.name for f in dataclasses.fields(FlipConfig)} - {"seed"}
    assert FlipConfig(**settings).population_batch == 64


def test_second_split_settings_fill_in_the_train_schedule(config):
    settings = plan.second_split_settings(config, 1)
    # split A: the run's training (epochs_first / peak_epoch_first are null: train's 16 and 5)
    assert settings.first == {**config["train"], "seed": 1, "epochs": 20, "peak_epoch": 6,
                              "gradient_accounting": False, "group_names": ["clean", "noisy"]}
    assert plan.second_split(config) == {"fraction": 0.5, "seed": 0}
    assert settings.second == {"epochs": 8, "peak_epoch": 2}  # fine-tuning on split B
    assert settings == (settings.first, settings.second)
    assert plan.second_split_settings(config, "1") == settings  # as the {seed} wildcard gives it


def test_detection_inputs_by_seed(config):
    assert plan.flip_data_table(config) == "results/data/fashion_mnist/noise0.1.parquet"
    assert plan.detection_runs(config) == {
        s: {"examples": f"results/runs/fashion_mnist/resnet9/noise0.1/seed{s}/examples.parquet",
            "second_split": f"results/detection/fashion_mnist/resnet9/noise0.1/seed{s}/second_split.parquet"}
        for s in (0, 1)
    }


def test_fig05_selection_and_our_setting(config):
    assert plan.fig05_selection(config) == {"dataset": "fashion_mnist", "model": "resnet9", "noise": 0.1,
                                            "seeds": [0, 1]}
    assert plan.our_setting(config) == ("Fashion-MNIST (2,000 examples), ResNet-9 width 0.25, 10% noise, 20 epochs; "
                                        "100 clean + 100 noisy examples, 2 models")


def test_the_paper_preset_plans_its_30_models(config):
    paper = load_config(ROOT / "config" / "paper.yaml")
    # shards: null sizes the jobs by their work: a model's 2,000 examples are ~4 estimated GPU
    # minutes, less than memloc.plan.resources.JOB_MINUTES, so one job per model
    assert len(plan.flip_runs(paper)) == 30 and len(plan.flip_parts(paper)) == 30
    assert resources.work_minutes("flip_shard", paper, {"dataset": "cifar10", "model": "resnet9"}) < 10
    more = {**paper, "flipping": {**paper["flipping"], "examples_per_group": 10_000, "shards": None}}
    per_model = resources.work_minutes("flip_shard", {**more, "flipping": {**more["flipping"], "shards": 1}},
                                       {"dataset": "cifar10", "model": "resnet9"})
    assert resources.flip_shards(more) == int(per_model // resources.JOB_MINUTES) >= 4  # each >= 10 min of work
    assert plan.flip_settings(paper, 0)["population_batch"] == 128
    assert plan.second_split_settings(paper, 0).second == {"epochs": 50, "peak_epoch": paper["train"]["peak_epoch"]}
    assert plan.our_setting(paper).startswith("CIFAR-10 (full training set), ResNet-9 width 1")


def test_planning_imports_no_plotting_or_torch():
    # the plans run on every DAG parse; matplotlib, seaborn and torch would cost seconds each
    code = ("import sys, memloc.flipping.plan, memloc.dropout.plan; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'seaborn', 'torch'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
