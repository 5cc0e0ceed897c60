"""Zero-out (Chang et al., NAACL 2024, Sec. 3; the ablation of Geva et al. 2022): every
candidate unit is zeroed alone, the unit's score is the rise of the example's cross-entropy
(its training label) over the unablated model's.  No hyperparameters.

Batched: for the units of one stage, the input of that stage is computed once for all
examples and each (unit, example) pair runs only the stages from there (one owner per pair,
memloc.flipping.masks layout); the reference runs one full forward pass per unit and example.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from memloc.localize.context import Context, Examples, chunks


def _one_zeroed(ctx: Context, unit: int, rows: list[int], owners_per_row: int) -> list[torch.Tensor]:
    """Masks [len(rows) * owners_per_row, ...]: owner j*owners_per_row + e has candidate rows[j]
    of unit `unit` zeroed (all others one)."""
    masks = ctx.ones(len(rows) * owners_per_row)
    u = ctx.units[unit]
    view = masks[unit].view(len(rows), owners_per_row, -1)
    for j, r in enumerate(rows):
        view[j, :, r - u.offset] = 0
    return masks


@torch.no_grad()
def rank_units(ctx: Context, ex: Examples) -> torch.Tensor:
    """Scores [E, candidates]: CE with the unit zeroed minus CE without (batched)."""
    E = len(ex)
    inputs = [ex.x]
    for s in range(len(ctx.stages)):
        inputs.append(ctx.run(inputs[-1], ex.index, s, s + 1))
    base = F.cross_entropy(inputs[-1].float(), ex.y, reduction="none")
    scores = torch.zeros((E, ctx.candidates), device=ctx.device)
    for i, u in enumerate(ctx.units):
        s = ctx.unit_stage[i]
        h = inputs[s]
        for part in chunks(u.size, E, ctx.max_rows):
            flat = list(range(u.offset + part.start, u.offset + part.stop))
            masks = _one_zeroed(ctx, i, flat, E)
            n = len(flat)
            z = h.repeat(n, *([1] * (h.ndim - 1)))
            loss = F.cross_entropy(ctx.logits(masks, z, ex.index.repeat(n), s), ex.y.repeat(n), reduction="none")
            scores[:, flat] = (loss.view(n, E) - base[None]).T
    return scores


@torch.no_grad()
def rank_units_reference(ctx: Context, ex: Examples) -> torch.Tensor:
    """The same scores, one full forward pass per (example, unit)."""
    out = torch.zeros((len(ex), ctx.candidates), device=ctx.device)
    masks = ctx.ones(1)
    for e in range(len(ex)):
        x, y, idx = ex.x[e : e + 1], ex.y[e : e + 1], ex.index[e : e + 1]
        base = ctx.losses(masks, x, y, idx)[0]
        for i, u in enumerate(ctx.units):
            for c in range(u.size):
                masks[i].view(-1)[c] = 0
                out[e, u.offset + c] = ctx.losses(masks, x, y, idx)[0] - base
                masks[i].view(-1)[c] = 1
    return out
