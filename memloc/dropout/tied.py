"""Example-tied dropout (Sec. 6.2 of the paper) and the two baselines of tab3.

In one layer with C units (channels of a conv layer):
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

- ``train``: the generalization units and the example's own memorization units, no
  rescaling (as the authors' code), so a training example is evaluated as it was trained;
- ``drop``: every memorization unit zeroed (what the paper reports as "after dropping"),
  the generalization units multiplied by a factor (`DROP_SCALES`): ``none`` = 1, the paper's
  text ("zero-out their activations"); ``mass`` = (k_gen + k_mem) / k_gen, the input mass
  the next layer saw in training; ``authors`` = (p_gen + p_mem) / p_gen, the authors' code;
- ``all``: every unit on, memorization units multiplied by k_mem / (C - k_gen), the
  probability that one is on for a training example (like standard dropout's evaluation);
  for examples that own no units (the test set) before dropping.

Where the layers go (after which modules of a model) is memloc.dropout.placement's
(`add_dropout`); here are the layers.  Their modes are set by
memloc.core.example_index.index_mode, and a batch's example indices reach them through
memloc.core.example_index.forward_with_index, wherever they sit (the protocol training and
evaluation speak to them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from memloc.core.example_index import MODES, ExampleIndexed, layers_in_order

KINDS = ("example_tied", "standard", "fixed_sparse")
PLACEMENTS = ("stages", "blocks")
DROP_SCALES = ("none", "mass", "authors")


@dataclass
class DropoutConfig:
    """Which dropout `add_dropout` inserts, and where (memloc.dropout.model.DropoutModelConfig.dropout).

    kind: example_tied | standard | fixed_sparse.  The baselines of tab3 have the paper's
    "same sparsity" s = p_gen, a fraction s of the activations zeroed (as in the authors'
    code): standard = torch's nn.Dropout(p = p_gen) (element-wise, rescaled by 1/(1 - p) in
    training); fixed_sparse = one fixed random element-wise mask keeping 1 - p_gen of the
    activations, rescaled by 1/(1 - p_gen), the same in training and evaluation.
    placement (stages | blocks; ResNet-9 only, memloc.dropout.placement) and drop_scale
    (none | mass | authors; module docstring; None for the baselines, which have nothing to
    drop, so that their config does not change with it).
    """

    kind: str
    p_gen: float
    p_mem: float  # example_tied only (0 for the baselines)
    seed: int  # of the unit choice (example_tied, fixed_sparse)
    placement: str
    drop_scale: str | None  # example_tied only

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown dropout kind {self.kind!r}; known: {', '.join(KINDS)}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"unknown dropout placement {self.placement!r}; known: {', '.join(PLACEMENTS)}")
        if self.drop_scale not in (DROP_SCALES if self.kind == "example_tied" else (*DROP_SCALES, None)):
            raise ValueError(f"unknown drop_scale {self.drop_scale!r}; known: {', '.join(DROP_SCALES)}")
        if not 0 < self.p_gen < 1 or not 0 <= self.p_mem <= 1:
            raise ValueError(f"need 0 < p_gen < 1 and 0 <= p_mem <= 1, got p_gen={self.p_gen}, p_mem={self.p_mem}")


# -- the counter-based hash -------------------------------------------------------------

_M32 = 0xFFFFFFFF


def _mul32(x, c: int):
    """(x * c) mod 2^32 for x in [0, 2^32), without int64 overflow (partial products < 2^49)."""
    return ((((x * (c >> 16)) & 0xFFFF) << 16) + x * (c & 0xFFFF)) & _M32


def mix32(x):
    """A bijective 32-bit integer hash (Wellons' "lowbias32"), on int64 tensors or Python ints."""
    x = x & _M32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _key(seed: int, layer: int, stream: int) -> int:
    """A hash of (seed, layer, stream); stream 0: generalization units, 1: memorization."""
    return mix32(mix32((seed & _M32) + 0x9E3779B9) ^ ((layer * 0x85EBCA6B + stream) & _M32))


def unit_scores(seed: int, layer: int, index: torch.Tensor | None, units: int, device) -> torch.Tensor:
    """Distinct pseudo-random ranks of `units` units, [B, units] int64 (or [units] without index):
    hash(seed, layer, index, unit) * units + unit, the suffix makes every score of a row
    distinct (the hash is 32 bits), so a top-k is deterministic on every device."""
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
    return mask.index_fill_(0, unit_scores(seed, layer, None, units, device).topk(k_gen, largest=False).indices, True)


# -- the layers ---------------------------------------------------------------------------


class ExampleTiedDropout(ExampleIndexed):
    """Example-tied dropout on activations whose units are on dim `dim` (1: channels of
    [B, C, H, W], features of [B, F]; -1: features of [B, T, D] tokens).  `index` ([B] example
    indices) is set for each forward by `forward_with_index`; `after` names the module whose
    output it acts on (for messages; None inside ResNet-9's Sequential)."""

    def __init__(self, units: int, cfg: DropoutConfig, layer: int, dim: int = 1, after: str | None = None):
        super().__init__()
        if dim not in (1, -1):
            raise ValueError(f"example-tied dropout acts on dim 1 or -1 of its input, not {dim}")
        self.units, self.layer, self.seed, self.dim, self.after = units, layer, cfg.seed, dim, after
        self.k_gen, self.k_mem = unit_counts(units, cfg.p_gen, cfg.p_mem)
        self.drop_factor = {"none": 1.0, "mass": (self.k_gen + self.k_mem) / self.k_gen,
                            "authors": (cfg.p_gen + cfg.p_mem) / cfg.p_gen}[cfg.drop_scale]
        self._gen: dict[torch.device, torch.Tensor] = {}  # cache of generalization_mask per device

    def extra_repr(self) -> str:
        where = f", after={self.after}, dim={self.dim}" if self.after else ""
        return (f"units={self.units}, k_gen={self.k_gen}, k_mem={self.k_mem}, layer={self.layer}, "
                f"mode={self.mode}, drop_factor={self.drop_factor:.3g}{where}")

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
            return gen.float() * self.drop_factor
        mem_on = self.k_mem / max(self.units - self.k_gen, 1)
        return torch.where(gen, 1.0, mem_on)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; known: {MODES}")
        if x.ndim < 2 or x.shape[self.dim] != self.units:
            where = f" after {self.after!r}" if self.after else ""
            raise RuntimeError(f"example-tied dropout{where} has {self.units} units on dim {self.dim} of its input, "
                               f"got shape {tuple(x.shape)}")
        if self.mode == "train":
            if self.index is None:
                raise RuntimeError("example-tied dropout in 'train' mode needs the example indices: "
                                   "forward_with_index(model, x, index)")
            scale = self.example_masks(self.index, x.device).to(x.dtype)  # [B, C]
        else:
            scale = self.unit_scale(x.device).to(x.dtype).expand(x.shape[0], -1)
        # [B, C] -> [B, C, 1, ...] (dim 1) or [B, 1, ..., C] (dim -1)
        ones = [1] * (x.ndim - 2)
        return x * (scale.view(*scale.shape, *ones) if self.dim == 1 else scale.view(scale.shape[0], *ones, -1))


class FixedSparseDropout(nn.Module):
    """A sparse network: one fixed mask, a hash of (seed, layer, element), keeps round((1 - s)
    * C * H * W) activation elements, the same for every example, in training and evaluation,
    rescaled by 1 / (1 - s) as the authors' FixedDropout (a constant the next BN absorbs)."""

    def __init__(self, units: int, sparsity: float, layer: int, seed: int):
        super().__init__()
        self.units, self.sparsity, self.layer, self.seed = units, sparsity, layer, seed
        self._mask: dict[tuple, torch.Tensor] = {}  # (device, shape) -> [C, H, W] float mask

    def extra_repr(self) -> str:
        return f"units={self.units}, sparsity={self.sparsity}, layer={self.layer}"

    def mask(self, shape: tuple[int, ...], device) -> torch.Tensor:
        key = (torch.device(device), tuple(shape))
        if key not in self._mask:
            n = int(torch.Size(shape).numel())
            keep = unit_counts(n, 1 - self.sparsity, 0.0)[0]
            kept = generalization_mask(n, keep, self.seed, self.layer, device).view(shape)
            self._mask[key] = kept.float() / (1 - self.sparsity)
        return self._mask[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask(x.shape[1:], x.device).to(x.dtype)


# -- finding the layers --------------------------------------------------------------------


def dropout_layers(model: nn.Module) -> list[nn.Module]:
    """Every dropout layer of `model` in module order: submodules and hook-held ones
    (memloc.core.example_index.HELD)."""
    return [m for m in layers_in_order(model) if isinstance(m, (ExampleTiedDropout, FixedSparseDropout, nn.Dropout))]


def tied_modules(model: nn.Module) -> list[ExampleTiedDropout]:
    return [m for m in dropout_layers(model) if isinstance(m, ExampleTiedDropout)]
