"""Neuron flipping over the authors' candidate set: parameters, not activations.

memloc's search (memloc.flipping.objective) zeroes the paper's neurons: a conv block's
output channel after BatchNorm and ReLU (the activation z_l of Sec. 3) and single weights of
the final Linear.  The authors' released code zeroes *parameters*: a whole filter of every
conv weight (4-D), and every other parameter element by element (BatchNorm scales and shifts,
the Linear's weights and biases), scored by weight x gradient.  The two differ: a zeroed
filter leaves BatchNorm's shift, so the channel still carries a constant; a zeroed BN scale
leaves the channel at its shift; BN shifts and biases are candidates of their own.

The search is the same as memloc's reference loop otherwise: F̄ (logits averaged over the
noisy copies of memloc.flipping.objective, with its noise and population batch), J = CE of
the example minus the mean CE of the population batch, the candidate with the largest
first-order rise of J (-w * dJ/dw, summed over a filter) zeroed, until F̄ leaves the label.
It edits a copy of the model, one example at a time: it serves bench/flip_candidates.py,
which measures how the candidate set changes fig05 and the claims (docs/fidelity.md).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from memloc.core.data.run_data import TrainingSet
from memloc.core.models.layer_rule import model_layers
from memloc.core.train.evaluation import prepare_batch
from memloc.flipping.masks import smoothed_logits
from memloc.flipping.objective import (
    EVAL_BATCH,
    FlipConfig,
    FlipResult,
    accuracies_without,
    noisy_copies,
    population_rows,
)


@dataclass
class ParameterCandidates:
    """Every parameter of a model as candidates: a 4-D weight one per output filter, any
    other parameter one per element; flat order = parameter order."""

    names: list[str]
    params: list[nn.Parameter]
    layers: list[str]  # model_layers name of each parameter

    def sizes(self) -> list[int]:
        return [p.shape[0] if p.ndim == 4 else p.numel() for p in self.params]


def parameter_candidates(model: nn.Module) -> ParameterCandidates:
    layer_of = {id(p): layer.name for layer in model_layers(model) for p in layer.parameters()}
    named = list(model.named_parameters())
    return ParameterCandidates([n for n, _ in named], [p for _, p in named], [layer_of[id(p)] for _, p in named])


def first_order_rise(cands: ParameterCandidates) -> torch.Tensor:
    """[candidates]: -w * dJ/dw (summed over a filter), J's first-order rise when zeroed;
    the gradients are those of the last backward pass."""
    parts = []
    for p in cands.params:
        wg = -(p.detach() * p.grad)
        parts.append(wg.flatten(1).sum(1) if p.ndim == 4 else wg.flatten())
    return torch.cat(parts)


@torch.no_grad()
def zero_candidate(cands: ParameterCandidates, flat: int) -> tuple[str, int]:
    """Zero candidate `flat`; its (layer, index within the parameter)."""
    for p, layer, size in zip(cands.params, cands.layers, cands.sizes()):
        if flat < size:
            (p[flat] if p.ndim == 4 else p.view(-1)[flat]).zero_()
            return layer, flat
        flat -= size
    raise IndexError(flat)


def smoothed_ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor, copies: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean CE of F̄ on x [rows * copies, ...], F̄'s predictions [rows])."""
    logits = smoothed_logits(model(x).float(), copies)
    return F.cross_entropy(logits, y), logits.argmax(1)


def flip_parameters_until_misclassified(model: nn.Module, index: int, data: TrainingSet, cfg: FlipConfig,
                                        device: torch.device, eval_index: torch.Tensor) -> FlipResult:
    """memloc.flipping.objective.flip_until_misclassified over the authors' candidates, on a
    copy of `model`; accuracy after the removals on the training rows `eval_index`."""
    images, labels, group = data.images, data.labels, data.group
    model = copy.deepcopy(model).eval()
    cands = parameter_candidates(model)
    removed_mask = torch.zeros(sum(cands.sizes()), dtype=torch.bool, device=device)
    x = prepare_batch(images[index : index + 1], device)
    y = labels[index : index + 1].to(device)
    K, layers, within = cfg.noise_copies, [], []
    for step in range(cfg.max_removals + 1):
        model.zero_grad()
        loss, pred = smoothed_ce(model, noisy_copies(x, [index], step, cfg), y, K)
        if step == cfg.max_removals or pred.item() != y.item():
            break
        px, py = population_rows(images, labels, step, cfg, device, x.dtype)
        (loss - smoothed_ce(model, px, py, K)[0]).backward()
        score = first_order_rise(cands)
        score[removed_mask] = float("-inf")
        best = int(score.argmax())
        removed_mask[best] = True
        layer, k = zero_candidate(cands, best)
        layers.append(layer)
        within.append(k)
    correct = []
    with torch.no_grad():
        for s in range(0, len(eval_index), EVAL_BATCH):
            rows = eval_index[s : s + EVAL_BATCH]
            correct.append(model(prepare_batch(images[rows], device)).argmax(1).cpu() == labels[rows])
    flipped = pred.item() != y.item()
    return FlipResult(index=index, removals=len(layers), censored=not flipped,
                      initially_correct=bool(layers) or not flipped, flipped_to=pred.item() if flipped else -1,
                      removed_layers=layers, removed_units=within,
                      **accuracies_without(torch.cat(correct), group[eval_index], eval_index, index))
