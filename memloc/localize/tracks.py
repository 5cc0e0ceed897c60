"""The two tracks of the benchmark (after Chang et al., NAACL 2024), on one model and the
examples of one shard; each returns the long table's rows.

- ground truth (their INJ): on a model with example-tied dropout, every method's top-k among
  the tied units against the example's memorization units (precision, recall) for k = 1, 2,
  4, ... and the example's unit count, with the chance levels, and whether zeroing the top-k
  alone flips the example;
- deletion (their DEL): on a plain trained model, for k in `ks`, whether zeroing the top-k
  flips the example (efficacy, on noisy examples) and the accuracy that other training
  examples (clean, noisy) and test examples lose (specificity).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from memloc.localize.context import Context, Examples
from memloc.localize.deletion import correct_without, predictions_without, stage_inputs
from memloc.localize.ground_truth import generalization_units, ks_up_to, memorization_units, precision_recall
from memloc.localize.methods import rank_units, top_units


def rankings(ctx: Context, ex: Examples, methods: list[str]) -> dict[str, tuple[torch.Tensor, float]]:
    """{method: (scores [E, candidates], seconds of ranking per example)}."""
    out = {}
    for m in methods:
        t0 = time.perf_counter()
        scores = rank_units(m, ctx, ex)
        if ctx.device.type == "cuda":
            torch.cuda.synchronize(ctx.device)
        out[m] = (scores, (time.perf_counter() - t0) / max(len(ex), 1))
    return out


def _frame(ex: Examples, is_noisy: np.ndarray, method: str, k: int, seconds: float) -> dict:
    return {"index": ex.index.numpy(), "is_noisy": is_noisy, "label": ex.y.cpu().numpy(), "method": method, "k": k,
            "seconds": seconds}


def ground_truth(ctx: Context, ex: Examples, is_noisy: np.ndarray, methods: list[str]) -> pd.DataFrame:
    """Rows (example, method, k) of the ground-truth track."""
    truth = memorization_units(ctx.units, ex.index, ctx.device)
    owned = truth.sum(1)
    n_units = int(owned.max()) if len(ex) else 0
    active = int(generalization_units(ctx.units, ctx.device).sum())
    correct = (predictions_without(ctx, ex, torch.zeros((len(ex), 0), dtype=torch.int64)) == ex.y.cpu()).numpy()
    parts = []
    for m, (scores, seconds) in rankings(ctx, ex, methods).items():
        for k in ks_up_to(n_units):
            top = top_units(scores, k)
            precision, recall = precision_recall(top, truth)
            flipped = predictions_without(ctx, ex, top) != ex.y.cpu()
            parts.append(pd.DataFrame({
                **_frame(ex, is_noisy, m, k, seconds), "correct": correct,
                "precision": precision.cpu().numpy(), "recall": recall.cpu().numpy(),
                "units": owned.cpu().numpy(), "candidates": ctx.candidates,
                "chance": (owned.float() / ctx.candidates).cpu().numpy(),
                "chance_active": (owned.float() / (owned + active).float()).cpu().numpy(),
                "flipped": flipped.numpy()}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def deletion(ctx: Context, ex: Examples, is_noisy: np.ndarray, others: tuple[Examples, np.ndarray],
             settings: dict) -> pd.DataFrame:
    """Rows (example, method, k) of the deletion track; others: the specificity rows and
    their group (clean / noisy / test, one per row)."""
    rows, group = others
    inputs = stage_inputs(ctx, rows)
    base = (inputs[-1].argmax(1) == rows.y).cpu()
    correct = (predictions_without(ctx, ex, torch.zeros((len(ex), 0), dtype=torch.int64)) == ex.y.cpu()).numpy()
    parts = []
    for m, (scores, seconds) in rankings(ctx, ex, settings["methods"]).items():
        for k in settings["ks"]:
            top = top_units(scores, min(k, ctx.candidates))
            flipped = predictions_without(ctx, ex, top) != ex.y.cpu()
            after = correct_without(ctx, rows, inputs, top)
            drops = {}
            for g in ("clean", "noisy", "test"):
                sel = torch.from_numpy(group == g)
                drops[f"drop_{g}"] = (base[sel].float().mean() - after[:, sel].float().mean(1)).numpy()
            parts.append(pd.DataFrame({**_frame(ex, is_noisy, m, k, seconds), "correct": correct,
                                       "candidates": ctx.candidates, "flipped": flipped.numpy(), **drops}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
