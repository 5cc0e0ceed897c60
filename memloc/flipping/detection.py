"""Mislabeled-example detection (Sec. 6.1, last paragraph): per-example scores and their ROC AUC.

Scores, each oriented so that larger = more likely mislabeled:

- flip count (this paper): minus the number of units zeroed until the prediction flips
  (memloc.flipping.objective), mean over the training seeds;
- learning time (Jiang et al. 2021): the first epoch from which the example stays correctly
  classified (epochs - 0 = init - .. E of a run's examples.parquet; E + 1 if it is wrong at
  the end);
- forgetting events (Toneva et al. 2019): correct -> incorrect transitions between
  consecutive epochs 1..E (the init is left out; the per-epoch evaluations stand in for
  Toneva's per-minibatch presentations); never correct at an epoch >= 1 counts as E + 1,
  Toneva's "infinitely forgotten";
- area under the margin (Pleiss et al. 2020): minus the mean margin (assigned-label logit
  minus the largest other logit) over epochs 1..E (again per-epoch evaluations, eval mode);
- second-split forgetting time (Maini et al. 2022): split the training set into A and B,
  train on A, fine-tune on B, and record for every A example the fine-tuning epoch from
  which it stays misclassified (0 = already wrong before fine-tuning, E_B + 1 = never
  forgotten); minus that.  Not the run's own model: it has fit B already, so fine-tuning
  on B would barely move it and nothing would be forgotten;
  memloc.flipping.second_split trains A from scratch (same model, settings and seed as the
  run) and then fine-tunes.

Everything here takes and returns tables (no torch: the auc job is a table job);
memloc.flipping.jobs reads and writes the files.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from memloc.flipping.paper import PAPER_AUC

METHODS = ["flip count", "learning time", "forgetting events", "area under the margin", "second-split forgetting time"]


def roc_auc(is_noisy, score) -> float:
    """ROC AUC of `score` (larger = mislabeled) for telling noisy from clean; NaN when only
    one group is present."""
    # imported here: scikit-learn + SciPy take ~1.4 s to import, which the flipping jobs don't need
    from sklearn.metrics import roc_auc_score

    is_noisy = np.asarray(is_noisy, dtype=bool)
    if is_noisy.all() or not is_noisy.any():
        return float("nan")
    return float(roc_auc_score(is_noisy, np.asarray(score, dtype=float)))


def settled_epoch(records: np.ndarray, state: bool) -> np.ndarray:
    """records [epochs, n] bool (epoch 0 first) -> [n]: the first epoch from which every
    record equals `state`; `epochs` (one past the last) where the last record differs."""
    differs = records != state
    last_differs = np.where(differs.any(0), len(records) - 1 - np.argmax(differs[::-1], axis=0), -1)
    return last_differs + 1


def _by_epoch(examples: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(training rows [n], values [epochs, n]) of one column of a run's examples table."""
    wide = examples.pivot(index="epoch", columns="index", values=column).sort_index()
    return wide.columns.to_numpy(), wide.to_numpy()


def learning_time(examples: pd.DataFrame) -> pd.Series:
    index, correct = _by_epoch(examples, "correct")
    return pd.Series(settled_epoch(correct.astype(bool), True), index=index, name="learning_time")


def forgetting_events(examples: pd.DataFrame) -> pd.Series:
    index, correct = _by_epoch(examples, "correct")
    trained = correct[1:].astype(bool)  # epochs 1..E
    events = (trained[:-1] & ~trained[1:]).sum(0)
    events = np.where(trained.any(0), events, len(trained) + 1)  # never learned: "infinitely" often
    return pd.Series(events, index=index, name="forgetting_events")


def area_under_margin(examples: pd.DataFrame) -> pd.Series:
    index, margin = _by_epoch(examples, "margin")
    return pd.Series(margin[1:].mean(0), index=index, name="aum")


# -- scores and the auc table -------------------------------------------------------------


def run_scores(examples: pd.DataFrame, second_split: pd.DataFrame) -> pd.DataFrame:
    """One run's per-example scores (larger = more likely mislabeled), by training row."""
    scores = pd.concat(
        [learning_time(examples), forgetting_events(examples), -area_under_margin(examples)], axis=1
    ).set_axis(["learning time", "forgetting events", "area under the margin"], axis=1)
    scores["second-split forgetting time"] = -second_split.set_index("index")["ssft"].astype(float)
    return scores.rename_axis("index")


def seed_scores(seed: int, examples: pd.DataFrame, second_split: pd.DataFrame, flipping: pd.DataFrame) -> pd.DataFrame:
    """One training seed's scores of every method by training row, with `flipped` (the row
    is one of the examples flipped).  flipping: the merged flipping table (seed, index,
    removals, ...)."""
    s = run_scores(examples, second_split)
    flips = flipping[flipping["seed"] == seed].set_index("index")["removals"]
    s["flip count"] = -flips.astype(float)
    s["flipped"] = s.index.isin(flips.index)
    s.insert(0, "seed", seed)
    return s.reset_index()


def detection_scores(per_seed: Iterable[pd.DataFrame], is_noisy: pd.Series) -> pd.DataFrame:
    """The seeds' scores (`seed_scores`) as one table, with is_noisy (a Series by training
    row): columns seed, index, is_noisy, flipped, METHODS."""
    out = pd.concat(list(per_seed), ignore_index=True)
    out.insert(2, "is_noisy", is_noisy.loc[out["index"]].to_numpy())
    return out[["seed", "index", "is_noisy", "flipped", *METHODS]]


def auc_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """ROC AUC of every method, on the flipped examples and on every example it scores.

    auc: of the per-example score averaged over the seeds (as the paper averages flip
    counts over its 30 models); auc_seed_mean / _sd: over the seeds' own AUCs."""
    rows = []
    for method in METHODS:
        for subset in ("flipped examples", "all scored examples"):
            df = scores[scores["flipped"]] if subset == "flipped examples" else scores
            df = df.dropna(subset=[method])
            if method == "flip count" and subset != "flipped examples" or df.empty:
                continue
            mean = df.groupby("index").agg(is_noisy=("is_noisy", "first"), score=(method, "mean"))
            per_seed = [roc_auc(g["is_noisy"], g[method]) for _, g in df.groupby("seed")]
            rows.append({
                "method": method,
                "examples": subset,
                "n_clean": int((~mean["is_noisy"]).sum()),
                "n_noisy": int(mean["is_noisy"].sum()),
                "seeds": df["seed"].nunique(),
                "auc": roc_auc(mean["is_noisy"], mean["score"]),
                "auc_seed_mean": float(np.mean(per_seed)),
                "auc_seed_sd": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else float("nan"),
                "paper_auc": PAPER_AUC.get(method, float("nan")),
            })
    return pd.DataFrame(rows)
