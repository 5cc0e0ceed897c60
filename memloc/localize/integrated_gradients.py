"""Integrated gradients (Sundararajan et al., ICML 2017) on a unit mask (Chang et al., NAACL
2024, Sec. 3; Dai et al. 2022's "knowledge attribution"): every unit's mask is scaled together
from 0 (all units off) to 1 (the model), and a unit's score is the integral of the gradient
of the probability of the example's training label along that path:

    IG_u = integral over a in [0, 1] of d p_y(m = a 1) / d m_u,

a midpoint Riemann sum of `steps` points (the hyperparameter).  Batched: the examples x steps
scaled models are owners of one pass; the reference: one pass per example and step."""

from __future__ import annotations

import torch

from memloc.localize.context import Context, Examples, chunks


def _probability_gradients(ctx: Context, alphas: torch.Tensor, ex: Examples, steps: int) -> torch.Tensor:
    """d p_y / d masks [E * steps, candidates] at masks alphas [E * steps] x ones (owner
    e*steps + j: example e at alphas[e*steps + j])."""
    n = len(alphas)
    masks = [m * alphas.view(-1, *([1] * (m.ndim - 1))).to(m.dtype) for m in ctx.ones(n)]
    leaves = [m.requires_grad_(True) for m in masks]
    x = ex.x.repeat_interleave(steps, 0)
    with torch.enable_grad():
        logits = ctx.logits(leaves, x, ex.index.repeat_interleave(steps))
        p = logits.softmax(1).gather(1, ex.y.repeat_interleave(steps)[:, None]).sum()
        grads = torch.autograd.grad(p, leaves)
    return torch.cat([g.flatten(1) for g in grads], 1)


def rank_units(ctx: Context, ex: Examples) -> torch.Tensor:
    """Scores [E, candidates]: the integrated gradients of p_y (batched)."""
    steps = ctx.settings["integrated_gradients"]["steps"]
    alpha = (torch.arange(steps, device=ctx.device, dtype=torch.float32) + 0.5) / steps
    out = []
    for part in chunks(len(ex), steps, ctx.max_rows):
        sub = ex.pick(range(part.start, part.stop))
        g = _probability_gradients(ctx, alpha.repeat(len(sub)), sub, steps)
        out.append(g.view(len(sub), steps, -1).mean(1))
    return torch.cat(out)


def rank_units_reference(ctx: Context, ex: Examples) -> torch.Tensor:
    """The same scores, one example and one step per pass."""
    steps = ctx.settings["integrated_gradients"]["steps"]
    rows = []
    for e in range(len(ex)):
        one = ex.pick([e])
        total = sum(_probability_gradients(ctx, torch.tensor([(j + 0.5) / steps], device=ctx.device), one, 1)[0]
                    for j in range(steps))
        rows.append(total / steps)
    return torch.stack(rows)
