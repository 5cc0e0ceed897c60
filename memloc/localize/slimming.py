"""Slimming (Chang et al., NAACL 2024, Sec. 3; after Liu et al. 2017's network slimming):
a continuous mask m_u = sigmoid(theta_u) per unit, learned per example to keep the
example's training label while an L1 penalty pushes the mask down:

    minimize  CE(f(x; m), y) + l1 x sum_u m_u      (Adam, `steps` steps, learning rate `lr`),

from theta = `init` (m ~ 0.95).  The score is theta after training: the units the example
cannot do without keep their mask.  The sigmoid keeps m in (0, 1) without clipping, so the
scores have no ties at the bounds.  Hyperparameters: steps, lr, l1, init.

Batched: every example is an owner with its own mask, the loss their sum; Adam's update is
elementwise, so each example's mask follows the same path as alone (the reference)."""

from __future__ import annotations

import torch

from memloc.localize.context import Context, Examples


def learn_masks(ctx: Context, ex: Examples, settings: dict, gate) -> torch.Tensor:
    """theta [E, candidates] after `steps` Adam steps on CE + penalty; gate(theta, step, ex)
    -> (mask [E, candidates], penalty [E]) (slimming's sigmoid, hard concrete's gates)."""
    theta = torch.full((len(ex), ctx.candidates), float(settings["init"]), device=ctx.device, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=settings["lr"])
    with torch.enable_grad():
        for step in range(settings["steps"]):
            mask, penalty = gate(theta, step, ex)
            loss = ctx.losses(ctx.masks_from_flat(mask), ex.x, ex.y, ex.index) + penalty
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
    return theta.detach()


def _sigmoid_gate(l1: float):
    def gate(theta, step, ex):
        m = torch.sigmoid(theta)
        return m, l1 * m.sum(1)
    return gate


def rank_units(ctx: Context, ex: Examples) -> torch.Tensor:
    s = ctx.settings["slimming"]
    return learn_masks(ctx, ex, s, _sigmoid_gate(s["l1"]))


def rank_units_reference(ctx: Context, ex: Examples) -> torch.Tensor:
    return torch.cat([rank_units(ctx, ex.pick([e])) for e in range(len(ex))])
