"""The models a workflow config names (built in, or declared in `model_definitions`) and the
ModelConfig fields of each, for the plans and the config checks."""

from __future__ import annotations

from memloc.core.models.build import ModelConfig
from memloc.core.models.zoo import MODELS

# The shape a model is planned for when its dataset is not readable yet (a torchvision class
# the fetch_dataset job has not fetched): the layer names of the built-in models do not depend
# on it, and the DAG is planned again once the dataset is there.
UNSEEN_SHAPE = {"num_classes": 10, "in_channels": 3, "image_size": 32}


def model_names(config: dict) -> list[str]:
    """Every model a workflow config can name: the built-in ones and the declared ones."""
    return [*MODELS, *config["model_definitions"]]


def model_fields(config: dict, name: str) -> dict:
    """ModelConfig fields of model `name` in a validated workflow config, less the name and
    the dataset's (classes, channels, size): its model_settings as `settings`, and a declared
    model's factory and overrides (a built-in model has none)."""
    definition = config["model_definitions"].get(name, {"factory": None, "layers": None, "flip_modules": None,
                                                        "dropout_after": None})
    return {"settings": dict(config["model_settings"].get(name, {})),
            **{k: definition[k] for k in ("factory", "layers", "flip_modules", "dropout_after")}}


def planning_config(config: dict, name: str, dataset: str | None = None) -> ModelConfig:
    """The ModelConfig of model `name` on `dataset` (None: primary.dataset) in a workflow
    config, for building the model while planning (its layer names, the config checks)."""
    fields = {"name": name, **model_fields(config, name)}
    dataset = dataset or config["primary"]["dataset"]
    source = {"root": config["data_root"], "definitions": config["dataset_definitions"]}
    try:  # (the same DataSource settings as memloc.runs.plan.data_source's, as far as the shape goes)
        return ModelConfig.for_dataset(dataset, source, **fields)
    except KeyError:  # not readable yet (memloc.core.data.catalog.UnknownDataset)
        return ModelConfig(**fields, **UNSEEN_SHAPE)
