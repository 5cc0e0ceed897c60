"""Models: the built-in ones (ResNet-9, ResNet-50, ViT-small) and those declared in the
config (`model_definitions`: a factory, memloc.core.model_factory), and their layers.

A *layer* is the unit that gradient accounting, rewinding and retraining act on: derived
from the module tree by a default rule, or named (memloc.core.module_tree, whose docstring
states the rule).  The built-in models keep their historical layers (`builtin_layers`):
ResNet-9's 8 conv-BN blocks and final Linear (layer1..layer9), ResNet-50's stem (conv1 +
bn1), layer1-4 and fc, the ViT's embedding (patch conv + class token + position
embedding), blockN and head (final norm + classifier).

`build_model` attaches the overrides to the built module as plain attributes, so that the
code that needs them reads them from the model alone: ``memloc_layers`` (model_layers),
``memloc_flip_modules`` (memloc.flipping's candidate units) and ``memloc_dropout_after``
(memloc.core.dropout_placement); None = the default rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from memloc.core.blocks import ConvBN, Residual, Scale
from memloc.core.dropout_placement import add_dropout
from memloc.core.model_factory import call_factory
from memloc.core.module_tree import (  # noqa: F401 (Layer, model_layers, ...: imported from here)
    OVERRIDE,
    Layer,
    check_partition,
    declared_layers,
    layer_index_of_parameters,
    model_layers,
    named_modules_or_error,
    rule_layers,
)

MODELS = ("resnet9", "resnet50", "vit_small")  # the built-in models
OVERRIDES = {"layers": OVERRIDE, "flip_modules": "memloc_flip_modules", "dropout_after": "memloc_dropout_after"}


@dataclass
class ModelConfig:
    name: str = "resnet9"
    num_classes: int = 10
    in_channels: int = 3
    image_size: int = 32
    width: float = 1.0  # ResNet-9 channel multiplier
    # ViT-small (the paper's: dim 512, depth 6, heads 8, patch 2 on 32x32)
    patch_size: int = 2
    dim: int = 512
    depth: int = 6
    heads: int = 8
    mlp_dim: int = 512
    extra: dict = field(default_factory=dict)
    # a model declared in the config (model_definitions.<name>): its factory spec (file
    # paths absolute, memloc.config), its model_settings (the factory's keyword arguments)
    # and module names overriding the rules of OVERRIDES (None: the default rule)
    factory: str | None = None
    settings: dict = field(default_factory=dict)
    layers: list[str] | dict[str, list[str]] | None = None
    flip_modules: list[str] | None = None
    dropout_after: list[str] | None = None

    @classmethod
    def for_dataset(cls, dataset: str, source: dict | None = None, **settings) -> ModelConfig:
        """The config of a model for `dataset`: classes, channels and image size from
        memloc.core.datasets.dataset_info (a built-in, or one declared in source["definitions"];
        source: DataSource settings), the rest (name, width, ...) from `settings`."""
        from memloc.core.datasets import dataset_info

        info = dataset_info(dataset, source)
        return cls(num_classes=info.num_classes, in_channels=info.channels, image_size=info.image_size, **settings)


def resnet9(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> nn.Sequential:
    """ResNet-9 as in the paper (the FFCV/airbench CIFAR variant), with a width multiplier.

    conv-BN-ReLU 64 -> 5x5/2 128 -> residual(128,128) -> 256 -> maxpool -> residual(256,256)
    -> 128 (3x3, no pad) -> adaptive max-pool -> linear without bias -> x0.2.
    """
    c = lambda n: max(1, int(round(n * width)))  # noqa: E731
    return nn.Sequential(
        ConvBN(in_channels, c(64)),
        ConvBN(c(64), c(128), kernel=5, stride=2, padding=2),
        Residual(nn.Sequential(ConvBN(c(128), c(128)), ConvBN(c(128), c(128)))),
        ConvBN(c(128), c(256)),
        nn.MaxPool2d(2),
        Residual(nn.Sequential(ConvBN(c(256), c(256)), ConvBN(c(256), c(256)))),
        ConvBN(c(256), c(128), padding=0),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(c(128), num_classes, bias=False),
        Scale(0.2),
    )


def resnet50(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> nn.Module:
    """torchvision's ResNet-50; for small images (<= 64 px) the stem is the CIFAR one
    (3x3 stride-1 conv, no max-pool), since a 7x7/2 conv + pool leaves 8x8 of a 32x32 image
    before the first block."""
    from torchvision.models import resnet50 as tv_resnet50

    model = tv_resnet50(weights=None, num_classes=num_classes)
    if image_size <= 64:
        model.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    return model


def vit_small(cfg: ModelConfig) -> nn.Module:
    """torchvision's VisionTransformer at the paper's small-image size, any input channels."""
    from torchvision.models import VisionTransformer

    model = VisionTransformer(
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        num_layers=cfg.depth,
        num_heads=cfg.heads,
        hidden_dim=cfg.dim,
        mlp_dim=cfg.mlp_dim,
        num_classes=cfg.num_classes,
    )
    if cfg.in_channels != 3:
        model.conv_proj = nn.Conv2d(cfg.in_channels, cfg.dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)
    return model


def _base_model(cfg: ModelConfig) -> nn.Module:
    """The model without dropout layers: a declared model's factory, or a built-in one."""
    if cfg.factory is not None:
        return call_factory(cfg.factory, cfg.num_classes, cfg.in_channels, cfg.image_size, cfg.settings,
                            key=f"model_definitions.{cfg.name}.factory")
    if cfg.name == "resnet9":
        return resnet9(cfg.num_classes, cfg.in_channels, cfg.width)
    if cfg.name == "resnet50":
        return resnet50(cfg.num_classes, cfg.in_channels, cfg.image_size)
    if cfg.name == "vit_small":
        return vit_small(cfg)
    raise ValueError(f"unknown model {cfg.name!r}; known: {', '.join(MODELS)}, or one with a factory "
                     f"(config model_definitions)")


def builtin_layers(name: str, model: nn.Module) -> dict[str, list[str]]:
    """The historical layers of a built-in model, {layer name: [module / parameter names]}
    (memloc.core.module_tree.declared_layers); each a union of consecutive rule layers."""
    if name == "resnet9":  # the rule's layers (conv-BN blocks, Linear), numbered
        return {f"layer{i + 1}": layer.paths for i, layer in enumerate(rule_layers(model))}
    if name == "resnet50":
        return {"stem": ["conv1", "bn1"], **{f"layer{i}": [f"layer{i}"] for i in range(1, 5)}, "fc": ["fc"]}
    blocks = [f"encoder.layers.{n}" for n, _ in model.encoder.layers.named_children()]
    return {
        "embedding": ["conv_proj", "class_token", "encoder.pos_embedding"],
        **{f"block{i + 1}": [b] for i, b in enumerate(blocks)},
        "head": ["encoder.ln", "heads"],
    }


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


def build_model(cfg: ModelConfig) -> nn.Module:
    """The model of `cfg` with its overrides attached (module docstring) and, where
    cfg.extra["dropout"] says so, dropout layers after the modules that
    memloc.core.dropout_placement.add_dropout names (ResNet-9: dropout.placement)."""
    model = _base_model(cfg)
    for field_name, attr in OVERRIDES.items():
        setattr(model, attr, getattr(cfg, field_name))
    check_overrides(model, f"model_definitions.{cfg.name}")
    if cfg.extra.get("dropout"):  # example-tied dropout or a tab3 baseline
        inner = model
        model = add_dropout(model, cfg.extra["dropout"], (cfg.in_channels, cfg.image_size, cfg.image_size))
        for attr in OVERRIDES.values():  # a rebuilt root (ResNet-9's Sequential) gets them too
            if not hasattr(model, attr):
                setattr(model, attr, getattr(inner, attr))
    if cfg.factory is None and cfg.layers is None:  # on the final model: ResNet-9's names follow its dropouts
        model.memloc_layers = builtin_layers(cfg.name, model)
    return model


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


def meta_model(cfg: ModelConfig) -> nn.Module:
    """The model built on the meta device: its structure (layers, module names) without
    allocating or initializing anything, for planning and config checks.  A factory that
    cannot build there (one that reads tensor values) builds on the CPU instead."""
    try:
        with torch.device("meta"):
            return build_model(cfg)
    except Exception:
        if cfg.factory is None:
            raise
        return build_model(cfg)  # its error, if any, is the factory's own
