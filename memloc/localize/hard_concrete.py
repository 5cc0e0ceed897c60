"""Hard concrete (Chang et al., NAACL 2024, Sec. 3; the L0 gates of Louizos et al., ICLR
2018): a stochastic gate per unit, z = min(1, max(0, s (zeta - gamma) + gamma)) with
s = sigmoid((log u - log(1 - u) + log_alpha) / beta), u ~ U(0, 1), learned per example:

    minimize  CE(f(x; z), y) + l0 x sum_u P(z_u != 0),
    P(z_u != 0) = sigmoid(log_alpha_u - beta log(-gamma / zeta))

(Adam, `steps` steps, learning rate `lr`, log_alpha from `init`; beta = 2/3, gamma = -0.1,
zeta = 1.1 as Louizos et al.).  The score is log_alpha after training.  The draws u of an
example at a step come from a generator seeded by (seed, example row, step): batched (every
example an owner) and one at a time (the reference) draw the same gates.
Hyperparameters: steps, lr, l0, init."""

from __future__ import annotations

import math

import numpy as np
import torch

from memloc.localize.context import Context, Examples
from memloc.localize.slimming import learn_masks

BETA, GAMMA, ZETA = 2 / 3, -0.1, 1.1


def draws(seed: int, rows: torch.Tensor, step: int, n: int) -> torch.Tensor:
    """U(0, 1) [len(rows), n] of the examples `rows` at `step` (float32, CPU)."""
    out = torch.empty((len(rows), n))
    for k, r in enumerate(rows.tolist()):
        state = np.random.SeedSequence([seed % 2**32, 23, int(r), step]).generate_state(1)[0]
        g = torch.Generator().manual_seed(int(state))
        out[k] = torch.rand(n, generator=g)
    return out.clamp(1e-6, 1 - 1e-6)


def _gate(ctx: Context, l0: float):
    shift = BETA * math.log(-GAMMA / ZETA)

    def gate(log_alpha, step, ex):
        u = draws(ctx.seed, ex.index, step, ctx.candidates).to(log_alpha.device)
        s = torch.sigmoid((u.log() - (1 - u).log() + log_alpha) / BETA)
        z = (s * (ZETA - GAMMA) + GAMMA).clamp(0, 1)
        return z, l0 * torch.sigmoid(log_alpha - shift).sum(1)
    return gate


def rank_units(ctx: Context, ex: Examples) -> torch.Tensor:
    s = ctx.settings["hard_concrete"]
    return learn_masks(ctx, ex, s, _gate(ctx, s["l0"]))


def rank_units_reference(ctx: Context, ex: Examples) -> torch.Tensor:
    return torch.cat([rank_units(ctx, ex.pick([e])) for e in range(len(ex))])
