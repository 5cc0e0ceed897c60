"""The built-in models (ResNet-9, ResNet-50, ViT-small) and their historical layers.

A *layer* is the unit that gradient accounting, rewinding and retraining act on: derived
from the module tree by a default rule, or named (memloc.core.models.layer_rule, whose
docstring states the rule).  The built-in models keep their historical layers
(`builtin_layers`): ResNet-9's 8 conv-BN blocks and final Linear (layer1..layer9),
ResNet-50's stem (conv1 + bn1), layer1-4 and fc, the ViT's embedding (patch conv + class
token + position embedding), blockN and head (final norm + classifier).
"""

from __future__ import annotations

from torch import nn

from memloc.core.models.blocks import ConvBN, Residual, Scale
from memloc.core.models.layer_rule import rule_layers

MODELS = ("resnet9", "resnet50", "vit_small")  # the built-in models


def resnet9(num_classes: int, in_channels: int, width: float) -> nn.Sequential:
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


def resnet50(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
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


def vit_small(num_classes: int, in_channels: int, image_size: int, settings: dict) -> nn.Module:
    """torchvision's VisionTransformer at the paper's small-image size, any input channels;
    settings: patch_size, dim, depth, heads, mlp_dim (the paper's: 2, 512, 6, 8, 512 on 32x32)."""
    from torchvision.models import VisionTransformer

    model = VisionTransformer(
        image_size=image_size,
        patch_size=settings["patch_size"],
        num_layers=settings["depth"],
        num_heads=settings["heads"],
        hidden_dim=settings["dim"],
        mlp_dim=settings["mlp_dim"],
        num_classes=num_classes,
    )
    if in_channels != 3:
        model.conv_proj = nn.Conv2d(in_channels, settings["dim"], kernel_size=settings["patch_size"],
                                    stride=settings["patch_size"])
    return model


def builtin_layers(name: str, model: nn.Module) -> dict[str, list[str]]:
    """The historical layers of a built-in model, {layer name: [module / parameter names]}
    (memloc.core.models.layer_rule.declared_layers); each a union of consecutive rule layers."""
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
