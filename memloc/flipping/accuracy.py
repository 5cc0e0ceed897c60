"""The training accuracy after each example's removals, for many examples at once, on the
training rows `accuracy_rows` picks.

`final_correct` runs the model stage by stage as a tree: examples that removed the same
units before a stage share the activations in front of it, so the unmasked prefix is
computed once for all examples (memloc.flipping.batched.flip_examples calls it once, after
every search has ended).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from tqdm.auto import tqdm

from memloc.core.train.evaluation import prepare_batch
from memloc.flipping.masks import masks_applied, model_stages, owner_chunks, scaled
from memloc.flipping.objective import FlippingProblem


def accuracy_rows(n: int, size: int | None, seed: int) -> torch.Tensor:
    """The training rows the post-removal accuracy is measured on: `size` of the `n` rows
    (seeded, sorted), or all of them when size is None."""
    if size is None or size >= n:
        return torch.arange(n)
    return torch.from_numpy(np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False)))


@torch.no_grad()
def final_correct(problem: FlippingProblem, masks: list[torch.Tensor], removed: list[list[int]],
                  eval_index: torch.Tensor, eval_batch: int, progress: bool = False) -> torch.Tensor:
    """Correctness [examples, n_eval] of each example's masked model on the evaluation rows.

    Runs the model stage by stage as a tree: examples that removed the same units in
    stages 0..k-1 share the activations in front of stage k (the root is the unmasked
    model, shared by all), so a stage is computed once per distinct set of removals up to
    it.  The children of a node (its examples grouped by their removals in stage k) are
    computed together, with hooks only on the units some of them removed (a mask of ones
    is the identity); a stage that is one ConvBN block is computed once and its children
    are its output times their channel masks."""
    model, units, device, dtype, max_rows = problem.model, problem.units, problem.device, problem.dtype, \
        problem.cfg.max_rows
    images, labels = problem.data.images, problem.data.labels
    stages, where = model_stages(model, units)
    sizes = [u.size for u in units]
    stage_of = np.repeat(where, sizes)  # stage of each flat candidate
    unit_of = np.repeat(np.arange(len(units)), sizes)  # unit of each flat candidate
    whole = {}  # stage -> its only unit, when the stage's output is what that unit's mask scales
    for i, u in enumerate(units):
        if u.kind != "weight" and u.module is stages[where[i]] and list(where).count(where[i]) == 1:
            whole[where[i]] = i
    correct = torch.zeros((len(removed), len(eval_index)), dtype=torch.bool)

    def descend(k: int, h: torch.Tensor, members: list[int], cols: slice, target: torch.Tensor):
        if k == len(stages):
            correct[members, cols] = h.float().argmax(1).cpu() == target
            return
        groups: dict[frozenset, list[int]] = defaultdict(list)
        for m in members:
            groups[frozenset(f for f in removed[m] if stage_of[f] == k)].append(m)
        children = list(groups.items())
        if len(children) == 1 and not children[0][0]:  # nobody removed anything here
            descend(k + 1, stages[k](h), members, cols, target)
            return
        if k in whole:  # the block's output, masked per child
            z = stages[k](h)
            u = whole[k]
            for key, group in children:
                descend(k + 1, scaled(z, masks[u][group[0]][None], units[u].kind) if key else z, group, cols, target)
            return
        n = len(h)
        for o0, o1 in owner_chunks(len(children), n, max_rows):
            chunk = children[o0:o1]
            used = sorted({int(unit_of[f]) for key, _ in chunk for f in key})
            reps = torch.tensor([group[0] for _, group in chunk], device=device)
            z = h.repeat(len(chunk), *([1] * (h.ndim - 1)))
            if z.ndim == 4:
                z = z.contiguous(memory_format=torch.channels_last)
            with masks_applied([units[u] for u in used], [masks[u][reps] for u in used], n):
                z = stages[k](z)
            for j, (_, group) in enumerate(chunk):
                descend(k + 1, z[j * n : (j + 1) * n], group, cols, target)

    for r0 in tqdm(range(0, len(eval_index), eval_batch), desc="accuracy after removal", disable=not progress):
        rows = eval_index[r0 : r0 + eval_batch]
        h = prepare_batch(images[rows], device).to(dtype)
        descend(0, h, list(range(len(removed))), slice(r0, r0 + len(rows)), labels[rows])
    return correct
