"""The ground truth of the benchmark: each training example's memorization units in a model
with example-tied dropout (memloc.dropout.tied), read back from the hash that chose them.

A tied layer's units are its channels; an example owns the k_mem channels that
`ExampleTiedDropout.example_masks` gives it besides the k_gen generalization channels that
every example has (a pure function of (seed, layer, example row, unit)).  Over the layers,
in the flat order of memloc.localize.context.tied_units, that is the example's set of
memorization units; a method's top-k is judged against it."""

from __future__ import annotations

import torch

from memloc.flipping.units import Unit
from memloc.localize.context import tied_layer


def memorization_units(units: list[Unit], index: torch.Tensor, device) -> torch.Tensor:
    """[E, candidates] bool: the memorization units of the examples `index` (rows of the
    data table) among the tied units `units`."""
    parts = []
    for u in units:
        layer = tied_layer(u)
        gen = layer.generalization(device)
        parts.append(layer.example_masks(index.to(device), device) & ~gen)
    return torch.cat(parts, 1)


def generalization_units(units: list[Unit], device) -> torch.Tensor:
    """[candidates] bool: the units that are on for every example."""
    return torch.cat([tied_layer(u).generalization(device) for u in units])


def precision_recall(top: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(precision [E], recall [E]) of top-k candidates top [E, k] against truth [E, candidates]."""
    hits = truth.gather(1, top).sum(1).float()
    return hits / top.shape[1], hits / truth.sum(1).clamp(min=1).float()


def ks_up_to(n: int) -> list[int]:
    """1, 2, 4, ... below n, then n (the example's unit count)."""
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]
