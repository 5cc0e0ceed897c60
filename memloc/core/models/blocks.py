"""The building blocks of ResNet-9, shared by the model builders and the example-tied
dropout layer (which is inserted after ConvBN blocks)."""

from __future__ import annotations

from torch import nn


class ConvBN(nn.Sequential):
    """conv (no bias) -> BatchNorm -> ReLU: one parameterized layer of ResNet-9."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, padding: int | None = None):
        padding = kernel // 2 if padding is None else padding
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class Residual(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor
