"""Example-tied dropout (Sec. 6.2 of the paper) and the two baselines of tab3.

Example-tied dropout, in one layer with C units (channels of a conv layer):

- k_gen = round(p_gen * C) *generalization* units are always on;
- of the other C - k_gen units, every training example owns k_mem = round(p_mem * (C - k_gen))
  *memorization* units, which are on only in that example's forward pass.

Which units an example owns is a pure function of (seed, layer, example index, unit): a
counter-based integer hash (`unit_scores`) ranks the units and the k_mem lowest-ranked
non-generalization units are the example's.  The masks of a batch are computed on the
device from the batch's indices, with no table that grows with the dataset, and are the
same in every epoch, process and device (integer arithmetic only).

Modes (`ExampleTiedDropout.mode`, orthogonal to nn.Module.train/eval, which only switches
batch norm):

- ``train``: keep the generalization units and the example's own memorization units, no
  rescaling (the authors' code does the same), so an activation has the same scale in
  training and in the evaluation of a training example;
- ``drop``: zero every memorization unit, multiply the generalization units by
  (k_gen + k_mem) / k_gen.  In training the next layer summed k_gen + k_mem active units
  per example; the factor restores that expected input mass, so the batch-norm running
  statistics (gathered in training) still fit.  (The authors use (p_gen + p_mem) / p_gen,
  the same idea with p_mem taken as a fraction of all units.)  This is what the paper
  reports as "after dropping";
- ``all``: every unit on, memorization units multiplied by k_mem / (C - k_gen), the
  probability that a memorization unit is on for a training example (like standard
  dropout's evaluation).  Used for examples that own no units (the test set) before
  dropping.

Placement in ResNet-9 (`add_dropout`): after every ConvBN block, i.e. after layers 1-8.
Inside a residual block the dropout of the body's second block is moved after the skip
addition, so the skip path cannot carry memorization units past it.  The final linear
layer (layer 9) gets none: its outputs are the class logits, and dropping a logit removes
a class rather than a feature; its input is layer 8's (pooled) dropout output.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from memloc.core.blocks import ConvBN, Residual

MODES = ("train", "drop", "all")
KINDS = ("example_tied", "standard", "fixed_sparse")


@dataclass
class DropoutConfig:
    """Which dropout `add_dropout` inserts (stored in ModelConfig.extra["dropout"]).

    kind: example_tied | standard (torch's nn.Dropout with drop probability p_gen, the
    paper's "standard dropout, p = p_gen") | fixed_sparse (a fixed random set of
    round(p_gen * C) units on, the same in training and evaluation: a sparse network).
    """

    kind: str = "example_tied"
    p_gen: float = 0.4
    p_mem: float = 0.2  # example_tied only
    seed: int = 0  # of the unit choice (example_tied, fixed_sparse)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown dropout kind {self.kind!r}; known: {', '.join(KINDS)}")
        if not 0 < self.p_gen < 1 or not 0 <= self.p_mem <= 1:
            raise ValueError(f"need 0 < p_gen < 1 and 0 <= p_mem <= 1, got p_gen={self.p_gen}, p_mem={self.p_mem}")


# -- the counter-based hash -------------------------------------------------------------

_M32 = 0xFFFFFFFF


def _mul32(x, c: int):
    """(x * c) mod 2^32 for x in [0, 2^32), without int64 overflow (partial products < 2^49)."""
    return ((((x * (c >> 16)) & 0xFFFF) << 16) + x * (c & 0xFFFF)) & _M32


def mix32(x):
    """A bijective 32-bit integer hash with full avalanche (Wellons' "lowbias32"), on int64
    tensors or Python ints."""
    x = x & _M32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _key(seed: int, layer: int, stream: int) -> int:
    """A hash of (seed, layer, stream); stream 0 = generalization units, 1 = memorization."""
    return mix32(mix32((seed & _M32) + 0x9E3779B9) ^ ((layer * 0x85EBCA6B + stream) & _M32))


def unit_scores(seed: int, layer: int, index: torch.Tensor | None, units: int, device) -> torch.Tensor:
    """Distinct pseudo-random ranks of `units` units, [B, units] int64 (or [units] without index).

    score = hash(seed, layer, index, unit) * units + unit: the hash is 32 bits, the suffix
    makes every score of a row distinct, so a top-k is deterministic on every device.
    """
    u = torch.arange(units, device=device, dtype=torch.int64)
    unit_hash = mix32(u * 0x27D4EB2F + 0x165667B1)
    if index is None:
        h = mix32(_key(seed, layer, 0) ^ unit_hash)
    else:
        ex = mix32(_key(seed, layer, 1) ^ (index.to(device=device, dtype=torch.int64) & _M32))
        h = mix32(ex[:, None] ^ unit_hash[None, :])
    return h * units + u


def unit_counts(units: int, p_gen: float, p_mem: float) -> tuple[int, int]:
    """(k_gen, k_mem): at least one of each where the fraction is positive and units remain."""
    k_gen = min(units, max(1, round(p_gen * units))) if p_gen > 0 else 0
    rest = units - k_gen
    k_mem = min(rest, max(1, round(p_mem * rest))) if p_mem > 0 and rest > 0 else 0
    return k_gen, k_mem


def generalization_mask(units: int, k_gen: int, seed: int, layer: int, device) -> torch.Tensor:
    """[units] bool: the layer's k_gen always-on units (lowest scores of the example-free hash)."""
    mask = torch.zeros(units, dtype=torch.bool, device=device)
    mask[unit_scores(seed, layer, None, units, device).topk(k_gen, largest=False).indices] = True
    return mask


# -- the layers ---------------------------------------------------------------------------


class ExampleTiedDropout(nn.Module):
    """Example-tied dropout on [B, C, ...] activations; see the module docstring for modes.

    `index` ([B] example indices) is set by `ExampleIndexedSequential` for each forward."""

    def __init__(self, units: int, p_gen: float, p_mem: float, layer: int, seed: int):
        super().__init__()
        self.units, self.layer, self.seed = units, layer, seed
        self.k_gen, self.k_mem = unit_counts(units, p_gen, p_mem)
        self.mode = "train"
        self.index: torch.Tensor | None = None
        self._gen: dict[torch.device, torch.Tensor] = {}  # cache of generalization_mask per device

    def extra_repr(self) -> str:
        return f"units={self.units}, k_gen={self.k_gen}, k_mem={self.k_mem}, layer={self.layer}, mode={self.mode}"

    def generalization(self, device) -> torch.Tensor:
        device = torch.device(device)
        if device not in self._gen:
            self._gen[device] = generalization_mask(self.units, self.k_gen, self.seed, self.layer, device)
        return self._gen[device]

    def example_masks(self, index: torch.Tensor, device) -> torch.Tensor:
        """[B, C] bool: generalization units plus each example's own memorization units."""
        gen = self.generalization(device)
        scores = unit_scores(self.seed, self.layer, index, self.units, device)
        scores = scores.masked_fill(gen, torch.iinfo(torch.int64).max)  # never pick a generalization unit
        mask = gen.expand(len(index), -1).clone()
        mask.scatter_(1, scores.topk(self.k_mem, dim=1, largest=False).indices, True)
        return mask

    def unit_scale(self, device) -> torch.Tensor:
        """[C] float multiplier of the `drop` and `all` modes."""
        gen = self.generalization(device)
        if self.mode == "drop":
            return gen.float() * ((self.k_gen + self.k_mem) / self.k_gen)
        mem_on = self.k_mem / max(self.units - self.k_gen, 1)
        return torch.where(gen, 1.0, mem_on)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; known: {MODES}")
        if self.mode == "train":
            if self.index is None:
                raise RuntimeError(
                    "example-tied dropout in 'train' mode needs the example indices: call model(x, index)"
                )
            scale = self.example_masks(self.index, x.device).to(x.dtype)  # [B, C]
        else:
            scale = self.unit_scale(x.device).to(x.dtype).expand(x.shape[0], -1)
        return x * scale.view(*scale.shape, *([1] * (x.ndim - 2)))


class FixedSparseDropout(nn.Module):
    """A fixed random set of round(p * C) units on, all others zero, in every mode (no rescaling:
    the mask is the same in training and evaluation, so nothing needs compensating)."""

    def __init__(self, units: int, p_keep: float, layer: int, seed: int):
        super().__init__()
        self.units, self.layer, self.seed = units, layer, seed
        self.k_keep = unit_counts(units, p_keep, 0.0)[0]
        self._mask: dict[torch.device, torch.Tensor] = {}

    def extra_repr(self) -> str:
        return f"units={self.units}, k_keep={self.k_keep}, layer={self.layer}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device not in self._mask:
            self._mask[x.device] = generalization_mask(self.units, self.k_keep, self.seed, self.layer, x.device)
        return x * self._mask[x.device].to(x.dtype).view(-1, *([1] * (x.ndim - 2)))


class ExampleIndexedSequential(nn.Sequential):
    """nn.Sequential whose forward takes the batch's example indices: model(x, index).

    `takes_example_index` is the hook the training loop and evaluation look for."""

    takes_example_index = True

    def forward(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        tied = tied_modules(self)
        for m in tied:
            m.index = index
        try:
            return super().forward(x)
        finally:
            for m in tied:
                m.index = None


def tied_modules(model: nn.Module) -> list[ExampleTiedDropout]:
    return [m for m in model.modules() if isinstance(m, ExampleTiedDropout)]


@contextmanager
def dropout_mode(model: nn.Module, mode: str):
    """Set every example-tied dropout of `model` to `mode` (train / drop / all) for a block;
    a no-op for a model without one."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; known: {MODES}")
    tied = tied_modules(model)
    before = [m.mode for m in tied]
    for m in tied:
        m.mode = mode
    try:
        yield model
    finally:
        for m, old in zip(tied, before):
            m.mode = old


def forward_with_index(model: nn.Module, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """model(x, index) for models that take example indices, model(x) for all others."""
    return model(x, index) if getattr(model, "takes_example_index", False) else model(x)


def _dropout_layer(cfg: DropoutConfig, units: int, layer: int) -> nn.Module:
    if cfg.kind == "example_tied":
        return ExampleTiedDropout(units, cfg.p_gen, cfg.p_mem, layer, cfg.seed)
    if cfg.kind == "fixed_sparse":
        return FixedSparseDropout(units, cfg.p_gen, layer, cfg.seed)
    return nn.Dropout(cfg.p_gen)


def _insert(seq: nn.Sequential, cfg: DropoutConfig, layer_numbers) -> list[nn.Module]:
    out: list[nn.Module] = []
    for m in seq:
        if isinstance(m, ConvBN):
            out += [m, _dropout_layer(cfg, m[0].out_channels, next(layer_numbers))]
        elif isinstance(m, Residual) and isinstance(m.body, nn.Sequential):
            body = _insert(m.body, cfg, layer_numbers)
            after_sum = body.pop()  # the body's last dropout goes after the skip addition
            out += [Residual(nn.Sequential(*body)), after_sum]
        else:
            out.append(m)
    return out


def add_dropout(model: nn.Module, cfg: DropoutConfig | dict) -> ExampleIndexedSequential:
    """ResNet-9 with a dropout layer after each ConvBN block (layers 1-8, numbered as in
    `model_layers`); shares the given model's modules."""
    cfg = cfg if isinstance(cfg, DropoutConfig) else DropoutConfig(**cfg)
    if not (isinstance(model, nn.Sequential) and any(isinstance(m, ConvBN) for m in model)):
        raise ValueError("dropout layers are placed after ConvBN blocks: only ResNet-9 is supported")
    return ExampleIndexedSequential(*_insert(model, cfg, itertools.count(1)))
