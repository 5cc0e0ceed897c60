"""Neuron flipping (Sec. 6.1): how many units must be zeroed until an example is misclassified?

On a trained model in eval mode, repeat until the example's prediction (on the clean
input) differs from its training label:

    J = CE(mean of the logits over `noise_copies` Gaussian-noised copies of x, y)
        - mean CE over a random batch of training examples (the population batch)

score every candidate unit by the first-order rise of J when the unit is zeroed, zero the
best one, count.  Candidates (the paper's "neurons", memloc.flipping.masks) are every whole
output channel of a conv block (score -sum over the channel of a * dJ/da) and every
single weight of a Linear layer (score -w * dJ/dw); ties go to the first in flat order.

The population batch is drawn once for the whole search by default (resample_every = 0),
as in the authors' code, which keeps one random training batch while it flips an
example; resample_every = k draws a new one every k steps.  Randomness is a function of
(seed, example index, step) only: each example's noise comes from its own generator and
the population batch of a step is the same for every example, so results do not depend on
which examples are processed together (sharding).

This module holds the objective, the results and `flip_until_misclassified`, the plain
one-example loop that is the reference; `memloc.flipping.batched.flip_examples` flips
many examples at once with identical results.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from memloc.core.evaluation import prepare_batch
from memloc.flipping.masks import (
    Unit,
    candidate_units,
    describe,
    flat_masks,
    full_masks,
    mask_gradients,
    masked_predictions,
    remove,
)


@dataclass
class FlipConfig:
    max_removals: int = 100  # stop (censored) after this many removals
    noise_copies: int = 5  # Gaussian-noised copies the example's logits are averaged over
    noise_std: float = 0.1  # of the noise, in normalized-input units ([-1, 1] pixels)
    population_batch: int = 128  # training examples in J's population term
    resample_every: int = 0  # draw a new population batch every this many steps (0: never)
    smooth_population: bool = False  # the population loss on the noise-averaged classifier too
    seed: int = 0
    examples_per_batch: int = 32  # examples flipped together by flip_examples
    max_rows: int = 2048  # inputs per forward pass (memory bound of flip_examples)


# -- the objective J and its randomness ------------------------------------------------


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([p % 2**32 for p in parts]).generate_state(1)[0])


def noise_generator(seed: int, index: int) -> torch.Generator:
    """The generator of one example's input noise (its i-th draw is used at step i)."""
    return torch.Generator().manual_seed(_seed(seed, 0, index))


def population_window(step: int, cfg: FlipConfig) -> int:
    """Which population batch step `step` uses: 0 for every step when resample_every = 0."""
    return step // cfg.resample_every if cfg.resample_every else 0


def population_indices(seed: int, step: int, n: int, cfg: FlipConfig) -> torch.Tensor:
    """Indices of the population batch used at `step`: a random batch of the n training
    rows, redrawn every cfg.resample_every steps (never if 0), the same for every example."""
    g = torch.Generator().manual_seed(_seed(seed, 1, population_window(step, cfg)))
    return torch.randperm(n, generator=g)[: cfg.population_batch]


def noisy_copies(x: torch.Tensor, copies: int, std: float, generator: torch.Generator) -> torch.Tensor:
    """x [E, C, H, W] (normalized, on the device) -> [E * copies, C, H, W], copies adjacent."""
    eps = torch.randn((len(x), copies, *x.shape[1:]), generator=generator, dtype=x.dtype)
    out = x[:, None] + std * eps.to(x.device)
    return out.reshape(-1, *x.shape[1:]).contiguous(memory_format=torch.channels_last)


def population_rows(images, labels, step: int, cfg: FlipConfig, device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(inputs [P * copies, ...], labels [P], copies) of the population batch of `step`.

    With smooth_population the inputs are noisy copies, whose noise is drawn with the
    batch (a new batch, new noise)."""
    idx = population_indices(cfg.seed, step, len(labels), cfg)
    x = prepare_batch(images[idx], device)
    if not cfg.smooth_population:
        return x, labels[idx].to(device), 1
    g = torch.Generator().manual_seed(_seed(cfg.seed, 2, population_window(step, cfg)))
    return noisy_copies(x, cfg.noise_copies, cfg.noise_std, g), labels[idx].to(device), cfg.noise_copies


# -- results ---------------------------------------------------------------------------


@dataclass
class FlipResult:
    index: int  # the example's row in the training set
    removals: int  # units zeroed until the prediction changed (max_removals if censored)
    censored: bool  # still correctly classified after max_removals removals
    initially_correct: bool  # False: misclassified before any removal (removals = 0)
    flipped_to: int  # predicted class after the removals (-1 if censored)
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


def flip_until_misclassified(
    model: nn.Module,
    index: int,
    images: torch.Tensor,
    labels: torch.Tensor,
    group: torch.Tensor,
    cfg: FlipConfig,
    device: torch.device,
    eval_index: torch.Tensor | None = None,
    eval_batch: int = 512,
) -> FlipResult:
    """Flip training example `index` of (images uint8 [N, ...], labels [N], group [N] =
    is noisy) on `model` (put in eval mode): the plain per-example loop.

    Accuracy after the removals is measured on the training rows `eval_index` (default:
    all of them), leaving the example itself out."""
    model.eval()
    units = candidate_units(model)
    dtype = next(model.parameters()).dtype
    masks = full_masks(units, 1, device, dtype)
    x = prepare_batch(images[index : index + 1], device).to(dtype)
    y = labels[index : index + 1].to(device)
    gen = noise_generator(cfg.seed, index)
    removed: list[int] = []
    step = 0
    while True:
        pred = masked_predictions(model, units, masks, x, 1).item()
        if pred != y.item() or step == cfg.max_removals:
            break
        noisy = noisy_copies(x, cfg.noise_copies, cfg.noise_std, gen)
        grad = mask_gradients(model, units, masks, noisy, y, cfg.noise_copies, cfg.noise_copies)
        px, py, copies = population_rows(images, labels, step, cfg, device)
        grad = grad - mask_gradients(model, units, masks, px.to(dtype), py, len(px), copies)
        score = -grad[0]
        score[flat_masks(masks)[0] == 0] = float("-inf")
        best = int(score.argmax())
        remove(masks, units, 0, best)
        removed.append(best)
        step += 1
    eval_index = torch.arange(len(labels)) if eval_index is None else eval_index
    correct = []
    for s in range(0, len(eval_index), eval_batch):
        rows = eval_index[s : s + eval_batch]
        ex = prepare_batch(images[rows], device).to(dtype)
        correct.append(masked_predictions(model, units, masks, ex, len(rows)).cpu() == labels[rows])
    correct = torch.cat(correct)
    accuracies = accuracies_without(correct, group[eval_index], eval_index, index)
    return make_result(units, index, removed, pred, int(labels[index]), accuracies)
