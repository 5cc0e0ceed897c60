"""A model's settings (`ModelConfig`) and the model they describe (`build_model`): a built-in
one (memloc.core.models.zoo) or one declared in the config (`model_definitions`: a factory,
memloc.core.models.factory), with its layers.

`build_model` attaches the overrides to the built module as plain attributes, so that the
code that needs them reads them from the model alone: ``memloc_layers`` (model_layers),
``memloc_flip_modules`` (memloc.flipping's candidate units) and ``memloc_dropout_after``
(memloc.dropout.placement); None = the default rule.  A model with dropout layers is built
by memloc.dropout.model.DropoutModelConfig.build, through `base_model` and
`with_builtin_layers`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from memloc.core.data.catalog import dataset_info
from memloc.core.models.factory import call_factory
from memloc.core.models.layer_rule import (
    OVERRIDE,
    check_partition,
    declared_layers,
    named_modules_or_error,
    rule_layers,
)
from memloc.core.models.zoo import MODELS, builtin_layers, resnet9, resnet50, vit_small

OVERRIDES = {"layers": OVERRIDE, "flip_modules": "memloc_flip_modules", "dropout_after": "memloc_dropout_after"}


@dataclass
class ModelConfig:
    """A model's settings: which model, the shape of the data it is built for, its
    architecture settings and the module names that override the default rules (OVERRIDES).

    settings: model_settings.<name> of the config, the keyword arguments of a built-in
    architecture (ResNet-9's width; ViT-small's patch_size, dim, depth, heads, mlp_dim) or of a
    declared model's factory.  factory: a declared model's factory spec (model_definitions.<name>;
    file paths absolute, memloc.config), None for a built-in one; layers, flip_modules,
    dropout_after: its overrides (None: the default rule)."""

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    settings: dict
    factory: str | None
    layers: list[str] | dict[str, list[str]] | None
    flip_modules: list[str] | None
    dropout_after: list[str] | None

    @classmethod
    def for_dataset(cls, dataset: str, source: dict, **fields) -> ModelConfig:
        """The config of a model for `dataset`: classes, channels and image size from
        memloc.core.data.catalog.dataset_info (a built-in, or one declared in source["definitions"];
        source: DataSource settings), the other fields (name, settings, ...) from `fields`."""
        info = dataset_info(dataset, source)
        return cls(num_classes=info.num_classes, in_channels=info.channels, image_size=info.image_size, **fields)

    def build(self) -> nn.Module:
        """The model these settings describe (`build_model`)."""
        return build_model(self)


def _architecture(cfg: ModelConfig) -> nn.Module:
    """A declared model's factory, or a built-in architecture."""
    if cfg.factory is not None:
        return call_factory(cfg.factory, cfg.num_classes, cfg.in_channels, cfg.image_size, cfg.settings,
                            key=f"model_definitions.{cfg.name}.factory")
    if cfg.name == "resnet9":
        return resnet9(cfg.num_classes, cfg.in_channels, cfg.settings["width"])
    if cfg.name == "resnet50":
        return resnet50(cfg.num_classes, cfg.in_channels, cfg.image_size)
    if cfg.name == "vit_small":
        return vit_small(cfg.num_classes, cfg.in_channels, cfg.image_size, cfg.settings)
    raise ValueError(f"unknown model {cfg.name!r}; known: {', '.join(MODELS)}, or one with a factory "
                     f"(config model_definitions)")


def check_overrides(model: nn.Module, key: str) -> None:
    """That the model's override attributes name modules of it and that its layers (named,
    or by the rule) partition its parameters; errors name `key`.{layers, flip_modules,
    dropout_after}."""
    for field_name, attr in OVERRIDES.items():
        names = getattr(model, attr, None)
        if field_name == "layers":
            layers = rule_layers(model) if names is None else declared_layers(model, names, f"{key}.layers")
            check_partition(model, layers, f"{key}.layers" + (" (null: the default rule)" if names is None else ""))
        elif names is not None:
            named_modules_or_error(model, list(names), f"{key}.{field_name}")


def base_model(cfg: ModelConfig) -> nn.Module:
    """The architecture of `cfg` with its overrides attached (module docstring) and checked."""
    model = _architecture(cfg)
    for field_name, attr in OVERRIDES.items():
        setattr(model, attr, getattr(cfg, field_name))
    check_overrides(model, f"model_definitions.{cfg.name}")
    return model


def with_builtin_layers(cfg: ModelConfig, model: nn.Module) -> nn.Module:
    """`model` with a built-in model's historical layers (memloc.core.models.zoo.builtin_layers)
    where no layers are named, on the final model (ResNet-9's names follow its dropouts:
    memloc.dropout.model builds through here)."""
    if cfg.factory is None and cfg.layers is None:
        model.memloc_layers = builtin_layers(cfg.name, model)
    return model


def build_model(cfg: ModelConfig) -> nn.Module:
    """The model of `cfg`: its architecture, overrides and layers."""
    return with_builtin_layers(cfg, base_model(cfg))


def meta_model(cfg: ModelConfig) -> nn.Module:
    """The model built on the meta device: its structure (layers, module names) without
    allocating or initializing anything, for planning and config checks.  A factory that
    cannot build there (one that reads tensor values) builds on the CPU instead."""
    try:
        with torch.device("meta"):
            return cfg.build()
    except Exception:
        if cfg.factory is None:
            raise
        return cfg.build()  # its error, if any, is the factory's own
