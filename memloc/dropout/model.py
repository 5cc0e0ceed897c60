"""The settings of a model with dropout layers (`DropoutModelConfig`: a ModelConfig plus its
dropout, memloc.dropout.tied.DropoutConfig fields) and how it is built: the model of
memloc.core.models.build, then dropout layers where memloc.dropout.placement.add_dropout puts
them.  Training builds a run's model through `ModelConfig.build`, so a dropout run's is this."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from memloc.core.models.build import OVERRIDES, ModelConfig, base_model, with_builtin_layers
from memloc.dropout.placement import add_dropout
from memloc.dropout.tied import DropoutConfig


@dataclass
class DropoutModelConfig(ModelConfig):
    dropout: dict  # DropoutConfig fields (example-tied dropout or a tab3 baseline)

    def build(self) -> nn.Module:
        """The model with dropout layers after the modules that add_dropout names (ResNet-9:
        dropout.placement); the overrides and built-in layers as build_model attaches them."""
        inner = base_model(self)
        model = add_dropout(inner, DropoutConfig(**self.dropout), (self.in_channels, self.image_size, self.image_size))
        for attr in OVERRIDES.values():  # a rebuilt root (ResNet-9's Sequential) gets them too
            if not hasattr(model, attr):
                setattr(model, attr, getattr(inner, attr))
        return with_builtin_layers(self, model)  # on the final model: ResNet-9's names follow its dropouts
