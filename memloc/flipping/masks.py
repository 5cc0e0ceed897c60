"""The per-example masks that remove neuron flipping's candidate units.

A *unit* is what neuron flipping zeroes (Sec. 6.1; which ones: memloc.flipping.units): a
whole output channel of a conv block, an output feature of a hidden Linear's block, or a
single weight of the final Linear.  All are multiplicative masks m (1 = kept, 0 = removed)
that forward hooks apply to the model, never to a copy of it: a channel/feature mask
scales a block's output (after its norm and activation: the layer's activation z_l of the
paper; zeroing the raw conv output would leave BN's shift), a weight mask the Linear's
weight.  At m = 1 the first-order rise of a loss when a unit is
zeroed is exactly -dloss/dm, so one backward pass w.r.t. the masks scores every unit.

Masks carry a leading *owner* dimension: a forward pass over [owners * rows] inputs runs
owner k's rows through the model with owner k's masks, so many differently-masked models
(one per example being flipped) are evaluated in one batch.  The units of a model are
ordered layer by layer (forward order), channels by index and weights row-major; a
*flat* index numbers them all.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from memloc.flipping.units import ACTIVATIONS, NORMS, PASSING, Unit, candidate_units  # noqa: F401 (re-exported)


def full_masks(units: list[Unit], owners: int, device, dtype) -> list[torch.Tensor]:
    """All-ones masks of `owners` models: one tensor [owners, *unit.shape] per unit."""
    return [torch.ones((owners, *u.shape), device=device, dtype=dtype) for u in units]


def remove(masks: list[torch.Tensor], units: list[Unit], owner: int, flat: int) -> None:
    """Zero candidate `flat` (index into the model's flat candidate list) of one owner."""
    for u, m in zip(units, masks):
        if u.offset <= flat < u.offset + u.size:
            m[owner].view(-1)[flat - u.offset] = 0
            return
    raise IndexError(flat)


def describe(units: list[Unit], flat: int) -> tuple[str, int]:
    """(layer name, index of the candidate within its layer) of a flat candidate index."""
    first = {}
    for u in units:
        first.setdefault(u.layer, u.offset)
    for u in units:
        if u.offset <= flat < u.offset + u.size:
            return u.layer, flat - first[u.layer]
    raise IndexError(flat)


def scaled(out: torch.Tensor, per_row: torch.Tensor, kind: str) -> torch.Tensor:
    """out [N, C, ...] (kind "channel") or [N, ..., F] ("feature") times per-row masks
    per_row [N, C] / [N, F], broadcast over the other dimensions."""
    if kind == "channel":
        return out * per_row.view(*per_row.shape, *([1] * (out.ndim - 2)))
    return out * per_row.view(len(per_row), *([1] * (out.ndim - 2)), per_row.shape[-1])


def _scale_hook(mask: torch.Tensor, rows: int, kind: str):
    def hook(module, inputs, out):  # out [owners * rows, C, H, W] or [owners * rows, ..., F]; mask [owners, C | F]
        return scaled(out, mask.repeat_interleave(rows, 0), kind)

    return hook


def _weight_hook(mask: torch.Tensor, rows: int):
    def hook(module, inputs, out):  # x [owners * rows, in]; mask [owners, out, in]
        x = inputs[0]
        weight = module.weight * mask  # one weight matrix per owner
        y = torch.bmm(x.reshape(mask.shape[0], rows, -1), weight.transpose(1, 2)).reshape(len(x), -1)
        return y if module.bias is None else y + module.bias

    return hook


@contextmanager
def masks_applied(units: list[Unit], masks: list[torch.Tensor], rows: int):
    """Inside, a forward pass over [owners * rows] inputs runs owner k's rows (k*rows ...
    (k+1)*rows - 1) through the model with masks[.][k] applied."""
    handles = [
        u.module.register_forward_hook(_weight_hook(m, rows) if u.kind == "weight" else _scale_hook(m, rows, u.kind))
        for u, m in zip(units, masks)
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def masked_logits(model, units, masks, x: torch.Tensor, rows: int) -> torch.Tensor:
    """Logits [owners * rows, classes] of the masked models on x [owners * rows, ...]."""
    with masks_applied(units, masks, rows):
        out = model(x)
    return out.to(torch.promote_types(out.dtype, torch.float32))  # fp32 (fp64 stays)


def smoothed_logits(logits: torch.Tensor, copies: int) -> torch.Tensor:
    """F̄'s logits: [rows * copies, K] (copies of a row adjacent) -> their mean [rows, K]."""
    return logits.view(-1, copies, logits.shape[-1]).mean(1)


def smoothed_loss(logits: torch.Tensor, labels: torch.Tensor, owners: int, copies: int) -> torch.Tensor:
    """Per-owner mean CE of F̄ (the copy-averaged logits).

    logits [owners * E * copies, K] (owner-major, then example, then copy); labels
    [owners * E] -> [owners]."""
    ce = F.cross_entropy(smoothed_logits(logits, copies), labels, reduction="none")
    return ce.view(owners, -1).mean(1)


def mask_gradients(model, units, masks, x, labels, rows: int, copies: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(d(per-owner smoothed loss)/d(masks) at the given masks, flat [owners, candidates];
    F̄'s predicted classes [owners * E]), from one forward pass."""
    leaves = [m.detach().clone().requires_grad_(True) for m in masks]
    logits = masked_logits(model, units, leaves, x, rows)
    loss = smoothed_loss(logits, labels, len(masks[0]), copies).sum()
    grads = torch.autograd.grad(loss, leaves)
    return torch.cat([g.flatten(1) for g in grads], 1), smoothed_logits(logits.detach(), copies).argmax(1)


def flat_masks(masks: list[torch.Tensor]) -> torch.Tensor:
    """The masks of every owner as one row each: [owners, candidates] in flat order."""
    return torch.cat([m.flatten(1) for m in masks], 1)


@torch.no_grad()
def masked_predictions(model, units, masks, x: torch.Tensor, rows: int) -> torch.Tensor:
    """Predicted classes [owners * rows] of the masked models (see masked_logits)."""
    return masked_logits(model, units, masks, x, rows).argmax(1)


@torch.no_grad()
def smoothed_predictions(model, units, masks, x: torch.Tensor, rows: int, copies: int) -> torch.Tensor:
    """F̄'s predicted classes [owners * rows / copies] of the masked models on noisy copies
    x [owners * rows, ...] (copies of an input adjacent)."""
    return smoothed_logits(masked_logits(model, units, masks, x, rows), copies).argmax(1)


def model_stages(model: nn.Module, units: list[Unit]) -> tuple[list[nn.Module], list[int]]:
    """The model as a list of stages and, per unit, the stage that contains it: the children
    of an nn.Sequential model (ResNet-9; so activations in front of a stage can be shared),
    else the whole model as one stage (its forward may do anything between its children).
    A norm, activation or identity child joins the stage before it (in an nn.Sequential of
    both, sharing the modules): a stage never starts with an in-place ReLU, which would
    overwrite the shared input of the stage."""
    if not isinstance(model, nn.Sequential):
        stages = [model]
    else:
        runs: list[list[nn.Module]] = []
        for child in model.children():
            if runs and isinstance(child, (*NORMS, *ACTIVATIONS, *PASSING)):
                runs[-1].append(child)
            else:
                runs.append([child])
        stages = [run[0] if len(run) == 1 else nn.Sequential(*run) for run in runs]
    where = [next(i for i, s in enumerate(stages) if any(m is u.module for m in s.modules())) for u in units]
    return stages, where


def owner_chunks(owners: int, rows: int, max_rows: int) -> list[tuple[int, int]]:
    """(first, end) owner ranges such that a forward pass over one range's owners x `rows`
    inputs stays within `max_rows` (at least one owner per range)."""
    step = max(1, max_rows // rows)
    return [(o0, min(o0 + step, owners)) for o0 in range(0, owners, step)]
