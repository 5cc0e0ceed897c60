"""What zeroing a method's top-k units does: does the example leave its label (efficacy), and
how much accuracy do other examples lose (specificity)?  Both tracks zero units on the
example's forward pass as the model runs it (memloc.localize.context: a tied model in its
``train`` mode); the specificity rows are a fixed set of other training examples (clean and
noisy) and test examples, with no example-tied dropout (the deletion track's plain model).

Every (ranking, k) is an owner of a batched pass (memloc.flipping.masks layout).  The
specificity rows share their unmasked prefix: the input of every stage is computed once,
and an owner's pass starts at the stage of its earliest zeroed unit."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from memloc.localize.context import Context, Examples, chunks


def zeroed(ctx: Context, tops: torch.Tensor) -> torch.Tensor:
    """Flat masks [owners, candidates]: ones, with each owner's units tops [owners, k] zeroed."""
    flat = torch.ones((len(tops), ctx.candidates), device=ctx.device)
    if tops.shape[1]:
        flat.scatter_(1, tops.to(ctx.device), 0.0)
    return flat


@torch.no_grad()
def predictions_without(ctx: Context, ex: Examples, tops: torch.Tensor) -> torch.Tensor:
    """Predicted class [E] of each example with its units tops [E, k] zeroed."""
    out = []
    for part in chunks(len(ex), 1, ctx.max_rows):
        masks = ctx.masks_from_flat(zeroed(ctx, tops[part]))
        out.append(ctx.logits(masks, ex.x[part], ex.index[part]).argmax(1))
    return torch.cat(out).cpu()


@torch.no_grad()
def stage_inputs(ctx: Context, rows: Examples) -> list[torch.Tensor]:
    """The input of every stage (and the logits, last) of the unmasked model on `rows`."""
    inputs = [rows.x]
    for s in range(len(ctx.stages)):
        inputs.append(ctx.run(inputs[-1], rows.index, s, s + 1))
    return inputs


@torch.no_grad()
def correct_without(ctx: Context, rows: Examples, inputs: list[torch.Tensor], tops: torch.Tensor) -> torch.Tensor:
    """Correctness [owners, len(rows)] of `rows` (their stage inputs from `stage_inputs`) with
    each owner's units tops [owners, k] zeroed."""
    stage_of = np.repeat(ctx.unit_stage, [u.size for u in ctx.units])
    starts = defaultdict(list)
    for o, t in enumerate(tops.tolist()):
        starts[min((int(stage_of[f]) for f in t), default=len(ctx.stages))].append(o)
    out = torch.zeros((len(tops), len(rows)), dtype=torch.bool)
    n = len(rows)
    for s, owners in starts.items():
        if s == len(ctx.stages):
            out[owners] = (inputs[-1].argmax(1) == rows.y).cpu()
            continue
        h = inputs[s]
        for part in chunks(len(owners), n, ctx.max_rows):
            sel = owners[part]
            masks = ctx.masks_from_flat(zeroed(ctx, tops[sel]))
            z = h.repeat(len(sel), *([1] * (h.ndim - 1)))
            pred = ctx.logits(masks, z, rows.index.repeat(len(sel)), s).argmax(1).view(len(sel), n)
            out[sel] = (pred == rows.y[None]).cpu()
    return out
