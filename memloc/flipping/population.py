"""The population term of neuron flipping's objective for many removal states at once.

J's population term (memloc.flipping.objective) depends only on the population batch and
the set of removed units (every example starts from the same model), so `PopulationTerm`
computes it once per distinct (batch, removed set), across all the examples
`memloc.flipping.batched.flip_examples` searches.  When the population batch is fixed for
the whole search (resample_every = 0), states whose removals all lie in the model's head
(the last conv block and the Linear, `Head`) - most of them - cost almost nothing: the
trunk's features of the population batch and their Jacobian w.r.t. the trunk's masks are
computed once, and each state then needs only its small head and a matrix product (chain
rule through the unchanged trunk).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from memloc.core.blocks import ConvBN
from memloc.flipping.masks import Unit, mask_gradients, masks_applied, owner_chunks, smoothed_loss
from memloc.flipping.objective import FlipConfig, population_rows, population_window


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
        for o0, o1 in owner_chunks(len(masks[0]), len(px), self.cfg.max_rows):
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
            leaves = [torch.ones((len(px), *u.shape), device=px.device, dtype=self.dtype, requires_grad=True)
                      for u in trunk]
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
