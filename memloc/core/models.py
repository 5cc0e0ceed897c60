"""Models (ResNet-9, ResNet-50, ViT-small) and their partition into layers.

A *layer* is the unit that gradient accounting, rewinding and retraining act on.  Layers
are derived from the module structure (`model_layers`): for ResNet-9 every ConvBN block
and the final Linear (9 layers), for ResNet-50 the stem, layer1-4 and fc, for the ViT the
embedding, each transformer block and the head.  Every parameter belongs to exactly one
layer, which `model_layers` checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from memloc.core.blocks import ConvBN, Residual, Scale
from memloc.core.tied_dropout import add_dropout

MODELS = ("resnet9", "resnet50", "vit_small")  # the names build_model knows


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

    @classmethod
    def for_dataset(cls, dataset: str, **settings) -> ModelConfig:
        """The config of a model for `dataset`: classes, channels and image size from
        memloc.core.data.DATASETS, the rest (name, width, ...) from `settings`."""
        from memloc.core.data import DATASETS

        _, num_classes, channels, size = DATASETS[dataset]
        return cls(num_classes=num_classes, in_channels=channels, image_size=size, **settings)


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


def build_model(cfg: ModelConfig) -> nn.Module:
    if cfg.name == "resnet9":
        model = resnet9(cfg.num_classes, cfg.in_channels, cfg.width)
        if cfg.extra.get("dropout"):  # example-tied dropout or a tab3 baseline (where: dropout.placement)
            model = add_dropout(model, cfg.extra["dropout"])
        return model
    if cfg.extra.get("dropout"):
        raise ValueError(f"dropout layers (extra['dropout']) exist for resnet9 only, not {cfg.name!r}")
    if cfg.name == "resnet50":
        return resnet50(cfg.num_classes, cfg.in_channels, cfg.image_size)
    if cfg.name == "vit_small":
        return vit_small(cfg)
    raise ValueError(f"unknown model {cfg.name!r}; known: {', '.join(MODELS)}")


@dataclass
class Layer:
    """A named group of modules; its parameters are those of its modules."""

    name: str
    modules: list[nn.Module]

    def named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for m in self.modules for n, p in m.named_parameters()]

    def parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_parameters()]

    def numel(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _resnet9_layers(model: nn.Module) -> list[Layer]:
    # every ConvBN block, then every Linear that is not inside one, in forward order
    units = [m for m in model.modules() if isinstance(m, (ConvBN, nn.Linear))]
    return [Layer(f"layer{i + 1}", [m]) for i, m in enumerate(units)]


def _torchvision_resnet_layers(model: nn.Module) -> list[Layer]:
    stem = [m for n, m in model.named_children() if n in ("conv1", "bn1")]
    layers = [Layer("stem", stem)]
    layers += [Layer(n, [m]) for n, m in model.named_children() if n.startswith("layer")]
    layers.append(Layer("fc", [model.fc]))
    return layers


class _ParamHolder(nn.Module):
    """Wraps bare parameters (ViT's class token, positional embedding) as a module."""

    def __init__(self, **params: nn.Parameter):
        super().__init__()
        for name, p in params.items():
            self.register_parameter(name, p)


def _vit_layers(model: nn.Module) -> list[Layer]:
    embed = Layer(
        "embedding",
        [model.conv_proj, _ParamHolder(class_token=model.class_token, pos_embedding=model.encoder.pos_embedding)],
    )
    blocks = [Layer(f"block{i + 1}", [blk]) for i, blk in enumerate(model.encoder.layers)]
    head = Layer("head", [model.encoder.ln, model.heads])
    return [embed, *blocks, head]


def model_layers(model: nn.Module) -> list[Layer]:
    """The model's layers in forward order; checks that they partition its parameters."""
    if isinstance(model, nn.Sequential) and any(isinstance(m, ConvBN) for m in model.modules()):
        layers = _resnet9_layers(model)
    elif hasattr(model, "layer4") and hasattr(model, "fc"):
        layers = _torchvision_resnet_layers(model)
    elif hasattr(model, "encoder") and hasattr(model, "conv_proj"):
        layers = _vit_layers(model)
    else:
        raise ValueError(f"do not know how to split {type(model).__name__} into layers")
    seen: dict[int, str] = {}
    for layer in layers:
        for _, p in layer.named_parameters():
            if id(p) in seen:
                raise AssertionError(f"parameter in both {seen[id(p)]} and {layer.name}")
            seen[id(p)] = layer.name
    missing = [n for n, p in model.named_parameters() if id(p) not in seen]
    if missing:
        raise AssertionError(f"parameters in no layer: {missing}")
    return layers


def layer_index_of_parameters(model: nn.Module) -> list[int]:
    """For each parameter of model.parameters(), in order, the index of its layer."""
    owner = {id(p): i for i, layer in enumerate(model_layers(model)) for p in layer.parameters()}
    return [owner[id(p)] for p in model.parameters()]
