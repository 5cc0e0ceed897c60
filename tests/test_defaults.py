"""One source for every default: the schema (filled in by snakemake.utils.validate) writes
them, and no settings object has one of its own: each is built from the resolved config by the
plans (memloc.*.plan), every field given.  And the nulls that mean "another key's value" are
resolved once (memloc.config)."""

import copy
import dataclasses
from pathlib import Path

import pytest
import torch
from snakemake.utils import validate

from memloc.atypical import plan as atypical_plan
from memloc.atypical.cscores import HoldoutConfig
from memloc.config import SCHEMA, load_config, resolve_config
from memloc.config_checks import check_config
from memloc.core.data.inputs import RunInputs
from memloc.core.data.source import DataSource
from memloc.core.device import Compute
from memloc.core.models.build import ModelConfig
from memloc.core.train.config import TrainConfig
from memloc.dropout import plan as dropout_plan
from memloc.dropout.model import DropoutModelConfig
from memloc.dropout.tied import DropoutConfig
from memloc.flipping import plan as flipping_plan
from memloc.flipping.objective import FlipConfig
from memloc.layers import plan as layers_plan
from memloc.plan.compute import compute_settings
from memloc.report import plan as report_plan
from memloc.report.criteria import Setting
from memloc.runs import plan as runs_plan

ROOT = Path(__file__).resolve().parents[1]
# Every settings object the workflow's jobs build (a job gets its fields as rule parameters).
SETTINGS = (TrainConfig, ModelConfig, DropoutModelConfig, DropoutConfig, FlipConfig, HoldoutConfig, DataSource,
            RunInputs, Compute, Setting)


@pytest.fixture(scope="module")
def defaults():
    """The config of an empty config file: every value a schema default."""
    config = {}
    validate(config, str(SCHEMA))
    return config


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__name__)
def test_no_settings_object_has_a_default_of_its_own(cls):
    with_default = [f.name for f in dataclasses.fields(cls)
                    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
    assert not with_default, f"{cls.__name__} fields with a default (the schema's job): {with_default}"


def test_every_settings_object_builds_from_a_config_that_sets_nothing(defaults):
    """The plans make every field of every settings object from the schema's defaults alone."""
    config = resolve_config(copy.deepcopy(defaults))
    p, variant = config["primary"], f"noise{config['primary']['noise']}"
    run = {"dataset": p["dataset"], "variant": variant, "seed": "0"}
    source = runs_plan.data_source(config)
    built = [
        TrainConfig(**runs_plan.train_settings(config, variant, 0)),
        TrainConfig(**layers_plan.retraining_settings(config, 0), group_names=("clean", "noisy")),
        TrainConfig(**flipping_plan.second_split_settings(config, 0).first),
        TrainConfig(**dropout_plan.train_settings(config, 0)),
        TrainConfig(**atypical_plan.holdout_settings(config), seed=0),
        ModelConfig.for_dataset(p["dataset"], source, **runs_plan.model_settings(config, p["model"])),
        HoldoutConfig(**config["atypical"]["holdout"]),
        FlipConfig(**flipping_plan.flip_settings(config, 0)),
        DataSource(**runs_plan.data_source(config)),
        DataSource(**runs_plan.fetch_source(config)),
        RunInputs("data.parquet", **runs_plan.run_inputs(config, p["dataset"], variant)),
        Setting(**report_plan.claim_setting(config)),
    ]
    for dropout_run in dropout_plan.dropout_runs(config):
        fields = dropout_plan.model_settings(config, dropout_run["model"], dropout_run["dropout"], dropout_run["seed"])
        built.append(DropoutConfig(**fields["dropout"]))
        built.append(DropoutModelConfig.for_dataset(dropout_run["dataset"], runs_plan.data_source(config), **fields))
    for rule in ("train", "rewind_layers", "flip_shard"):
        compute = compute_settings(config, rule, run)
        built.append(Compute(compute["precision"], compute["compile"], compute["deterministic"]))
        assert compute["job"].startswith(f"rule {rule} (dataset=")
    assert {type(s) for s in built} == set(SETTINGS)
    assert built[0].gradient_accounting and not built[1].gradient_accounting
    model = built[5].build()  # the primary model of the default config, for CIFAR-10's images
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_every_train_key_is_a_train_config_field(defaults):
    # rules pass config["train"] as TrainConfig fields: a schema key without a field would fail in a job
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(defaults["train"]) <= fields
    assert set(defaults["atypical"]["holdout"]) == {f.name for f in dataclasses.fields(HoldoutConfig)}
    assert set(flipping_plan.FLIP_SETTINGS) == {f.name for f in dataclasses.fields(FlipConfig)} - {"seed"}


def test_default_run_keeps_population_batch_64():
    # the schema default is 128 (the code's old 64 had drifted); the offline default sets 64
    assert load_config(ROOT / "config.yaml")["flipping"]["population_batch"] == 64


def test_nulls_are_resolved_once_to_the_values_they_stand_for(defaults):
    config = resolve_config(copy.deepcopy(defaults))
    train = config["train"]
    assert config["dropout"]["epochs"] == train["epochs"]
    assert config["rewinding"]["seeds"] == config["retraining"]["seeds"] == config["seeds"]
    ss = config["detection"]["second_split"]
    assert (ss["epochs_first"], ss["epochs_second"]) == (train["epochs"], train["epochs"])
    assert (ss["peak_epoch_first"], ss["peak_epoch_second"]) == (train["peak_epoch"], train["peak_epoch"])
    assert config["rewinding"]["seeds"] is not config["seeds"]  # copies: no two keys share a list
    assert resolve_config(copy.deepcopy(config)) == config  # idempotent
    assert config["rewinding"]["epochs"] is None  # null = every checkpoint (not another key's value)


def test_set_values_are_kept(defaults):
    config = copy.deepcopy(defaults)
    config["dropout"]["epochs"] = 30
    config["retraining"]["seeds"] = [2]
    config["detection"]["second_split"]["peak_epoch_second"] = 3
    resolve_config(config)
    assert (config["dropout"]["epochs"], config["retraining"]["seeds"]) == (30, [2])
    assert config["detection"]["second_split"]["peak_epoch_second"] == 3


def test_checks_see_resolved_values(defaults):
    config = copy.deepcopy(defaults)
    config["data_root"], config["download"] = "/nonexistent", True  # data found "by download": not checked here
    config["detection"]["second_split"]["epochs_second"] = 5  # its peak stays null = train.peak_epoch (10)
    with pytest.raises(ValueError, match=r"second_split.peak_epoch_second = 10 \(null means train.peak_epoch\), "
                                         r"detection.second_split.epochs_second = 5 "):
        check_config(resolve_config(config))
