"""Models whose output depends on which examples a batch holds, not only on their pixels: the
protocol that training and evaluation speak to them (example-tied dropout, memloc.dropout,
ties units to examples and is the only such layer).

An `ExampleIndexed` layer reads the batch's example indices (`index`: positions in the data
table, set for one forward pass by `example_index` / `forward_with_index`) and a mode
(MODES, set for a block by `index_mode`): ``train`` (each example through what it owns),
``drop`` (what the examples own removed) or ``all`` (everything on, scaled).  The mode is
orthogonal to nn.Module.train/eval, which only switches batch norm.  A layer may sit in the
module tree, or act on a module's output through a forward hook, held in that module's
__dict__ under HELD (not registered as a submodule: a container's forward would run it, and
the model's named_modules, state_dict and layers stay as they were).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

MODES = ("train", "drop", "all")
HELD = "_memloc_dropout"


class ExampleIndexed(nn.Module):
    """A layer whose forward depends on the batch's example indices and on a mode (MODES)."""

    def __init__(self):
        super().__init__()
        self.mode = "train"
        self.index: torch.Tensor | None = None


def held_layer(module: nn.Module) -> nn.Module | None:
    """The layer a forward hook applies to `module`'s output, if any."""
    return module.__dict__.get(HELD)


def layers_in_order(model: nn.Module) -> list[nn.Module]:
    """Every module of `model` in module order, each followed by the layer it holds (if any)."""
    out = []
    for m in model.modules():
        out.append(m)
        held = held_layer(m)
        if held is not None:
            out.append(held)
    return out


def indexed_layers(model: nn.Module) -> list[ExampleIndexed]:
    """Every example-indexed layer of `model` in module order: submodules and hook-held ones."""
    return [m for m in layers_in_order(model) if isinstance(m, ExampleIndexed)]


@contextmanager
def index_mode(model: nn.Module, mode: str):
    """Set every example-indexed layer of `model` to `mode` for a block (a no-op without any)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; known: {MODES}")
    layers = indexed_layers(model)
    before = [m.mode for m in layers]
    for m in layers:
        m.mode = mode
    try:
        yield model
    finally:
        for m, old in zip(layers, before):
            m.mode = old


@contextmanager
def example_index(model: nn.Module, index: torch.Tensor | None):
    """Give every example-indexed layer of `model` the batch's example indices ([B]) for a block."""
    layers = indexed_layers(model)
    for m in layers:
        m.index = index
    try:
        yield model
    finally:
        for m in layers:
            m.index = None


def forward_with_index(model: nn.Module, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The model's output on a batch x of the examples `index`: model(x, index) for models
    whose forward takes them (`takes_example_index`: ResNet-9 with dropout), else model(x)
    with the indices given to its (hook-held) example-indexed layers, if it has any."""
    if getattr(model, "takes_example_index", False):
        return model(x, index)
    with example_index(model, index):
        return model(x)
