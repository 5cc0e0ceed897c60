"""The population term of neuron flipping's objective for many removal states at once.

J's population term (memloc.flipping.objective) depends only on the step (its population
batch and that batch's noisy copies) and on the set of removed units (every example starts
from the same model), so `PopulationTerm` computes it once per distinct (step, removed
set), across all the examples `memloc.flipping.batched.flip_examples` searches.

A state whose earliest removal lies in stage s of the model (its nn.Sequential children)
computes stages 0 .. s-1 exactly as the unmasked model does.  So, per call, the step's
noisy population rows go through the unmasked model once (the graph kept); each state
runs only stages s .. end with its masks, forward and backward, and the gradients of the
masks in front of s come from one backward pass through the shared graph with the state's
gradient at the input of stage s (the chain rule: the same arithmetic as the masked model,
without the forward pass of its unmasked prefix).  For states whose removals lie in the
last block and the Linear, most of them, that prefix is nearly the whole forward pass.
Which stage a state starts at depends on the state alone, so results do not depend on
which examples are searched together.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from memloc.flipping.masks import masks_applied, model_stages, owner_chunks, smoothed_loss
from memloc.flipping.objective import FlippingProblem, population_rows


class PopulationTerm:
    """d(mean population CE of F̄)/d(masks) of removal states of one model, each computed once.

    A state is (step, frozenset of removed flat unit indices); its gradient is a row
    [candidates]."""

    def __init__(self, problem: FlippingProblem):
        p = problem
        self.model, self.units, self.images, self.labels = p.model, p.units, p.data.images, p.data.labels
        self.cfg, self.device, self.dtype = p.cfg, p.device, p.dtype
        units = p.units
        self.stages, self.unit_stage = model_stages(p.model, units)
        self.stage_of = np.repeat(self.unit_stage, [u.size for u in units])  # stage of each flat candidate
        self.candidates = sum(u.size for u in units)
        self.memo: dict = {}
        self._rows: tuple = (None, None)  # (step, rows) of the last step asked for

    def rows(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(F̄'s inputs [P * copies, ...], labels [P]) of the population batch of `step`."""
        if self._rows[0] != step:
            self._rows = (step, population_rows(self.images, self.labels, step, self.cfg, self.device, self.dtype))
        return self._rows[1]

    def first_stage(self, removed: frozenset) -> int:
        """The stage of a state's earliest removal (the number of stages for none)."""
        return min((int(self.stage_of[f]) for f in removed), default=len(self.stages))

    def gradients(self, step: int, removed: list[frozenset], masks: list[torch.Tensor]) -> torch.Tensor:
        """Rows [len(removed), candidates] for the states (step, removed[k]) with
        masks[.][k]; computes the states not seen before."""
        keys = [(step, r) for r in removed]
        first: dict = {}  # each new state, and the first row that has it
        for k, key in enumerate(keys):
            if key not in self.memo and key not in first:
                first[key] = k
        if first:
            rows = list(first.values())
            pick = torch.tensor(rows, device=masks[0].device)
            starts = [self.first_stage(removed[k]) for k in rows]
            new = self._compute(step, starts, [m[pick] for m in masks])
            self.memo.update(zip((keys[k] for k in rows), new))
        return torch.stack([self.memo[key] for key in keys])

    def _compute(self, step: int, starts: list[int], masks: list[torch.Tensor]) -> torch.Tensor:
        """Gradients [states, candidates] of states that start at stages `starts`, with
        masks [states, ...] per unit."""
        px, py = self.rows(step)
        inputs, leaves = self._shared_pass(px, max(starts))
        out = torch.zeros((len(starts), self.candidates), device=px.device, dtype=px.dtype)
        by_start = defaultdict(list)
        for k, s in enumerate(starts):
            by_start[s].append(k)
        for s, states in by_start.items():
            for o0, o1 in owner_chunks(len(states), len(px), self.cfg.max_rows):
                sel = states[o0:o1]
                pick = torch.tensor(sel, device=masks[0].device)
                self._suffix(out, sel, s, inputs, leaves, py, [m[pick] for m in masks])
        return out

    def _shared_pass(self, px: torch.Tensor, top: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The unmasked model's stages 0 .. top-1 on the population rows, with graph:
        (inputs[s] = the input of stage s for s <= top, all-ones mask leaves [1, ...] per
        unit, applied to every row)."""
        leaves = [torch.ones((1, *u.shape), device=px.device, dtype=self.dtype, requires_grad=True)
                  for u in self.units]
        used = [i for i, s in enumerate(self.unit_stage) if s < top]
        inputs = [px]
        with torch.enable_grad(), masks_applied([self.units[i] for i in used], [leaves[i] for i in used], len(px)):
            for stage in self.stages[:top]:
                inputs.append(stage(inputs[-1]))
        return inputs, leaves

    def _suffix(self, out, sel: list[int], s: int, inputs, leaves, py, masks: list[torch.Tensor]) -> None:
        """Fill out[sel] for states starting at stage s: their masked stages s .. end on the
        shared input of stage s (repeated per state), then the prefix's masks by one
        backward pass each through the shared graph."""
        h, R, n = inputs[s], len(inputs[0]), len(sel)
        post = [i for i, st in enumerate(self.unit_stage) if st >= s]
        pre = [i for i, st in enumerate(self.unit_stage) if st < s]
        z = h.detach().repeat(n, *([1] * (h.ndim - 1)))  # [n * R, ...], state-major
        if z.ndim == 4:
            z = z.contiguous(memory_format=torch.channels_last)
        z.requires_grad_(bool(pre))
        post_leaves = [masks[i].detach().clone().requires_grad_(True) for i in post]
        with torch.enable_grad():
            with masks_applied([self.units[i] for i in post], post_leaves, R):
                logits = z
                for stage in self.stages[s:]:
                    logits = stage(logits)
            logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
            loss = smoothed_loss(logits, py.repeat(n), n, self.cfg.noise_copies).sum()
            grads = torch.autograd.grad(loss, post_leaves + ([z] if pre else []))
        for i, g in zip(post, grads):
            self._put(out, sel, i, g)
        if not pre:
            return
        g_z = grads[-1].view(n, *h.shape)  # d loss / d (stage s input), per state
        with torch.enable_grad():
            for j, k in enumerate(sel):
                for i, g in zip(pre, torch.autograd.grad(h, [leaves[i] for i in pre], g_z[j], retain_graph=True)):
                    self._put(out, [k], i, g)

    def _put(self, out: torch.Tensor, rows: list[int], unit: int, grad: torch.Tensor) -> None:
        u = self.units[unit]
        out[rows, u.offset : u.offset + u.size] = grad.flatten(1).to(out.dtype)
