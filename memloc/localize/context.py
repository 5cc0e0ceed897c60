"""What every localization method ranks on: a model, its candidate units, the examples.

`Context` holds the model (in eval mode), the units (memloc.flipping.units.Unit: the
candidates of neuron flipping, or the example-tied dropout channels, `tied_units`), how a
forward pass runs (a model with example-tied dropout runs in its ``train`` mode: every
example through the generalization units and its own memorization units, as it was trained;
memloc.core.example_index) and the methods' settings.  `Examples` are the examples ranked.

A forward pass runs the model stage by stage (memloc.flipping.masks.model_stages: the
children of an nn.Sequential model, else the whole model), so a pass may start at the input
of any stage; the masks of memloc.flipping.masks scale the units (owners x rows layout).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from memloc.core.data.run_data import TrainingSet
from memloc.core.example_index import example_index, held_layer, index_mode, indexed_layers
from memloc.dropout.tied import ExampleTiedDropout
from memloc.flipping.masks import full_masks, masks_applied, model_stages
from memloc.flipping.units import Unit


@dataclass
class Examples:
    """The examples a method ranks units for: normalized inputs x [E, ...] (on the device),
    their training labels y [E] (device) and rows `index` [E] (the data table's, int64, CPU)."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def pick(self, rows) -> Examples:
        rows = torch.as_tensor(rows, dtype=torch.int64)
        return Examples(self.x[rows.to(self.x.device)], self.y[rows.to(self.y.device)], self.index[rows])


@dataclass
class Context:
    """The model (eval mode, parameters frozen), its candidate units, the methods' settings
    ({method: {hyperparameter: value}}), a seed (of the random draws of the methods), the
    training set (neuron flipping's population term; None where no method needs it), the
    device and the rows per forward pass (memory)."""

    model: nn.Module
    units: list[Unit]
    settings: dict
    seed: int
    data: TrainingSet | None
    device: torch.device
    max_rows: int
    stages: list[nn.Module] = field(init=False)
    unit_stage: list[int] = field(init=False)

    def __post_init__(self):
        self.model.eval().requires_grad_(False)
        self.stages, self.unit_stage = model_stages(self.model, self.units)

    @property
    def tied(self) -> bool:
        return bool(indexed_layers(self.model))

    @property
    def candidates(self) -> int:
        return sum(u.size for u in self.units)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def ones(self, owners: int) -> list[torch.Tensor]:
        return full_masks(self.units, owners, self.device, self.dtype)

    def run(self, h: torch.Tensor, index: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Stages start .. stop-1 of the model on h (the input of stage `start`) of the
        training rows `index` (one per row of h; a tied model needs them)."""
        with ExitStack() as stack:
            if self.tied:
                stack.enter_context(index_mode(self.model, "train"))
                stack.enter_context(example_index(self.model, index.to(h.device)))
            for stage in self.stages[start:stop]:
                h = stage(h)
        return h

    def logits(self, masks: list[torch.Tensor], h: torch.Tensor, index: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Logits (float32) of the masked models: masks [owners, ...] per unit, h [owners *
        rows, ...] the input of stage `start`, owner k's rows k*rows .. (k+1)*rows-1."""
        rows = len(h) // len(masks[0])
        with masks_applied(self.units, masks, rows):
            out = self.run(h, index, start)
        return out.float()

    def losses(self, masks, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Per-row cross-entropy of the masked models (one row per owner)."""
        return F.cross_entropy(self.logits(masks, x, index), y, reduction="none")

    def mask_gradients(self, masks, x, y, index) -> tuple[torch.Tensor, torch.Tensor]:
        """(d CE / d masks, flat [owners, candidates]; CE [owners]), one row per owner."""
        leaves = [m.detach().clone().requires_grad_(True) for m in masks]
        with torch.enable_grad():
            loss = self.losses(leaves, x, y, index)
            grads = torch.autograd.grad(loss.sum(), leaves)
        return torch.cat([g.flatten(1) for g in grads], 1), loss.detach()

    def masks_from_flat(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """flat [owners, candidates] -> one mask tensor [owners, *unit.shape] per unit."""
        return [flat[:, u.offset : u.offset + u.size].reshape(len(flat), *u.shape).to(self.dtype) for u in self.units]


def chunks(n: int, per_owner_rows: int, max_rows: int) -> list[slice]:
    """Slices of n owners such that owners x per_owner_rows stays within max_rows."""
    step = max(1, max_rows // max(per_owner_rows, 1))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def tied_units(model: nn.Module) -> list[Unit]:
    """The example-tied dropout channels of `model` as units (module order): a dropout layer in
    the module tree (ResNet-9) is masked on its own output; one held by a module's forward
    hook (memloc.dropout.placement) on that module's output, after the dropout (hooks run in
    order).  Layer names: dropout1, dropout2, ... (the layers' numbers)."""
    units, offset = [], 0
    for name, module in model.named_modules():
        layer = module if isinstance(module, ExampleTiedDropout) else held_layer(module)
        if not isinstance(layer, ExampleTiedDropout):
            continue
        kind = "channel" if layer.dim == 1 else "feature"
        units.append(Unit(f"dropout{layer.layer}", module, kind, (layer.units,), offset, name))
        offset += layer.units
    if not units:
        raise ValueError(f"{type(model).__name__} has no example-tied dropout layer: the ground-truth track "
                         f"needs a model trained with example-tied dropout (dropout.p_mem > 0)")
    return units


def tied_layer(unit: Unit) -> ExampleTiedDropout:
    """The example-tied dropout layer behind a `tied_units` unit."""
    m = unit.module
    return m if isinstance(m, ExampleTiedDropout) else held_layer(m)
