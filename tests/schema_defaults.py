"""Settings objects that tests build by hand, every field not given filled in from the schema's
defaults (workflow/schemas/config.schema.yaml, the only place a default is written) through the
plans that make them for the workflow's jobs."""

import copy
import functools

from snakemake.utils import validate

from memloc.atypical.cscores import HoldoutConfig
from memloc.config import SCHEMA, resolve_config
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
from memloc.runs import plan as runs_plan


@functools.cache
def _defaults() -> dict:
    config = {}
    validate(config, str(SCHEMA))
    return resolve_config(config)


def default_config() -> dict:
    """The config of an empty config file: every value a schema default (a fresh copy)."""
    return copy.deepcopy(_defaults())


def resolved_config(config: dict) -> dict:
    """`config` (a partial one, as a config file may be) validated against the schema, its
    defaults filled in, and resolved: what the Snakefile plans with."""
    config = copy.deepcopy(config)
    validate(config, str(SCHEMA))
    return resolve_config(config)


def train_config(**fields) -> TrainConfig:
    """A label-noise run's TrainConfig (runs.plan.train_settings, seed 0) with `fields` replaced."""
    return TrainConfig(**{**runs_plan.train_settings(default_config(), "noise0.1", 0), **fields})


def model_settings(name: str, **fields) -> dict:
    """ModelConfig fields of model `name` less the dataset's shape (runs.plan.model_settings);
    a keyword that is no ModelConfig field is a setting (model_settings.<name>: ResNet-9's
    width, a factory's keyword arguments)."""
    config = default_config()
    base = runs_plan.model_settings(config, name) if name in config["model_settings"] else {
        "name": name, "settings": {}, "factory": None, "layers": None, "flip_modules": None, "dropout_after": None}
    settings = {**base["settings"], **{k: v for k, v in fields.items() if k not in base}}
    return {**base, **{k: v for k, v in fields.items() if k in base}, "settings": fields.get("settings", settings)}


def model_fields(name: str, num_classes: int, in_channels: int, image_size: int, **fields) -> dict:
    """model_settings with the dataset's shape: every ModelConfig field."""
    shape = {"num_classes": num_classes, "in_channels": in_channels, "image_size": image_size}
    return {**model_settings(name, **fields), **shape}


def model_config(name: str, num_classes: int, in_channels: int, image_size: int, **fields) -> ModelConfig:
    return ModelConfig(**model_fields(name, num_classes, in_channels, image_size, **fields))


def dropout_fields(**fields) -> dict:
    """DropoutConfig fields: the study's example-tied dropout of seed 0 (dropout.plan), `fields` replaced."""
    config = default_config()
    name = dropout_plan.dropout_name("example_tied", config["dropout"]["p_gen"], config["dropout"]["p_mem"])
    dropout = dropout_plan.model_settings(config, "resnet9", name, 0)["dropout"]
    return {**dropout, **fields}


def dropout_config(**fields) -> DropoutConfig:
    return DropoutConfig(**dropout_fields(**fields))


def dropout_model_config(name: str, num_classes: int, in_channels: int, image_size: int, dropout: dict | None = None,
                         **fields) -> DropoutModelConfig:
    """A model with dropout layers: `dropout` replaces fields of dropout_fields()."""
    return DropoutModelConfig(**model_fields(name, num_classes, in_channels, image_size, **fields),
                              dropout=dropout_fields(**(dropout or {})))


def data_source(root: str, **fields) -> DataSource:
    """Where the datasets come from: `root`, the schema's download / checksum settings, no
    declared dataset and no cache, `fields` replaced."""
    config = default_config()
    return DataSource(**{"root": root, "download": config["download"], "verify_checksums": config["verify_checksums"],
                         "definitions": {}, "cache": None, **fields})


def source_fields(root: str, **fields) -> dict:
    """data_source's fields, as the jobs take them."""
    source = data_source(root, **fields)
    return {k: getattr(source, k) for k in ("root", "download", "verify_checksums", "definitions", "cache")}


def run_inputs(table, dataset: str, source: dict, test_subset: int | None, group_column: str = "is_noisy"):
    return RunInputs(table, dataset, source, test_subset, group_column)


def flip_config(**fields) -> FlipConfig:
    """The flipping of training seed 0 (flipping.plan.flip_settings), `fields` replaced."""
    return FlipConfig(**{**flipping_plan.flip_settings(default_config(), 0), **fields})


def holdout_config(**fields) -> HoldoutConfig:
    return HoldoutConfig(**{**default_config()["atypical"]["holdout"], **fields})


def compute(**fields) -> Compute:
    """How a process computes: the schema's precision, compile and determinism, `fields` replaced."""
    config = default_config()
    return Compute(**{"precision": config["precision"], "compile": config["compile"],
                      "deterministic": config["deterministic"], **fields})
