"""Activations (Chang et al., NAACL 2024, Sec. 3; Geva et al. 2022): a unit's score is the
example's mean absolute activation of the unit (over its spatial positions / tokens) times
the norm of the unit's outgoing weights (the input slice of the next Conv / Linear that reads
as many channels or features; 1 where none does).  A weight of the final Linear (flipping's
candidates) scores |w| x |its input|: the size of its term in the logit.  No hyperparameters.

Batched: one forward pass over all examples; the reference: one pass per example."""

from __future__ import annotations

import torch
from torch import nn

from memloc.flipping.units import CONVS
from memloc.localize.context import Context, Examples


def outgoing_norms(ctx: Context) -> list[torch.Tensor]:
    """Per unit: the norm of each channel's / feature's outgoing weights, [size] (ones for
    the final Linear's weights, which score their input instead)."""
    heads = [(n, m) for n, m in ctx.model.named_modules() if isinstance(m, (*CONVS, nn.Linear))]
    order = {n: i for i, (n, _) in enumerate(ctx.model.named_modules())}
    out = []
    for u in ctx.units:
        norm = torch.ones(u.size, device=ctx.device)
        if u.kind != "weight":
            after = [m for n, m in heads if order[n] > order[u.name] and m is not u.module]
            width = u.shape[0]
            for m in after:
                fan_in = m.in_channels if isinstance(m, CONVS) else m.in_features
                if fan_in == width:
                    w = m.weight.detach().float().transpose(0, 1).reshape(width, -1)  # [in, out * kernel]
                    norm = w.norm(dim=1).to(ctx.device)
                    break
        out.append(norm)
    return out


@torch.no_grad()
def rank_units(ctx: Context, ex: Examples) -> torch.Tensor:
    """Scores [E, candidates] from one forward pass over the examples."""
    seen: dict[int, torch.Tensor] = {}

    def hook(i):
        def fn(module, inputs, out):
            u = ctx.units[i]
            if u.kind == "weight":  # |w| x |input|: [E, out, in]
                seen[i] = (module.weight.detach().abs()[None] * inputs[0].detach().abs()[:, None, :]).flatten(1)
            elif u.kind == "channel":
                seen[i] = out.detach().abs().flatten(2).mean(2) if out.ndim > 2 else out.detach().abs()
            else:
                seen[i] = out.detach().abs().reshape(len(out), -1, out.shape[-1]).mean(1)
        return fn

    handles = [u.module.register_forward_hook(hook(i)) for i, u in enumerate(ctx.units)]
    try:
        ctx.run(ex.x, ex.index)
    finally:
        for h in handles:
            h.remove()
    norms = outgoing_norms(ctx)
    return torch.cat([seen[i].float() * norms[i][None] for i in range(len(ctx.units))], 1)


def rank_units_reference(ctx: Context, ex: Examples) -> torch.Tensor:
    """The same scores, one example per forward pass."""
    return torch.cat([rank_units(ctx, ex.pick([e])) for e in range(len(ex))])
