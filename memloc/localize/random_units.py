"""Random: the chance baseline.  A unit's score is a uniform draw from a generator seeded by
(seed, example row), so an example gets the same ranking batched or alone.  No
hyperparameters."""

from __future__ import annotations

import numpy as np
import torch

from memloc.localize.context import Context, Examples


def rank_units(ctx: Context, ex: Examples) -> torch.Tensor:
    out = torch.empty((len(ex), ctx.candidates))
    for k, r in enumerate(ex.index.tolist()):
        state = np.random.SeedSequence([ctx.seed % 2**32, 7, int(r)]).generate_state(1)[0]
        g = torch.Generator().manual_seed(int(state))
        out[k] = torch.rand(ctx.candidates, generator=g)
    return out.to(ctx.device)


def rank_units_reference(ctx: Context, ex: Examples) -> torch.Tensor:
    return torch.cat([rank_units(ctx, ex.pick([e])) for e in range(len(ex))])
