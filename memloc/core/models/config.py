"""The models a workflow config names (built in, or declared in `model_definitions`) and the
ModelConfig fields of each, for the plans and the config checks."""

from __future__ import annotations

from memloc.core.models.build import ModelConfig
from memloc.core.models.zoo import MODELS


def model_names(config: dict) -> list[str]:
    """Every model a workflow config can name: the built-in ones and the declared ones."""
    return [*MODELS, *config.get("model_definitions", {})]


def model_fields(config: dict, name: str) -> dict:
    """ModelConfig fields of model `name` in a validated workflow config, less the name and
    the dataset's (classes, channels, size): a built-in model's model_settings, or a declared
    model's definition with its model_settings as `settings`."""
    settings = dict(config.get("model_settings", {}).get(name, {}))
    definition = config.get("model_definitions", {}).get(name)
    if definition is None:
        return settings
    return {"factory": definition["factory"], "settings": settings,
            **{k: definition.get(k) for k in ("layers", "flip_modules", "dropout_after")}}


def planning_config(config: dict, name: str, dataset: str | None = None) -> ModelConfig:
    """The ModelConfig of model `name` on `dataset` (None: primary.dataset) in a workflow
    config, for building the model while planning (its layer names, the config checks)."""
    fields = {"name": name, **model_fields(config, name)}
    dataset = dataset or config.get("primary", {}).get("dataset")
    source = {"root": config.get("data_root", "data"), "definitions": config.get("dataset_definitions") or {}}
    try:  # (the same DataSource settings as memloc.runs.plan.data_source's, as far as the shape goes)
        return ModelConfig.for_dataset(dataset, source, **fields)
    except KeyError:  # no dataset (a partial config): the ModelConfig defaults
        return ModelConfig(**fields)
