"""Neuron flipping of many examples at once, with the results of the one-example loop.

`flip_examples` gives, for every example, exactly what `memloc.flipping.
flip_until_misclassified` gives, and saves work in three places:

1. *Lockstep search.*  A batch of examples takes its removal steps together: one masked
   forward/backward pass scores the units of every example (per-example masks, see
   memloc.flipping.masks), one removal per example per step.
2. *The population term* (`PopulationTerm`) depends only on the population batch and the
   set of removed units (every example starts from the same model), so it is computed
   once per distinct (batch, removed set), across all the batches of examples.  When the
   population batch is fixed for the whole search (resample_every = 0), states whose
   removals all lie in the model's head (the last conv block and the Linear, `Head`) —
   most of them — cost almost nothing: the trunk's features of the population batch and
   their Jacobian w.r.t. the trunk's masks are computed once, and each state then needs
   only its small head and a matrix product (chain rule through the unchanged trunk).
3. *The post-removal accuracy* (`_final_correct`) runs the model stage by stage as a
   tree: examples that removed the same units before a stage share the activations in
   front of it, so the unmasked prefix is computed once for all examples.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from memloc.core.evaluation import prepare_batch
from memloc.flipping.objective import (
    FlipConfig,
    FlipResult,
    accuracies_without,
    make_result,
    noise_generator,
    noisy_copies,
    population_rows,
    population_window,
)
from memloc.core.blocks import ConvBN
from memloc.flipping.masks import (
    Unit,
    candidate_units,
    flat_masks,
    full_masks,
    mask_gradients,
    masked_predictions,
    masks_applied,
    remove,
    smoothed_loss,
)


def _owner_chunks(owners: int, rows: int, max_rows: int):
    step = max(1, max_rows // rows)
    return [(o0, min(o0 + step, owners)) for o0 in range(0, owners, step)]


# -- the population term ---------------------------------------------------------------


@dataclass
class Head:
    """The end of a ResNet-9: ConvBN block -> global max-pool -> Flatten -> Linear -> row-wise
    modules (Scale).  Zeroing channel c of the block zeroes pooled feature c exactly
    (max over the channel of m * z = m * max z for m in {0, 1}), so models whose removals
    all lie in the block or the Linear share the *trunk* (everything before the block) and
    its pooled features; only the head (feature masks, masked Linear) differs."""

    features: nn.Module  # model[: block + 3]: input -> pooled block output [rows, F]
    linear: nn.Linear
    post: nn.Module  # after the Linear (row-wise)
    block_unit: int  # index in the unit list of the block's channels (the feature masks)
    linear_unit: int
    trunk_units: list[int]  # the other units, all inside the trunk

    @classmethod
    def find(cls, model: nn.Module, units: list[Unit]) -> Head | None:
        """The head of `model`, or None if it does not end that way."""
        if not isinstance(model, nn.Sequential):
            return None
        kids = list(model.children())
        blocks = [i for i, m in enumerate(kids) if isinstance(m, ConvBN)]
        if not blocks or len(kids) < blocks[-1] + 4:
            return None
        b = blocks[-1]
        pool, flatten, linear = kids[b + 1 : b + 4]
        if not (
            isinstance(pool, nn.AdaptiveMaxPool2d)
            and pool.output_size in (1, (1, 1))
            and isinstance(flatten, nn.Flatten)
            and isinstance(linear, nn.Linear)
        ):
            return None
        post = kids[b + 4 :]
        if any(isinstance(x, (nn.Linear, nn.Conv2d)) for m in post for x in m.modules()):
            return None  # more layers after the Linear: not a head of this shape
        owner = {id(u.module): i for i, u in enumerate(units)}
        if id(kids[b]) not in owner or id(linear) not in owner:
            return None
        head_units = {owner[id(kids[b])], owner[id(linear)]}
        return cls(
            features=nn.Sequential(*kids[: b + 3]),
            linear=linear,
            post=nn.Sequential(*post),
            block_unit=owner[id(kids[b])],
            linear_unit=owner[id(linear)],
            trunk_units=[i for i in range(len(units)) if i not in head_units],
        )


class PopulationTerm:
    """d(mean population CE)/d(masks) of removal states of one model, each computed once.

    A state is (population window, frozenset of removed flat unit indices); its gradient
    is a row [candidates].  States whose removals lie in the head use the trunk Jacobian
    when the population batch is fixed for the whole search (resample_every = 0); which
    path a state takes depends on the state only, so results do not depend on batching."""

    def __init__(self, model, units: list[Unit], images, labels, cfg: FlipConfig, device, dtype):
        self.model, self.units, self.images, self.labels = model, units, images, labels
        self.cfg, self.device, self.dtype = cfg, device, dtype
        self.head = Head.find(model, units) if cfg.resample_every == 0 else None
        # flat indices of the head's units: a state is a head state iff its set is inside
        self.head_flats = frozenset(
            f for i in ((self.head.block_unit, self.head.linear_unit) if self.head else ())
            for f in range(units[i].offset, units[i].offset + units[i].size)
        )
        self.memo: dict = {}
        self._rows: dict = {}  # window -> (inputs, labels, copies)
        self._jacobian: dict = {}  # window -> (pooled features [R, F], Jacobian [R * F, trunk masks])
        self.candidates = sum(u.size for u in units)

    def rows(self, step: int):
        w = population_window(step, self.cfg)
        if w not in self._rows:
            x, y, copies = population_rows(self.images, self.labels, step, self.cfg, self.device)
            self._rows[w] = (x.to(self.dtype), y, copies)
        return self._rows[w]

    def gradients(self, step: int, removed: list[frozenset], masks: list[torch.Tensor]) -> torch.Tensor:
        """Rows [len(removed), candidates] for the states (step's window, removed[k]) with
        masks[.][k]; computes the states not seen before."""
        w = population_window(step, self.cfg)
        keys = [(w, r) for r in removed]
        first: dict = {}  # each new state, and the first row that has it
        for k, key in enumerate(keys):
            if key not in self.memo and key not in first:
                first[key] = k
        in_head = [k for key, k in first.items() if self.head is not None and key[1] <= self.head_flats]
        others = [k for k in first.values() if k not in in_head]
        for rows, compute in ((in_head, self._head_gradients), (others, self._full_gradients)):
            if rows:
                pick = torch.tensor(rows, device=masks[0].device)
                self.memo.update(zip((keys[k] for k in rows), compute(step, [m[pick] for m in masks])))
        return torch.stack([self.memo[key] for key in keys])

    def _full_gradients(self, step: int, masks: list[torch.Tensor]) -> torch.Tensor:
        """The masked model on the population rows, repeated once per state."""
        px, py, copies = self.rows(step)
        out = []
        for o0, o1 in _owner_chunks(len(masks[0]), len(px), self.cfg.max_rows):
            x = px.repeat(o1 - o0, *([1] * (px.ndim - 1))).contiguous(memory_format=torch.channels_last)
            chunk = [m[o0:o1] for m in masks]
            out.append(mask_gradients(self.model, self.units, chunk, x, py.repeat(o1 - o0), len(px), copies))
        return torch.cat(out)

    def _trunk(self, step: int):
        """(pooled features [R, F], J [R * F, trunk masks]) of the population rows, where
        J[(r, f), j] = d features[r, f] / d trunk mask j (per row): F backward passes."""
        w = population_window(step, self.cfg)
        if w not in self._jacobian:
            px, _, _ = self.rows(step)
            trunk = [self.units[i] for i in self.head.trunk_units]
            leaves = [torch.ones((len(px), *u.shape), device=px.device, dtype=self.dtype, requires_grad=True) for u in trunk]
            with torch.enable_grad(), masks_applied(trunk, leaves, 1):  # one mask per row
                feats = self.head.features(px)  # [R, F]
                cols = []
                for f in range(feats.shape[1]):
                    seed = torch.zeros_like(feats)
                    seed[:, f] = 1
                    grads = torch.autograd.grad(feats, leaves, seed, retain_graph=f < feats.shape[1] - 1)
                    cols.append(torch.cat([g.flatten(1) for g in grads], 1))  # [R, trunk masks]
            self._jacobian[w] = (feats.detach(), torch.stack(cols, 1).flatten(0, 1))
        return self._jacobian[w]

    def _head_gradients(self, step: int, masks: list[torch.Tensor]) -> torch.Tensor:
        """States whose removals are all in the head: the head on the shared features, the
        trunk's masks by the chain rule through the trunk Jacobian."""
        h = self.head
        feats, jac = self._trunk(step)
        _, py, copies = self.rows(step)
        n, (R, F) = len(masks[0]), feats.shape
        with torch.enable_grad():
            f = masks[h.block_unit].detach().clone().requires_grad_(True)  # [n, F]
            m = masks[h.linear_unit].detach().clone().requires_grad_(True)  # [n, K, F]
            z = feats.expand(n, R, F).clone().requires_grad_(True)  # the unmasked features, per state
            logits = torch.bmm(z * f[:, None], (h.linear.weight * m).transpose(1, 2))  # [n, R, K]
            if h.linear.bias is not None:
                logits = logits + h.linear.bias
            logits = h.post(logits.flatten(0, 1))
            logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
            loss = smoothed_loss(logits, py.repeat(n), n, copies).sum()
            g_f, g_m, g_z = torch.autograd.grad(loss, [f, m, z])
        out = torch.zeros((n, self.candidates), device=feats.device, dtype=g_z.dtype)
        trunk = g_z.flatten(1) @ jac  # [n, R * F] @ [R * F, trunk masks]
        col = 0
        for i in h.trunk_units:
            u = self.units[i]
            out[:, u.offset : u.offset + u.size] = trunk[:, col : col + u.size]
            col += u.size
        for i, g in ((h.block_unit, g_f), (h.linear_unit, g_m)):
            out[:, self.units[i].offset : self.units[i].offset + self.units[i].size] = g.flatten(1)
        return out


# -- the lockstep search ---------------------------------------------------------------


def _example_gradients(model, units, masks, x, y, gens, cfg: FlipConfig) -> torch.Tensor:
    """d CE(copy-averaged logits of each example) / d(its masks): [owners, candidates].

    x [owners, C, H, W] clean inputs; one noise draw per owner from its generator."""
    noisy = torch.cat([noisy_copies(x[k : k + 1], cfg.noise_copies, cfg.noise_std, g) for k, g in enumerate(gens)])
    K = cfg.noise_copies
    out = []
    for o0, o1 in _owner_chunks(len(x), K, cfg.max_rows):
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


# -- the post-removal accuracy ---------------------------------------------------------


def _stage_of_units(model: nn.Module, units: list[Unit]) -> tuple[list[nn.Module], list[int]]:
    """The model as a list of stages and, per unit, the stage that contains it: nn.Sequential
    children for ResNet-9 (so activations in front of a stage can be shared), else one stage."""
    stages = list(model.children()) if isinstance(model, nn.Sequential) else [model]
    where = []
    for u in units:
        where.append(next(i for i, s in enumerate(stages) if any(m is u.module for m in s.modules())))
    return stages, where


@torch.no_grad()
def _final_correct(model, units, masks, removed, images, labels, eval_index, device, dtype, eval_batch, max_rows,
                   progress=False):
    """Correctness [examples, n_eval] of each example's masked model on the evaluation rows.

    Runs the model stage by stage as a tree: examples that removed the same units in
    stages 0..k-1 share the activations in front of stage k (the root is the unmasked
    model, shared by all), so a stage is computed once per distinct set of removals up to
    it.  The children of a node (its examples grouped by their removals in stage k) are
    computed together, with hooks only on the units some of them removed (a mask of ones
    is the identity); a stage that is one ConvBN block is computed once and its children
    are its output times their channel masks."""
    stages, where = _stage_of_units(model, units)
    sizes = [u.size for u in units]
    stage_of = np.repeat(where, sizes)  # stage of each flat candidate
    unit_of = np.repeat(np.arange(len(units)), sizes)  # unit of each flat candidate
    unit_of_module = {id(u.module): i for i, u in enumerate(units)}
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
        if isinstance(stages[k], ConvBN):  # the block's output, masked per child
            z = stages[k](h)
            u = unit_of_module[id(stages[k])]
            for key, group in children:
                mask = masks[u][group[0]].view(1, -1, *([1] * (z.ndim - 2)))
                descend(k + 1, z * mask if key else z, group, cols, target)
            return
        n = len(h)
        for o0, o1 in _owner_chunks(len(children), n, max_rows):
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
    correct = _final_correct(
        model, units, masks, removed, images, labels, eval_index, device, dtype, eval_batch, cfg.max_rows, progress
    )
    return [
        make_result(units, index, removed[k], final[k], int(labels[index]),
                    accuracies_without(correct[k], group[eval_index], eval_index, index))
        for k, index in enumerate(int(i) for i in indices)
    ]
