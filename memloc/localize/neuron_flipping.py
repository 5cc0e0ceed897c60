"""Neuron flipping (Maini et al., ICML 2023, Sec. 6.1) as a ranking: the greedy search of
memloc.flipping zeroes, one at a time, the unit whose removal raises the objective J most
(first order) until the example is misclassified; its removal order is the ranking.  The
units it never removed (the search stops at the flip, or at `max_removals`) follow, ordered
by the first-order rise of the example's cross-entropy at the final state (one gradient).

On a model without example-tied dropout (the deletion track) this calls memloc.flipping
itself: `flip_examples` (batched) and `flip_until_misclassified` (the reference).  A tied
model (or units other than flipping's candidates) needs each row's example index in every
forward pass, which memloc.flipping's passes do not carry: `greedy_removals` is the same
search (the same J, F̄ and random draws: memloc.flipping.objective's noisy_copies and
population_indices) with the index-aware passes of memloc.localize.context, all examples
in lockstep (batched) or one (the reference); tests/test_localize.py checks it removes
what memloc.flipping does on a plain model.
Hyperparameters (config localization.flipping): max_removals, noise_copies, noise_scale,
population_batch (the population batch is drawn once, as resample_every = 0)."""

from __future__ import annotations

import torch

from memloc.core.train.evaluation import prepare_batch
from memloc.flipping.masks import smoothed_logits, smoothed_loss
from memloc.flipping.objective import FlipConfig, noisy_copies, population_indices
from memloc.localize.context import Context, Examples, chunks


def flip_config(ctx: Context) -> FlipConfig:
    s = ctx.settings["flipping"]
    return FlipConfig(max_removals=s["max_removals"], noise_copies=s["noise_copies"], noise_scale=s["noise_scale"],
                      population_batch=s["population_batch"], resample_every=0, seed=ctx.seed,
                      examples_per_batch=max(1, s["examples_per_batch"]), max_rows=ctx.max_rows, memory_gb=None,
                      accuracy_examples=1)


def flat_index(ctx: Context, layer: str, unit: int) -> int:
    """A (layer, index within the layer) of memloc.flipping.masks.describe -> flat index."""
    return next(u.offset for u in ctx.units if u.layer == layer) + unit


def ranking(ctx: Context, ex: Examples, removed: list[list[int]]) -> torch.Tensor:
    """Scores [E, candidates]: the removed units first, in removal order, then the others by
    the first-order rise of the example's CE with every removal in place."""
    n = ctx.candidates
    flat = torch.ones((len(ex), n), device=ctx.device)
    for e, r in enumerate(removed):
        flat[e, r] = 0
    grad, _ = ctx.mask_gradients(ctx.masks_from_flat(flat), ex.x, ex.y, ex.index)
    score = torch.empty_like(flat)
    ranks = torch.arange(n, device=ctx.device, dtype=flat.dtype).expand(len(ex), -1)
    score.scatter_(1, (-grad).argsort(dim=1, stable=True), ranks)
    for e, r in enumerate(removed):
        score[e, r] = n + torch.arange(len(r), 0, -1, device=ctx.device, dtype=flat.dtype)
    return score


def _population_gradients(ctx: Context, cfg: FlipConfig, step: int, flat: torch.Tensor) -> torch.Tensor:
    """d(mean population CE of F̄)/d masks [owners, candidates] at the owners' masks `flat`."""
    data, K = ctx.data, cfg.noise_copies
    pidx = population_indices(cfg.seed, step, len(data.labels), cfg)
    px = noisy_copies(prepare_batch(data.images[pidx], ctx.device).to(ctx.dtype), pidx.tolist(), step, cfg)
    py, prow = data.labels[pidx].to(ctx.device), pidx.repeat_interleave(K)
    out = []
    for part in chunks(len(flat), len(px), ctx.max_rows):
        n = part.stop - part.start
        leaves = [m.requires_grad_(True) for m in ctx.masks_from_flat(flat[part])]
        with torch.enable_grad():
            logits = ctx.logits(leaves, px.repeat(n, *([1] * (px.ndim - 1))), prow.repeat(n))
            grads = torch.autograd.grad(smoothed_loss(logits, py.repeat(n), n, K).sum(), leaves)
        out.append(torch.cat([g.flatten(1) for g in grads], 1))
    return torch.cat(out)


def greedy_removals(ctx: Context, ex: Examples, cfg: FlipConfig) -> list[list[int]]:
    """memloc.flipping's greedy search with index-aware passes, every example in lockstep."""
    K, E = cfg.noise_copies, len(ex)
    flat = torch.ones((E, ctx.candidates), device=ctx.device)
    removed: list[list[int]] = [[] for _ in range(E)]
    active = list(range(E))
    for step in range(cfg.max_removals):
        sub = ex.pick(active)
        noisy = noisy_copies(sub.x, sub.index.tolist(), step, cfg)
        leaves = [m.requires_grad_(True) for m in ctx.masks_from_flat(flat[active])]
        with torch.enable_grad():
            logits = ctx.logits(leaves, noisy, sub.index.repeat_interleave(K))
            grads = torch.autograd.grad(smoothed_loss(logits, sub.y, len(active), K).sum(), leaves)
        go = (smoothed_logits(logits.detach(), K).argmax(1) == sub.y).nonzero().flatten().tolist()
        if not go:
            break
        active = [active[j] for j in go]
        grad = torch.cat([g.flatten(1) for g in grads], 1)[go] - _population_gradients(ctx, cfg, step, flat[active])
        score = (-grad).masked_fill(flat[active] == 0, float("-inf"))
        for k, best in zip(active, score.argmax(1).tolist()):
            flat[k, best] = 0
            removed[k].append(best)
    return removed


def flipping_units(ctx: Context) -> bool:
    """Whether ctx's units are neuron flipping's own candidates of a model without tied dropout."""
    from memloc.flipping.units import candidate_units

    if ctx.tied:
        return False
    own = candidate_units(ctx.model)
    return [(u.name, u.kind, u.shape) for u in own] == [(u.name, u.kind, u.shape) for u in ctx.units]


def _removals(ctx: Context, ex: Examples, reference: bool) -> list[list[int]]:
    cfg = flip_config(ctx)
    if not flipping_units(ctx):
        if reference:
            return [greedy_removals(ctx, ex.pick([e]), cfg)[0] for e in range(len(ex))]
        return greedy_removals(ctx, ex, cfg)
    from memloc.flipping.batched import flip_examples
    from memloc.flipping.objective import flip_until_misclassified

    rows = ex.index.tolist()
    evaluated = ex.index[:1]  # the post-removal accuracy: not needed here, one row
    if reference:
        results = [flip_until_misclassified(ctx.model, r, ctx.data, cfg, ctx.device, evaluated) for r in rows]
    else:
        results = flip_examples(ctx.model, rows, ctx.data, cfg, ctx.device, evaluated, progress=False)
    return [[flat_index(ctx, layer, u) for layer, u in zip(r.removed_layers, r.removed_units)] for r in results]


def rank_units(ctx: Context, ex: Examples) -> torch.Tensor:
    return ranking(ctx, ex, _removals(ctx, ex, reference=False))


def rank_units_reference(ctx: Context, ex: Examples) -> torch.Tensor:
    return ranking(ctx, ex, _removals(ctx, ex, reference=True))
