"""One source for every default: the schema (filled in by snakemake.utils.validate) writes
them; a dataclass default may exist for library use, but must not contradict the schema.
And the nulls that mean "another key's value" are resolved once (memloc.config)."""

import copy
import dataclasses
from pathlib import Path

import pytest
from snakemake.utils import validate

from memloc.atypical.cscores import HoldoutConfig
from memloc.config import SCHEMA, load_config, resolve_config
from memloc.config_checks import check_config
from memloc.core.data.source import DataSource
from memloc.core.models.build import ModelConfig
from memloc.core.train.config import TrainConfig
from memloc.dropout.tied import DropoutConfig
from memloc.flipping.objective import FlipConfig

ROOT = Path(__file__).resolve().parents[1]

# (dataclass, schema section, {field: key} where the names differ, the fields expected to
# have a schema key: so that a renamed key or field fails here instead of going unchecked)
SECTIONS = [
    (TrainConfig, ("train",), {}, {"epochs", "batch_size", "peak_lr", "peak_epoch", "momentum", "weight_decay",
                                   "eval_batch_size"}),
    (ModelConfig, ("model_settings", "resnet9"), {}, {"width"}),
    (ModelConfig, ("model_settings", "vit_small"), {}, {"patch_size", "dim", "depth", "heads", "mlp_dim"}),
    (HoldoutConfig, ("atypical", "holdout"), {}, {"models", "fraction", "seed", "scheme"}),
    (FlipConfig, ("flipping",), {}, {"max_removals", "noise_copies", "noise_scale", "population_batch",
                                     "resample_every", "examples_per_batch", "max_rows", "memory_gb"}),
    (DropoutConfig, ("dropout",), {}, {"p_gen", "p_mem", "placement", "drop_scale"}),
    (DataSource, (), {"root": "data_root"}, {"root", "download", "verify_checksums"}),
]


@pytest.fixture(scope="module")
def defaults():
    """The config of an empty config file: every value a schema default."""
    config = {}
    validate(config, str(SCHEMA))
    return config


def section_of(config, path):
    for key in path:
        config = config[key]
    return config


def field_defaults(cls):
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


@pytest.mark.parametrize("cls,path,renamed,expected", SECTIONS, ids=lambda v: getattr(v, "__name__", None))
def test_no_dataclass_default_contradicts_the_schema(defaults, cls, path, renamed, expected):
    section = section_of(defaults, path)
    matched = {}
    for name, value in field_defaults(cls).items():
        key = renamed.get(name, name)
        if key in section:
            matched[name] = (value, section[key])
    assert set(matched) == expected
    contradictions = {name: pair for name, pair in matched.items() if pair[0] != pair[1]}
    assert not contradictions, f"{cls.__name__} (code default, schema default) differ: {contradictions}"


def test_every_train_key_is_a_train_config_field(defaults):
    # rules pass config["train"] as TrainConfig(**...): a schema key without a field would fail in a job
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(defaults["train"]) <= fields
    assert set(defaults["atypical"]["holdout"]) <= {f.name for f in dataclasses.fields(HoldoutConfig)}
    for model, settings in defaults["model_settings"].items():
        assert set(settings) <= {f.name for f in dataclasses.fields(ModelConfig)}, model


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
