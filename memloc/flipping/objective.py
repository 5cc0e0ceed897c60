"""Neuron flipping (Sec. 6.1): how many units must be zeroed until an example is misclassified?

On a trained model in eval mode, the paper's classifier is F̄: the model's logits averaged
over `noise_copies` copies of the input, each with Gaussian noise whose norm is
`noise_scale` (1% in the authors' code) of the input's norm.  Repeat until F̄'s prediction
for the example differs from its training label:

    J = CE(F̄(x), y) - mean over a random training batch (the population batch) of CE(F̄(x_j), y_j)

score every candidate unit by the first-order rise of J when the unit is zeroed, zero the
best one, count.  Both terms go through F̄, as the paper's objective writes them and the
authors' code computes them.  Candidates (the paper's "neurons", memloc.flipping.units) are
every whole output channel of a conv block (score -sum over the channel of a * dJ/da), every
output feature of a hidden Linear's block (likewise) and every single weight of the final
Linear (score -w * dJ/dw); ties go to the first in flat order.

Randomness is a function of (run seed, step, training row) only: the noise of row r at
removal step t comes from its own generator, whether r is the example flipped or a row of
the population batch (the authors add the noise to one batch holding both), and the
population batch of a step is the same for every example; so results do not depend on
which examples are processed together (sharding).  The population batch is drawn once for
the whole search by default (resample_every = 0), as in the authors' code; its noise, like
the example's, is drawn afresh at every step (each evaluation of F̄ draws new noise).

This module holds the objective, the results and `flip_until_misclassified`, the plain
one-example loop that is the reference; `memloc.flipping.batched.flip_examples` flips
many examples at once with the same results (the same arithmetic, shared; only the last
bits of rounding can differ).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from memloc.core.data.run_data import TrainingSet
from memloc.core.train.evaluation import prepare_batch
from memloc.flipping.masks import (
    describe,
    flat_masks,
    full_masks,
    mask_gradients,
    masked_predictions,
    remove,
    smoothed_predictions,
)
from memloc.flipping.units import Unit, candidate_units, check_units


@dataclass
class FlipConfig:
    """The settings of a search (config section `flipping`; seed: the run's training seed)."""

    max_removals: int  # stop (censored) after this many removals
    noise_copies: int  # noisy copies of an input whose logits F̄ averages (the paper's 5)
    noise_scale: float  # each copy's noise norm as a fraction of its input's norm (the authors' 1%)
    population_batch: int  # training examples in J's population term
    resample_every: int  # draw a new population batch every this many steps (0: never)
    seed: int
    examples_per_batch: int  # examples flipped together by flip_examples
    max_rows: int  # inputs per forward pass (memory bound of flip_examples)
    memory_gb: float | None  # memory cap of a pass's saved tensors (None: free CUDA memory; CPU: none)
    accuracy_examples: int | None  # training rows the post-removal accuracy is measured on (None: all)


@dataclass
class FlippingProblem:
    """What a batched search flips on (memloc.flipping.batched): the model (in eval mode), its
    candidate units, the training set (images [N, ...], labels [N], group [N] = is noisy), the
    settings, and where and in which dtype the passes compute."""

    model: nn.Module
    units: list[Unit]
    data: TrainingSet
    cfg: FlipConfig
    device: torch.device
    dtype: torch.dtype


# -- the objective J and its randomness ------------------------------------------------

NOISE, POPULATION = 0, 1  # the two random streams of a run seed


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([p % 2**32 for p in parts]).generate_state(1)[0])


def input_noise(seed: int, step: int, rows: Sequence[int], copies: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Standard normal draws [len(rows), copies, *shape] (float32, CPU) for training rows
    `rows` at removal step `step`; row r's come from a generator seeded by (seed, step, r)
    alone, so they are the same in every term, search and shard that asks for them."""
    out = torch.empty((len(rows), copies, *shape))
    for k, r in enumerate(rows):
        g = torch.Generator().manual_seed(_seed(seed, NOISE, step, int(r)))
        out[k] = torch.randn((copies, *shape), generator=g)
    return out


def noisy_copies(x: torch.Tensor, rows: Sequence[int], step: int, cfg: FlipConfig) -> torch.Tensor:
    """F̄'s inputs: x [E, C, H, W] (normalized, on the device; training rows `rows`) ->
    [E * copies, C, H, W], copies adjacent, each x + noise of norm noise_scale * ||x||
    (the authors' l2_noise: a Gaussian draw rescaled to 1% of the input's norm)."""
    eps = input_noise(cfg.seed, step, rows, cfg.noise_copies, tuple(x.shape[1:])).to(x.device, x.dtype)
    size = x.flatten(1).norm(dim=1)[:, None] / eps.flatten(2).norm(dim=2)  # [E, copies]
    out = x[:, None] + cfg.noise_scale * size.view(*size.shape, *([1] * (x.ndim - 1))) * eps
    out = out.reshape(-1, *x.shape[1:])
    return out.contiguous(memory_format=torch.channels_last) if out.ndim == 4 else out


def population_window(step: int, cfg: FlipConfig) -> int:
    """Which population batch step `step` uses: 0 for every step when resample_every = 0."""
    return step // cfg.resample_every if cfg.resample_every else 0


def population_indices(seed: int, step: int, n: int, cfg: FlipConfig) -> torch.Tensor:
    """Indices of the population batch used at `step`: a random batch of the n training
    rows, redrawn every cfg.resample_every steps (never if 0), the same for every example."""
    g = torch.Generator().manual_seed(_seed(seed, POPULATION, population_window(step, cfg)))
    return torch.randperm(n, generator=g)[: cfg.population_batch]


def population_rows(images, labels, step: int, cfg: FlipConfig, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(F̄'s inputs [P * copies, ...], labels [P]) of the population batch of `step`: its
    rows' noisy copies, with the noise of (seed, step, row)."""
    idx = population_indices(cfg.seed, step, len(labels), cfg)
    x = prepare_batch(images[idx], device).to(dtype)
    return noisy_copies(x, idx.tolist(), step, cfg), labels[idx].to(device)


# -- results ---------------------------------------------------------------------------


@dataclass
class FlipResult:
    index: int  # the example's row in the training set
    removals: int  # units zeroed until F̄'s prediction changed (max_removals if censored)
    censored: bool  # still correctly classified (by F̄) after max_removals removals
    initially_correct: bool  # False: F̄ misclassifies it before any removal (removals = 0)
    flipped_to: int  # F̄'s predicted class after the removals (-1 if censored)
    removed_layers: list[str] = field(default_factory=list)  # layer of each removal, in order
    removed_units: list[int] = field(default_factory=list)  # index of the unit within its layer
    accuracy_clean: float = float("nan")  # on the other clean training examples, after the removals
    accuracy_noisy: float = float("nan")  # on the other noisy training examples (w.r.t. their labels)
    accuracy_train: float = float("nan")  # on all other training examples


def results_frame(results: list[FlipResult]) -> pd.DataFrame:
    return pd.DataFrame([r.__dict__ for r in results])


def accuracies_without(correct: torch.Tensor, group: torch.Tensor, eval_index: torch.Tensor, index: int) -> dict:
    """Accuracies on clean / noisy / all evaluation examples other than `index`.

    correct [n_eval] bool, group [n_eval] bool (noisy), eval_index [n_eval] training rows."""
    others = eval_index != index
    out = {}
    for name, sel in (("accuracy_clean", ~group), ("accuracy_noisy", group), ("accuracy_train", None)):
        keep = others if sel is None else others & sel
        out[name] = correct[keep].float().mean().item() if keep.any() else float("nan")
    return out


def make_result(
    units: list[Unit], index: int, removed: list[int], prediction: int, label: int, accuracies: dict
) -> FlipResult:
    flipped = prediction != label
    return FlipResult(
        index=index,
        removals=len(removed),
        censored=not flipped,
        initially_correct=bool(removed) or not flipped,
        flipped_to=prediction if flipped else -1,
        removed_layers=[describe(units, f)[0] for f in removed],
        removed_units=[describe(units, f)[1] for f in removed],
        **accuracies,
    )


# -- the reference: one example at a time ----------------------------------------------


EVAL_BATCH = 512  # rows per pass of the post-removal accuracy (memory only)


def flip_until_misclassified(model: nn.Module, index: int, data: TrainingSet, cfg: FlipConfig, device: torch.device,
                             eval_index: torch.Tensor | None = None, units: list[Unit] | None = None) -> FlipResult:
    """Flip training example `index` of `data` (images uint8 [N, ...], labels [N], group [N] =
    is noisy) on `model` (put in eval mode): the plain per-example loop.

    Each step evaluates F̄ on the example (its prediction decides whether the search
    stops, its loss is J's first term) and on the step's population batch.  Accuracy after
    the removals is measured on the clean inputs of the training rows `eval_index`
    (default: all of them), leaving the example itself out.  `units`: the candidates
    (default: memloc.flipping.units.candidate_units; a prefix of that list, e.g. without the
    classifier's weights, keeps the flat numbering)."""
    images, labels, group = data.images, data.labels, data.group
    model.eval()
    units = candidate_units(model) if units is None else units
    dtype = next(model.parameters()).dtype
    masks = full_masks(units, 1, device, dtype)
    x = prepare_batch(images[index : index + 1], device).to(dtype)
    check_units(model, units, x)
    y = labels[index : index + 1].to(device)
    K = cfg.noise_copies
    removed: list[int] = []
    for step in range(cfg.max_removals + 1):
        noisy = noisy_copies(x, [index], step, cfg)
        if step == cfg.max_removals:  # censored unless F̄ is wrong now
            pred = smoothed_predictions(model, units, masks, noisy, K, K).item()
            break
        grad, pred = mask_gradients(model, units, masks, noisy, y, K, K)
        pred = pred.item()
        if pred != y.item():
            break
        px, py = population_rows(images, labels, step, cfg, device, dtype)
        grad = grad - mask_gradients(model, units, masks, px, py, len(px), K)[0]
        score = -grad[0]
        score[flat_masks(masks)[0] == 0] = float("-inf")
        best = int(score.argmax())
        remove(masks, units, 0, best)
        removed.append(best)
    eval_index = torch.arange(len(labels)) if eval_index is None else eval_index
    correct = []
    for s in range(0, len(eval_index), EVAL_BATCH):
        rows = eval_index[s : s + EVAL_BATCH]
        ex = prepare_batch(images[rows], device).to(dtype)
        correct.append(masked_predictions(model, units, masks, ex, len(rows)).cpu() == labels[rows])
    correct = torch.cat(correct)
    accuracies = accuracies_without(correct, group[eval_index], eval_index, index)
    return make_result(units, index, removed, pred, int(labels[index]), accuracies)
