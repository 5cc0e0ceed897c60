"""The settings objects the benchmarks build: every field from the offline default config
(config.yaml, validated and resolved as the Snakefile does) through the plans that make them
for the workflow's jobs, the benchmark's own choices replaced (no default is written here)."""

import functools
from pathlib import Path

from memloc.config import load_config
from memloc.core.device import Compute, use
from memloc.core.models.build import ModelConfig
from memloc.core.train.config import TrainConfig
from memloc.runs import plan as runs_plan

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def config() -> dict:
    return load_config(ROOT / "config.yaml")


def use_compute(**fields) -> None:
    """Compute as a job of config.yaml would (memloc.core.device.use), `fields` replaced."""
    c = config()
    use(Compute(**{"precision": c["precision"], "compile": c["compile"], "deterministic": c["deterministic"],
                   **fields}))


def train_config(**fields) -> TrainConfig:
    """A label-noise run's TrainConfig, `fields` replaced."""
    return TrainConfig(**{**runs_plan.train_settings(config(), f"noise{config()['primary']['noise']}", 0), **fields})


def model_fields(name: str, num_classes: int, in_channels: int, image_size: int, **settings) -> dict:
    """ModelConfig fields of a built-in model for images of this shape, its settings replaced."""
    fields = runs_plan.model_settings(config(), name)
    return {**fields, "settings": {**fields["settings"], **settings}, "num_classes": num_classes,
            "in_channels": in_channels, "image_size": image_size}


def model_config(name: str, num_classes: int, in_channels: int, image_size: int, **settings) -> ModelConfig:
    return ModelConfig(**model_fields(name, num_classes, in_channels, image_size, **settings))


def source_fields(root: str) -> dict:
    """DataSource fields of a job, the datasets under `root` and no cache."""
    return {**runs_plan.data_source(config()), "root": root, "cache": None}
