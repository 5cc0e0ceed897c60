"""Neuron flipping of many examples at once, with the results of the one-example loop.

`flip_examples` gives, for every example, exactly what `memloc.flipping.objective.
flip_until_misclassified` gives, and saves work in three places:

1. *Lockstep search* (here).  A batch of examples takes its removal steps together: one
   masked forward/backward pass scores the units of every example (per-example masks,
   see memloc.flipping.masks), one removal per example per step.
2. *The population term* (memloc.flipping.population) is computed once per distinct
   (population batch, removed set), across all the batches of examples, and cheaply for
   states whose removals all lie in the model's head.
3. *The post-removal accuracy* (memloc.flipping.accuracy) runs the model stage by stage
   as a tree, so the unmasked prefix is computed once for all examples.
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from memloc.core.evaluation import prepare_batch
from memloc.flipping.accuracy import final_correct
from memloc.flipping.masks import (
    candidate_units,
    flat_masks,
    full_masks,
    mask_gradients,
    masked_predictions,
    owner_chunks,
    remove,
)
from memloc.flipping.objective import (
    FlipConfig,
    FlipResult,
    accuracies_without,
    make_result,
    noise_generator,
    noisy_copies,
)
from memloc.flipping.population import PopulationTerm

# -- the lockstep search ---------------------------------------------------------------


def _example_gradients(model, units, masks, x, y, gens, cfg: FlipConfig) -> torch.Tensor:
    """d CE(copy-averaged logits of each example) / d(its masks): [owners, candidates].

    x [owners, C, H, W] clean inputs; one noise draw per owner from its generator."""
    noisy = torch.cat([noisy_copies(x[k : k + 1], cfg.noise_copies, cfg.noise_std, g) for k, g in enumerate(gens)])
    K = cfg.noise_copies
    out = []
    for o0, o1 in owner_chunks(len(x), K, cfg.max_rows):
        chunk = [m[o0:o1] for m in masks]
        out.append(mask_gradients(model, units, chunk, noisy[o0 * K : o1 * K], y[o0:o1], K, K))
    return torch.cat(out)


def _search(model, units, batch: list[int], images, labels, cfg: FlipConfig, device, dtype, population: PopulationTerm):
    """The greedy search for several examples in lockstep.

    Returns (removed flat candidate indices per example, final prediction per example,
    masks [examples, ...] per unit)."""
    B = len(batch)
    masks = full_masks(units, B, device, dtype)
    idx = torch.tensor(batch)
    x = prepare_batch(images[idx], device).to(dtype)
    y = labels[idx].to(device)
    gens = [noise_generator(cfg.seed, i) for i in batch]
    removed: list[list[int]] = [[] for _ in range(B)]
    final = [-1] * B
    active = list(range(B))
    step = 0
    while active:
        a = torch.tensor(active, device=device)
        pred = masked_predictions(model, units, [m[a] for m in masks], x[a], 1).tolist()
        still = []
        for k, p in zip(active, pred):
            if p != int(labels[batch[k]]) or step == cfg.max_removals:
                final[k] = p
            else:
                still.append(k)
        active = still
        if not active:
            break
        a = torch.tensor(active, device=device)
        act_masks = [m[a] for m in masks]
        grad = _example_gradients(model, units, act_masks, x[a], y[a], [gens[k] for k in active], cfg)
        grad = grad - population.gradients(step, [frozenset(removed[k]) for k in active], act_masks)
        score = -grad
        score[flat_masks(act_masks) == 0] = float("-inf")
        for k, best in zip(active, score.argmax(1).tolist()):
            remove(masks, units, k, best)
            removed[k].append(best)
        step += 1
    return removed, final, masks


# -- many examples ---------------------------------------------------------------------


def flip_examples(
    model: nn.Module,
    indices: list[int],
    images: torch.Tensor,
    labels: torch.Tensor,
    group: torch.Tensor,
    cfg: FlipConfig,
    device: torch.device,
    eval_index: torch.Tensor | None = None,
    eval_batch: int = 512,
    progress: bool = True,
) -> list[FlipResult]:
    """`flip_until_misclassified` for every training row in `indices`, cfg.examples_per_batch
    at a time; the same results (see the module docstring for what is shared)."""
    model.eval()
    units = candidate_units(model)
    dtype = next(model.parameters()).dtype
    eval_index = torch.arange(len(labels)) if eval_index is None else eval_index
    population = PopulationTerm(model, units, images, labels, cfg, device, dtype)
    removed, final, masks = [], [], []
    B = cfg.examples_per_batch
    for start in tqdm(range(0, len(indices), B), desc="flip", disable=not progress):
        batch = [int(i) for i in indices[start : start + B]]
        r, f, m = _search(model, units, batch, images, labels, cfg, device, dtype, population)
        removed += r
        final += f
        masks.append(m)
    if not removed:
        return []
    # the post-removal accuracy of all examples in one tree (the unmasked prefix is shared
    # by every example, not only by those searched together)
    masks = [torch.cat(per_unit) for per_unit in zip(*masks)]
    correct = final_correct(
        model, units, masks, removed, images, labels, eval_index, device, dtype, eval_batch, cfg.max_rows, progress
    )
    return [
        make_result(units, index, removed[k], final[k], int(labels[index]),
                    accuracies_without(correct[k], group[eval_index], eval_index, index))
        for k, index in enumerate(int(i) for i in indices)
    ]
