"""Neuron flipping of many examples at once, with the results of the one-example loop.

`flip_examples` gives, for every example, exactly what `memloc.flipping.objective.
flip_until_misclassified` gives, and saves work in four places:

1. *Lockstep search* (here).  A batch of examples takes its removal steps together: one
   masked forward/backward pass scores the units of every example (per-example masks,
   see memloc.flipping.masks), one removal per example per step.
2. *The population term* (memloc.flipping.population) is computed once per distinct
   (step, removed set), across all the batches of examples, each state without the
   forward pass of the unmasked stages in front of its first removal.
3. *The post-removal accuracy* (memloc.flipping.accuracy) runs the model stage by stage
   as a tree, so the unmasked prefix is computed once for all examples.
4. *Every pass* runs a copy of the model with eval-mode BatchNorm folded into the
   convolutions where that is exact (`folded_batchnorm`): the same function, ~20% less
   time per pass; only the last bits of rounding differ from the reference's unfolded model.

The inputs per pass are bounded by cfg.max_rows and by a memory budget (memloc.flipping.
budget); that bound only chunks the passes, so results do not depend on it.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
from torch import nn
from tqdm.auto import tqdm

from memloc.core.data.run_data import TrainingSet
from memloc.core.train.evaluation import prepare_batch
from memloc.flipping.accuracy import final_correct
from memloc.flipping.budget import row_budget
from memloc.flipping.masks import flat_masks, full_masks, mask_gradients, owner_chunks, remove, smoothed_predictions
from memloc.flipping.objective import (
    FlipConfig,
    FlippingProblem,
    FlipResult,
    accuracies_without,
    make_result,
    noisy_copies,
)
from memloc.flipping.population import PopulationTerm
from memloc.flipping.units import Unit, candidate_units, check_units, units_in

EVAL_BATCH = 512  # evaluation rows per pass of the post-removal accuracy

# -- the lockstep search ---------------------------------------------------------------


def _example_terms(problem: FlippingProblem, masks, x, y, rows: list[int], step: int, grad: bool):
    """F̄ on each example: (d CE(F̄(x_k), y_k) / d(its masks) [owners, candidates], or None
    without `grad`; F̄'s predicted class [owners]).  x [owners, C, H, W] clean inputs of the
    training rows `rows`; their noise is that of (seed, step, row)."""
    model, units, cfg = problem.model, problem.units, problem.cfg
    noisy = noisy_copies(x, rows, step, cfg)
    K = cfg.noise_copies
    grads, preds = [], []
    for o0, o1 in owner_chunks(len(x), K, cfg.max_rows):
        chunk, part = [m[o0:o1] for m in masks], noisy[o0 * K : o1 * K]
        if grad:
            g, p = mask_gradients(model, units, chunk, part, y[o0:o1], K, K)
            grads.append(g)
        else:
            p = smoothed_predictions(model, units, chunk, part, K, K)
        preds.append(p)
    return (torch.cat(grads) if grad else None), torch.cat(preds).tolist()


def _search(problem: FlippingProblem, batch: list[int], population: PopulationTerm):
    """The greedy search for several examples in lockstep: at every step, F̄ on each active
    example decides whether it is flipped (or censored at max_removals) and gives J's first
    term; the rest remove their best unit.

    Returns (removed flat candidate indices per example, F̄'s final prediction per example,
    masks [examples, ...] per unit)."""
    units, labels, cfg, device = problem.units, problem.data.labels, problem.cfg, problem.device
    B = len(batch)
    masks = full_masks(units, B, device, problem.dtype)
    idx = torch.tensor(batch)
    x = prepare_batch(problem.data.images[idx], device).to(problem.dtype)
    y = labels[idx].to(device)
    removed: list[list[int]] = [[] for _ in range(B)]
    final = [-1] * B
    active = list(range(B))
    for step in range(cfg.max_removals + 1):
        last = step == cfg.max_removals  # censored unless F̄ is wrong now: no gradient needed
        a = torch.tensor(active, device=device)
        grad, pred = _example_terms(problem, [m[a] for m in masks], x[a], y[a], [batch[k] for k in active], step,
                                    grad=not last)
        go = []  # positions in `active` of the examples F̄ still gets right
        for j, (k, p) in enumerate(zip(active, pred)):
            final[k] = p  # the last value is F̄'s prediction when the search stops
            if p == int(labels[batch[k]]) and not last:
                go.append(j)
        if not go:
            break
        active = [active[j] for j in go]
        a = torch.tensor(active, device=device)
        act_masks = [m[a] for m in masks]
        grad = grad[torch.tensor(go, device=device)] - population.gradients(
            step, [frozenset(removed[k]) for k in active], act_masks)
        score = -grad
        score[flat_masks(act_masks) == 0] = float("-inf")
        for k, best in zip(active, score.argmax(1).tolist()):
            remove(masks, units, k, best)
            removed[k].append(best)
    return removed, final, masks


# -- many examples ---------------------------------------------------------------------


def _conv_bn_pairs(model: nn.Module, units: list[Unit]) -> list[tuple[str, str]]:
    """(conv name, BatchNorm name) of every eval-mode BatchNorm2d that directly follows a
    Conv2d inside an nn.Sequential (so the conv's output is the BN's only input) and whose
    conv's own output carries no mask: where folding is exact."""
    hooked = {id(u.module) for u in units}
    pairs = []
    for name, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        kids = list(seq.named_children())
        for (a, conv), (b, bn) in zip(kids, kids[1:]):
            if (isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d and bn.running_var is not None
                    and id(conv) not in hooked and bn.num_features == conv.out_channels):
                prefix = f"{name}." if name else ""
                pairs.append((prefix + a, prefix + b))
    return pairs


@torch.no_grad()
def folded_batchnorm(model: nn.Module, units: list[Unit] | None = None) -> nn.Module:
    """A copy of `model` (in eval mode) with every BatchNorm2d that directly follows a
    Conv2d in an nn.Sequential folded into the convolution (conv weight * gamma / sigma,
    bias beta - mu * gamma / sigma; the BN replaced by nn.Identity): the same function with
    one elementwise pass less per block forward and backward (~20% of a masked pass's time
    on ResNet-9); every unit's masked output (`units`, default: the model's) is unchanged.
    A model with nothing to fold is returned as is."""
    pairs = _conv_bn_pairs(model, candidate_units(model) if units is None else units)
    if not pairs:
        return model
    folded = copy.deepcopy(model).eval()
    for conv_name, bn_name in pairs:
        conv, bn = folded.get_submodule(conv_name), folded.get_submodule(bn_name)
        gamma = torch.ones_like(bn.running_var) if bn.weight is None else bn.weight
        beta = torch.zeros_like(bn.running_var) if bn.bias is None else bn.bias
        scale = gamma / torch.sqrt(bn.running_var + bn.eps)
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
        shift = beta - bn.running_mean * scale
        conv.bias = nn.Parameter(shift if conv.bias is None else conv.bias * scale + shift, requires_grad=False)
        parent, _, child = bn_name.rpartition(".")
        setattr(folded.get_submodule(parent), child, nn.Identity())
    return folded.requires_grad_(False)


def flip_examples(model: nn.Module, indices: list[int], data: TrainingSet, cfg: FlipConfig, device: torch.device,
                  eval_index: torch.Tensor | None = None, progress: bool = True) -> list[FlipResult]:
    """`flip_until_misclassified` for every training row in `indices` of `data`,
    cfg.examples_per_batch at a time; the same results (see the module docstring for what is
    shared).  eval_index: the training rows of the post-removal accuracy (None: all)."""
    model.eval()
    units = candidate_units(model)  # on the model as given (an override may name a BN that folding removes)
    dtype = next(model.parameters()).dtype
    check_units(model, units, prepare_batch(data.images[:1], device).to(dtype))
    model = folded_batchnorm(model, units)
    problem = FlippingProblem(model, units_in(model, units), data, cfg, device, dtype)
    problem = replace(problem, cfg=replace(cfg, max_rows=row_budget(problem)))
    eval_index = torch.arange(len(data.labels)) if eval_index is None else eval_index
    population = PopulationTerm(problem)
    removed, final, masks = [], [], []
    B = cfg.examples_per_batch
    for start in tqdm(range(0, len(indices), B), desc="flip", disable=not progress):
        batch = [int(i) for i in indices[start : start + B]]
        r, f, m = _search(problem, batch, population)
        removed += r
        final += f
        masks.append(m)
    if not removed:
        return []
    # the post-removal accuracy of all examples in one tree (the unmasked prefix is shared
    # by every example, not only by those searched together)
    masks = [torch.cat(per_unit) for per_unit in zip(*masks)]
    correct = final_correct(problem, masks, removed, eval_index, EVAL_BATCH, progress)
    return [
        make_result(problem.units, index, removed[k], final[k], int(data.labels[index]),
                    accuracies_without(correct[k], data.group[eval_index], eval_index, index))
        for k, index in enumerate(int(i) for i in indices)
    ]
