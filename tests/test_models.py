"""Models: output shapes, and layers that partition the parameters."""

import pytest
import torch
from torch import nn

from memloc.core.models import ModelConfig, build_model, model_layers, resnet9


@pytest.mark.parametrize(
    "cfg,layers",
    [
        (ModelConfig("resnet9", 10, 3, 32, width=0.25), [f"layer{i}" for i in range(1, 10)]),
        (ModelConfig("resnet9", 7, 1, 28, width=0.125), [f"layer{i}" for i in range(1, 10)]),
        (ModelConfig("resnet50", 10, 1, 28), ["stem", "layer1", "layer2", "layer3", "layer4", "fc"]),
        (
            ModelConfig("vit_small", 10, 3, 32, patch_size=4, dim=32, depth=3, heads=4, mlp_dim=64),
            ["embedding", "block1", "block2", "block3", "head"],
        ),
    ],
)
def test_shapes_and_layer_partition(cfg, layers):
    model = build_model(cfg)
    x = torch.randn(2, cfg.in_channels, cfg.image_size, cfg.image_size)
    assert model(x).shape == (2, cfg.num_classes)
    found = model_layers(model)
    assert [layer.name for layer in found] == layers
    ids = [id(p) for layer in found for p in layer.parameters()]
    assert len(ids) == len(set(ids))  # no parameter in two layers
    assert set(ids) == {id(p) for p in model.parameters()}  # every parameter in one
    assert all(layer.numel() > 0 for layer in found)


def test_resnet9_matches_the_paper():
    model = resnet9(10, 3, width=1.0)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 128, 128, 256, 256, 256, 128]
    assert convs[1].kernel_size == (5, 5) and convs[1].stride == (2, 2)
    assert convs[-1].padding == (0, 0)
    linear = model_layers(model)[-1].modules[0]
    assert isinstance(linear, nn.Linear) and linear.bias is None
    half = resnet9(10, 3, width=0.5)
    assert [m.out_channels for m in half.modules() if isinstance(m, nn.Conv2d)][0] == 32


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'resnet18'"):
        build_model(ModelConfig("resnet18"))
