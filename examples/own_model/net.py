"""A small custom CNN for memloc's "own model" example (not a ResNet): a VGG-style stack of
conv-BN-ReLU blocks with two max-pools, global average pooling and a linear classifier.

memloc finds its layers by the default rule (memloc.core.models.layer_rule): `features` is a
container of repeated blocks, so each block is a layer (features.0 .. features.3), and the
classifier is the last; the flipping units are each block's output channels and the
classifier's weights; dropout goes after each block.  Nothing here knows memloc.

At 28x28 (Fashion-MNIST) with the default width it costs about as much as memloc's
width-0.25 ResNet-9 per image.
"""

from torch import nn


def block(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    """conv 3x3 (no bias: the BN shifts) -> BN -> ReLU [-> max-pool 2x2]."""
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, *([nn.MaxPool2d(2)] if pool else []))


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, width: int = 32):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            block(in_channels, w, pool=True),  # 28 -> 14
            block(w, 2 * w, pool=False),
            block(2 * w, 2 * w, pool=True),  # 14 -> 7
            block(2 * w, 4 * w, pool=False),
        )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(4 * w, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


def build(num_classes: int, in_channels: int, image_size: int, width: int = 32, **settings) -> nn.Module:
    """The factory memloc calls (config model_definitions.<name>.factory: "net.py:build");
    `width` and any other keys come from model_settings.<name>.  Global pooling makes the
    network independent of `image_size`."""
    if settings:
        raise TypeError(f"unknown settings of SmallCNN: {sorted(settings)}")
    return SmallCNN(num_classes, in_channels, width)
