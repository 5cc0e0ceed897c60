"""Neuron flipping (Sec. 6.1): how many units must be zeroed until an example is misclassified?

On a trained model in eval mode, repeat until the example's prediction (on the clean
input) differs from its training label:

    J = CE(mean of the logits over `noise_copies` Gaussian-noised copies of x, y)
        - mean CE over a random batch of training examples (resampled every
          `resample_every` steps)

score every candidate unit by the first-order rise of J when the unit is zeroed, zero the
best one, count.  Candidates (the paper's "neurons"):

- every single weight of a Linear layer (score -w * dJ/dw);
- every whole output channel of a conv layer, zeroing that channel's output activation
  (score -sum over the channel of a * dJ/da).  For ResNet-9's ConvBN blocks
  (conv -> BN -> ReLU) the channel is the block's *output*, after BN and ReLU: that is
  the layer's activation z_l of the paper (the thing passed on to the next layer), and
  zeroing the raw conv output instead would not silence the channel (BN adds its shift).
  Inside a residual branch the channel is zeroed before the skip addition.

Both kinds are implemented the same way, as multiplicative masks m (1 = kept, 0 =
removed) that forward hooks apply to the model (never a copy of it): a channel mask
scales the block's output, a weight mask the Linear's weight.  At m = 1 the score of
either kind is exactly -dJ/dm, so one backward pass w.r.t. the masks scores every
candidate.  The candidates of the whole model are ordered layer by layer (forward
order), channels by index and weights row-major; ties go to the first.

Randomness is a function of (seed, example index, step) only — each example's noise
comes from its own generator and the population batch of step t is the same for every
example — so results do not depend on which examples are processed together (sharding).

Two implementations: `flip_until_misclassified` (one example; the plain loop, the
reference) and `flip_examples` (many examples at once, identical results): it evaluates
per-example masks together (a batch of examples moves in lockstep, one removal per step),
computes the population term once per distinct (step, set of removed units) — all
examples start from the same model and share the step's population batch — and
measures the post-removal accuracy stage by stage, sharing the activations of examples
whose removals agree up to a stage (`_final_correct`).
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from memloc.evaluation import prepare_batch
from memloc.models import ConvBN, model_layers


@dataclass
class FlipConfig:
    max_removals: int = 100  # stop (censored) after this many removals
    noise_copies: int = 5  # Gaussian-noised copies the example's logits are averaged over
    noise_std: float = 0.1  # of the noise, in normalized-input units ([-1, 1] pixels)
    population_batch: int = 64  # training examples in J's population term
    resample_every: int = 1  # draw a new population batch every this many steps
    smooth_population: bool = False  # the population loss on the noise-averaged classifier too
    seed: int = 0
    examples_per_batch: int = 32  # examples flipped together by flip_examples
    max_rows: int = 2048  # inputs per forward pass (memory bound of flip_examples)


# -- candidate units and their masks --------------------------------------------------


@dataclass
class Unit:
    """The candidates of one module: the output channels of a conv block or the weights
    of a Linear."""

    layer: str  # memloc.models.model_layers name
    module: nn.Module
    kind: str  # "channel" | "weight"
    shape: tuple[int, ...]  # mask shape of one example: (channels,) or (out, in)
    offset: int = 0  # position of its first candidate in the model's flat candidate list

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


def candidate_units(model: nn.Module) -> list[Unit]:
    """The model's candidate units, layer by layer in forward order.

    Conv candidates are the output channels of each ConvBN block (after BN and ReLU);
    a bare Conv2d outside a block would leave the BN shift, so only block-structured conv
    nets (ResNet-9) are supported."""
    units, offset = [], 0
    for layer in model_layers(model):
        for top in layer.modules:
            for module in top.modules():
                if isinstance(module, ConvBN):
                    shape = (module[0].out_channels,)
                    kind = "channel"
                elif isinstance(module, nn.Linear):
                    shape, kind = tuple(module.weight.shape), "weight"
                elif isinstance(module, nn.Conv2d) and not any(
                    isinstance(m, ConvBN) and module in m.modules() for m in top.modules()
                ):
                    raise NotImplementedError(
                        f"{layer.name}: a Conv2d outside a ConvBN block; neuron flipping supports ResNet-9"
                    )
                else:
                    continue
                units.append(Unit(layer.name, module, kind, shape, offset))
                offset += units[-1].size
    return units


def full_masks(units: list[Unit], owners: int, device, dtype) -> list[torch.Tensor]:
    """All-ones masks of `owners` models: one tensor [owners, *unit.shape] per unit."""
    return [torch.ones((owners, *u.shape), device=device, dtype=dtype) for u in units]


def remove(masks: list[torch.Tensor], units: list[Unit], owner: int, flat: int) -> None:
    """Zero candidate `flat` (index into the model's flat candidate list) of one owner."""
    for u, m in zip(units, masks):
        if u.offset <= flat < u.offset + u.size:
            m[owner].view(-1)[flat - u.offset] = 0
            return
    raise IndexError(flat)


def describe(units: list[Unit], flat: int) -> tuple[str, int]:
    """(layer name, index of the candidate within its layer) of a flat candidate index."""
    first = {}
    for u in units:
        first.setdefault(u.layer, u.offset)
    for u in units:
        if u.offset <= flat < u.offset + u.size:
            return u.layer, flat - first[u.layer]
    raise IndexError(flat)


def _channel_hook(mask: torch.Tensor, rows: int):
    def hook(module, inputs, out):  # out [owners * rows, C, H, W]; mask [owners, C]
        per_row = mask.repeat_interleave(rows, 0)
        return out * per_row.view(*per_row.shape, *([1] * (out.ndim - 2)))

    return hook


def _weight_hook(mask: torch.Tensor, rows: int):
    def hook(module, inputs, out):  # x [owners * rows, in]; mask [owners, out, in]
        x = inputs[0]
        weight = module.weight * mask  # one weight matrix per owner
        y = torch.bmm(x.reshape(mask.shape[0], rows, -1), weight.transpose(1, 2)).reshape(len(x), -1)
        return y if module.bias is None else y + module.bias

    return hook


@contextmanager
def masks_applied(units: list[Unit], masks: list[torch.Tensor], rows: int):
    """Inside, a forward pass over [owners * rows] inputs runs owner k's rows (k*rows ...
    (k+1)*rows - 1) through the model with masks[.][k] applied."""
    handles = [
        u.module.register_forward_hook((_channel_hook if u.kind == "channel" else _weight_hook)(m, rows))
        for u, m in zip(units, masks)
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def masked_logits(model, units, masks, x: torch.Tensor, rows: int) -> torch.Tensor:
    """Logits [owners * rows, classes] of the masked models on x [owners * rows, ...]."""
    with masks_applied(units, masks, rows):
        out = model(x)
    return out.to(torch.promote_types(out.dtype, torch.float32))  # fp32 (fp64 stays)


# -- the objective J and its randomness ------------------------------------------------


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([p % 2**32 for p in parts]).generate_state(1)[0])


def noise_generator(seed: int, index: int) -> torch.Generator:
    """The generator of one example's input noise (its i-th draw is used at step i)."""
    return torch.Generator().manual_seed(_seed(seed, 0, index))


def population_indices(seed: int, step: int, n: int, cfg: FlipConfig) -> torch.Tensor:
    """Indices of the population batch used at `step`: a fresh random batch of the
    training set every cfg.resample_every steps, the same for every example."""
    g = torch.Generator().manual_seed(_seed(seed, 1, step // cfg.resample_every))
    return torch.randperm(n, generator=g)[: cfg.population_batch]


def noisy_copies(x: torch.Tensor, copies: int, std: float, generator: torch.Generator) -> torch.Tensor:
    """x [E, C, H, W] (normalized, on the device) -> [E * copies, C, H, W], copies adjacent."""
    eps = torch.randn((len(x), copies, *x.shape[1:]), generator=generator, dtype=x.dtype)
    out = x[:, None] + std * eps.to(x.device)
    return out.reshape(-1, *x.shape[1:]).contiguous(memory_format=torch.channels_last)


def smoothed_loss(logits: torch.Tensor, labels: torch.Tensor, owners: int, copies: int) -> torch.Tensor:
    """Per-owner mean CE of the copy-averaged logits.

    logits [owners * E * copies, K] (owner-major, then example, then copy); labels
    [owners * E] -> [owners]."""
    avg = logits.view(owners, -1, copies, logits.shape[-1]).mean(2)  # [owners, E, K]
    return F.cross_entropy(avg.flatten(0, 1), labels, reduction="none").view(owners, -1).mean(1)


def mask_gradients(model, units, masks, x, labels, rows: int, copies: int) -> torch.Tensor:
    """d(per-owner smoothed loss)/d(masks) at the given masks, flat: [owners, candidates]."""
    leaves = [m.detach().clone().requires_grad_(True) for m in masks]
    logits = masked_logits(model, units, leaves, x, rows)
    loss = smoothed_loss(logits, labels, len(masks[0]), copies).sum()
    grads = torch.autograd.grad(loss, leaves)
    return torch.cat([g.flatten(1) for g in grads], 1)


def _flat(masks: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([m.flatten(1) for m in masks], 1)


def _population_rows(images, labels, idx, cfg: FlipConfig, device, generator=None):
    """(inputs [P * copies, ...], labels [P], copies) of a population batch."""
    x = prepare_batch(images[idx], device)
    if not cfg.smooth_population:
        return x, labels[idx].to(device), 1
    return noisy_copies(x, cfg.noise_copies, cfg.noise_std, generator), labels[idx].to(device), cfg.noise_copies


def _population_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(_seed(seed, 2, step))


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


def _accuracies(correct: torch.Tensor, group: torch.Tensor, eval_index: torch.Tensor, index: int) -> dict:
    """Accuracies on clean / noisy / all evaluation examples other than `index`.

    correct [n_eval] bool, group [n_eval] bool (noisy), eval_index [n_eval] training rows."""
    others = eval_index != index
    out = {}
    for name, sel in (("accuracy_clean", ~group), ("accuracy_noisy", group), ("accuracy_train", None)):
        keep = others if sel is None else others & sel
        out[name] = correct[keep].float().mean().item() if keep.any() else float("nan")
    return out


def _result(units, index: int, removed: list[int], prediction: int, label: int, accuracies: dict) -> FlipResult:
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


@torch.no_grad()
def _predict(model, units, masks, x, rows) -> torch.Tensor:
    return masked_logits(model, units, masks, x, rows).argmax(1)


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
        pred = _predict(model, units, masks, x, 1).item()
        if pred != y.item() or step == cfg.max_removals:
            break
        noisy = noisy_copies(x, cfg.noise_copies, cfg.noise_std, gen)
        grad = mask_gradients(model, units, masks, noisy, y, cfg.noise_copies, cfg.noise_copies)
        idx = population_indices(cfg.seed, step, len(labels), cfg)
        px, py, copies = _population_rows(images, labels, idx, cfg, device, _population_generator(cfg.seed, step))
        grad = grad - mask_gradients(model, units, masks, px.to(dtype), py, len(px), copies)
        score = -grad[0]
        score[_flat(masks)[0] == 0] = float("-inf")
        best = int(score.argmax())
        remove(masks, units, 0, best)
        removed.append(best)
        step += 1
    eval_index = torch.arange(len(labels)) if eval_index is None else eval_index
    correct = []
    for s in range(0, len(eval_index), eval_batch):
        rows = eval_index[s : s + eval_batch]
        ex = prepare_batch(images[rows], device).to(dtype)
        correct.append((_predict(model, units, masks, ex, len(rows)).cpu() == labels[rows]))
    correct = torch.cat(correct)
    return _result(units, index, removed, pred, int(labels[index]), _accuracies(correct, group[eval_index], eval_index, index))


# -- the batched implementation --------------------------------------------------------


def _owner_chunks(owners: int, rows: int, max_rows: int):
    step = max(1, max_rows // rows)
    return [(o, min(o + step, owners)) for o in range(0, owners, step)]


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


def _population_gradients(model, units, masks, px, py, copies: int, cfg: FlipConfig) -> torch.Tensor:
    """d(mean population CE)/d(masks) of every owner on the shared population rows px."""
    rows = len(px)
    out = []
    for o0, o1 in _owner_chunks(len(masks[0]), rows, cfg.max_rows):
        chunk = [m[o0:o1] for m in masks]
        x = px.repeat(o1 - o0, *([1] * (px.ndim - 1))).contiguous(memory_format=torch.channels_last)
        out.append(mask_gradients(model, units, chunk, x, py.repeat(o1 - o0), rows, copies))
    return torch.cat(out)


def _search(model, units, batch: list[int], images, labels, cfg: FlipConfig, device, dtype, memo: dict):
    """The greedy search for several examples in lockstep.

    memo: {(step, removed set): population-term gradient}, shared by calls on one model.

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
        pred = _predict(model, units, [m[a] for m in masks], x[a], 1).tolist()
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
        # the population term depends only on the step (its batch) and the set of removed
        # units (all examples start from the same model): once per distinct pair, also
        # across the batches of examples (`memo`)
        states = [(step, frozenset(removed[k])) for k in active]
        new = {s: k for s, k in zip(states, active) if s not in memo}
        if new:
            reps = torch.tensor(list(new.values()), device=device)
            pidx = population_indices(cfg.seed, step, len(labels), cfg)
            px, py, copies = _population_rows(images, labels, pidx, cfg, device, _population_generator(cfg.seed, step))
            pop = _population_gradients(model, units, [m[reps] for m in masks], px.to(dtype), py, copies, cfg)
            memo.update(zip(new, pop))
        score = -(grad - torch.stack([memo[s] for s in states]))
        score[_flat(act_masks) == 0] = float("-inf")
        for k, best in zip(active, score.argmax(1).tolist()):
            remove(masks, units, k, best)
            removed[k].append(best)
        step += 1
    return removed, final, masks


def _stage_of_units(model: nn.Module, units: list[Unit]) -> tuple[list[nn.Module], list[int]]:
    """The model as a list of stages and, per unit, the stage that contains it: nn.Sequential
    children for ResNet-9 (so activations in front of a stage can be shared), else one stage."""
    stages = list(model.children()) if isinstance(model, nn.Sequential) else [model]
    where = []
    for u in units:
        where.append(next(i for i, s in enumerate(stages) if any(m is u.module for m in s.modules())))
    return stages, where


@torch.no_grad()
def _final_correct(model, units, masks, removed, images, labels, eval_index, device, dtype, eval_batch, max_rows):
    """Correctness [examples, n_eval] of each example's masked model on the evaluation rows.

    Runs the model stage by stage as a tree: examples that removed the same units in
    stages 0..k-1 share the activations in front of stage k (the root is the unmasked
    model, shared by all), so a stage is computed once per distinct set of removals up to
    it.  The children of a node (its examples grouped by their removals in stage k) are
    computed together, with hooks only on the units some of them removed (a mask of ones
    is the identity)."""
    stages, where = _stage_of_units(model, units)
    sizes = [u.size for u in units]
    stage_of = np.repeat(where, sizes)  # stage of each flat candidate
    unit_of = np.repeat(np.arange(len(units)), sizes)  # unit of each flat candidate
    correct = torch.zeros((len(removed), len(eval_index)), dtype=torch.bool)

    def descend(k: int, h: torch.Tensor, members: list[int], cols: slice, target: torch.Tensor):
        if k == len(stages):
            correct[members, cols] = h.float().argmax(1).cpu() == target
            return
        groups: dict[frozenset, list[int]] = defaultdict(list)
        for m in members:
            groups[frozenset(f for f in removed[m] if stage_of[f] == k)].append(m)
        children = list(groups.items())
        n = len(h)
        for o0, o1 in _owner_chunks(len(children), n, max_rows):
            chunk = children[o0:o1]
            used = sorted({int(unit_of[f]) for key, _ in chunk for f in key})
            if not used:  # a single child without removals here: the plain stage
                descend(k + 1, stages[k](h), chunk[0][1], cols, target)
                continue
            reps = torch.tensor([group[0] for _, group in chunk], device=device)
            z = h.repeat(len(chunk), *([1] * (h.ndim - 1)))
            if z.ndim == 4:
                z = z.contiguous(memory_format=torch.channels_last)
            with masks_applied([units[u] for u in used], [masks[u][reps] for u in used], n):
                z = stages[k](z)
            for j, (_, group) in enumerate(chunk):
                descend(k + 1, z[j * n : (j + 1) * n], group, cols, target)

    for r0 in range(0, len(eval_index), eval_batch):
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
    results = []
    memo: dict = {}
    B = cfg.examples_per_batch
    for start in tqdm(range(0, len(indices), B), desc="flip", disable=not progress):
        batch = [int(i) for i in indices[start : start + B]]
        removed, final, masks = _search(model, units, batch, images, labels, cfg, device, dtype, memo)
        correct = _final_correct(
            model, units, masks, removed, images, labels, eval_index, device, dtype, eval_batch, cfg.max_rows
        )
        for k, index in enumerate(batch):
            acc = _accuracies(correct[k], group[eval_index], eval_index, index)
            results.append(_result(units, index, removed[k], final[k], int(labels[index]), acc))
    return results
