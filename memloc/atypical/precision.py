"""How precise a hold-out C-score estimate is (results/tables/cscore_holdout).

An example's hold-out score is a mean over the few models that did not train on it, so
"atypical" (score < threshold) is only meaningful if it is not sampling noise.  Reported
per dataset: the distribution of `times_held_out` (how many models scored each example;
constant under the complementary scheme), how many examples are atypical, and how stable
the atypical set is when the subset models are resampled with replacement (a bootstrap
over the *units* of the sampling: pairs of complementary models, or single models) and
how well two disjoint halves of the units agree (each an estimate from half the models:
a conservative reproducibility, since it shares no model).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from memloc.atypical.cscores import HoldoutConfig

COLUMNS = [
    "dataset", "source", "scheme", "models", "fraction", "examples", "times_held_out", "held_out_min",
    "held_out_max", "unscored", "atypical", "atypical_percent", "mean_cscore", "flip_percent", "atypical_jaccard",
    "split_half_jaccard",
]


def holdout_matrices(parts: list[pd.DataFrame]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index [n], held [K, n] bool, correct [K, n] float) from the subset models' results
    (one frame per model, in model order; columns index, in_subset, correct)."""
    frames = [p.sort_values("index") for p in parts]
    index = frames[0]["index"].to_numpy()
    if any(not np.array_equal(f["index"].to_numpy(), index) for f in frames):
        raise ValueError("hold-out parts do not cover the same examples")
    held = np.stack([~f["in_subset"].to_numpy(bool) for f in frames])
    correct = np.stack([f["correct"].to_numpy(float) for f in frames])
    return index, held, correct


def resampling_units(cfg: HoldoutConfig) -> np.ndarray:
    """[K] the bootstrap unit of each model: its pair (complementary: a pair is what makes
    every example held out once, so pairs are resampled whole) or itself (independent)."""
    k = np.arange(cfg.models)
    return k // 2 if cfg.scheme == "complementary" else k


def weighted_scores(held: np.ndarray, correct: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[n] mean correctness over the models holding each example out, model k counted
    weights[k] times; NaN where no (weighted) model held the example out."""
    n_held = weights @ held
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_held > 0, (weights @ (held * correct)) / np.maximum(n_held, 1), np.nan)


def bootstrap_stability(held: np.ndarray, correct: np.ndarray, units: np.ndarray, threshold: float,
                        replicates: int = 200, seed: int = 0) -> tuple[float, float]:
    """(mean % of examples scored in both whose atypical label differs from the estimate's,
    mean Jaccard similarity of the replicate's atypical set and the estimate's) over
    `replicates` resamplings of the units with replacement; NaN with fewer than 2 units."""
    n_units = units.max() + 1
    if n_units < 2:  # one unit resamples to itself: no information, not perfect stability
        return float("nan"), float("nan")
    base = weighted_scores(held, correct, np.ones(len(held)))
    atypical = base < threshold
    rng = np.random.default_rng(seed)
    flips, jaccards = [], []
    for _ in range(replicates):
        counts = rng.multinomial(n_units, np.full(n_units, 1 / n_units))
        score = weighted_scores(held, correct, counts[units].astype(float))
        both = ~np.isnan(score) & ~np.isnan(base)
        other = score < threshold
        flips.append(100 * np.mean(atypical[both] != other[both]))
        jaccards.append(jaccard(atypical & both, other & both))
    return float(np.mean(flips)), float(np.mean(jaccards))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """|a & b| / |a | b| of two boolean sets (1 when both are empty)."""
    union = np.sum(a | b)
    return float(np.sum(a & b) / union) if union else 1.0


def split_half_jaccard(held: np.ndarray, correct: np.ndarray, units: np.ndarray, threshold: float) -> float:
    """Jaccard similarity of the atypical sets estimated from the first and from the second
    half of the units (examples scored by both); NaN with fewer than 2 units."""
    n_units = units.max() + 1
    if n_units < 2:
        return float("nan")
    first = (units < n_units // 2).astype(float)
    a, b = weighted_scores(held, correct, first), weighted_scores(held, correct, 1 - first)
    both = ~np.isnan(a) & ~np.isnan(b)
    return jaccard((a < threshold) & both, (b < threshold) & both)


def distribution_text(times: pd.Series) -> str:
    """'held-out count: examples' pairs, e.g. '4: 2000' (every example held out 4 times)."""
    counts = times.value_counts().sort_index()
    return ", ".join(f"{k}: {v}" for k, v in counts.items())


def summary_row(dataset: str, table: pd.DataFrame, parts: list[pd.DataFrame], holdout: dict,
                threshold: float, replicates: int = 200) -> dict:
    """One row of the precision table for a dataset's atypical data table (columns cscore,
    times_held_out, is_atypical) and its hold-out parts (none: published scores)."""
    row = dict(dataset=dataset, examples=len(table), unscored=int(table["cscore"].isna().sum()),
               atypical=int(table["is_atypical"].sum()), mean_cscore=float(table["cscore"].mean()))
    row["atypical_percent"] = 100 * row["atypical"] / len(table)
    if not parts:  # published scores: nothing was held out here, nothing to resample
        return {**row, "source": "published", "scheme": "", "models": 0, "fraction": np.nan, "times_held_out": "",
                "held_out_min": -1, "held_out_max": -1, "flip_percent": np.nan, "atypical_jaccard": np.nan,
                "split_half_jaccard": np.nan}
    cfg = HoldoutConfig(**holdout)
    _, held, correct = holdout_matrices(parts)
    units = resampling_units(cfg)
    flip, stable = bootstrap_stability(held, correct, units, threshold, replicates, cfg.seed)
    times = table["times_held_out"]
    return {**row, "source": "hold-out", "scheme": cfg.scheme, "models": cfg.models, "fraction": cfg.fraction,
            "times_held_out": distribution_text(times), "held_out_min": int(times.min()),
            "held_out_max": int(times.max()), "flip_percent": flip, "atypical_jaccard": stable,
            "split_half_jaccard": split_half_jaccard(held, correct, units, threshold)}


def precision_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)
