"""C-scores (Jiang et al., 2021): published per-example scores, or a hold-out estimate.

An example is *atypical* when its C-score is below a threshold (the paper: 0.5).  The
data table of the typical/atypical experiments (Sec. 7) is the noise-free training set
plus the columns cscore, times_held_out and is_atypical; every later stage reads the
groups from is_atypical as it reads clean/noisy from is_noisy.

Published files (fetched by memloc.atypical.fetch), checked against the dataset before use:
- CIFAR-10: an .npz with `labels` and `scores`, 50,000 each, in the dataset's original
  order; `labels` must equal the torchvision labels.
- MNIST: an .npy of 60,000 bare scores in the TensorFlow-datasets (TFDS) order, which is
  not the original MNIST order, and nothing in the file establishes it.  `order` says it:
  "tfds" derives it as TFDS writes the split (`tfds_order`), or a path names an .npy of
  original indices, one per file position (a permutation).  Without one the loader
  refuses rather than misalign silently.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


class CScoreFileError(ValueError):
    """A published C-score file that does not fit the dataset (the message names the file)."""


TFDS_ORDER = "tfds"  # the `order` that derives the file's order as TFDS writes the split


def tfds_order(n: int, split: str = "train") -> np.ndarray:
    """[n] the original index of each position of a TFDS split whose builder keys example i
    by i (MNIST, Fashion-MNIST), as `tfds.load(..., shuffle_files=False)` returns it.

    TFDS's writer (tensorflow_datasets/core/shuffle.py and hashing.py, its md5 hasher, which
    generated MNIST 3.0.1) sorts a split's records by the 128-bit md5 of the salt (the split
    name) followed by str(key).  Checked on the published MNIST scores: aligned by this
    order, their class means differ as expected and their lowest-scored images are odd
    digits, some of them those of Jiang et al.'s figure (docs/methods.md, typical vs atypical).
    """
    salt = hashlib.md5(split.encode())

    def key_hash(i: int) -> int:
        h = salt.copy()
        h.update(str(i).encode())
        return int(h.hexdigest(), 16)

    return np.array(sorted(range(n), key=key_hash))


def load_published_cscores(
    path: str | os.PathLike, labels: np.ndarray, order: str | os.PathLike | None = None
) -> np.ndarray:
    """Scores [N] aligned with the torchvision training split whose labels are `labels` [N].

    .npz: arrays `scores` and `labels` in the split's order (CIFAR-10's release); the labels
    must match.  .npy: bare scores, whose order nothing in the file establishes, so `order`
    is required: "tfds" (`tfds_order`, MNIST's release) or an .npy permutation (the split
    index of each position of the file).
    """
    path = Path(path)
    if not path.is_file():
        raise CScoreFileError(f"C-score file {path} does not exist")
    n = len(labels)
    if path.suffix == ".npz":
        with np.load(path) as z:
            if "scores" not in z or "labels" not in z:
                raise CScoreFileError(f"{path}: expected arrays 'scores' and 'labels', found {sorted(z.files)}")
            scores, file_labels = np.asarray(z["scores"], dtype=np.float64), np.asarray(z["labels"])
        if len(scores) != n or len(file_labels) != n:
            raise CScoreFileError(
                f"{path}: {len(scores)} scores / {len(file_labels)} labels for a split of {n} examples"
            )
        mismatch = np.flatnonzero(file_labels != labels)
        if len(mismatch):
            raise CScoreFileError(
                f"{path}: labels differ from the dataset's at {len(mismatch)} positions "
                f"(first: {mismatch[:5].tolist()}); the file is permuted or belongs to another dataset"
            )
        return scores
    scores = np.asarray(np.load(path), dtype=np.float64)
    if scores.ndim != 1 or len(scores) != n:
        raise CScoreFileError(f"{path}: {scores.shape} scores for a split of {n} examples")
    if order is None:
        raise CScoreFileError(
            f"{path}: a bare score array (e.g. MNIST's, in TFDS order) needs an `order` (\"tfds\", or an .npy mapping "
            f"each position to the original index); none given, so the alignment cannot be established"
        )
    perm = tfds_order(n) if str(order) == TFDS_ORDER else np.asarray(np.load(order))
    if perm.shape != (n,) or not np.array_equal(np.sort(perm), np.arange(n)):
        raise CScoreFileError(f"{order}: not a permutation of 0..{n - 1} (order file of {path})")
    aligned = np.empty(n)
    aligned[perm] = scores
    return aligned


SCHEMES = ("complementary", "independent")


@dataclass
class HoldoutConfig:
    """The subset models of the hold-out estimate.

    complementary: models come in pairs; pair p draws a seeded random half of the
    examples, model 2p trains on it and model 2p+1 on the other half, so every example is
    held out of exactly models / 2 models and its score has a fixed resolution of
    2 / models.  Needs an even number of models and fraction 0.5.
    independent: each model trains on its own seeded random `fraction` (Jiang et al.'s
    sampling); an example is held out Binomial(models, 1 - fraction) times, possibly never.
    """

    models: int  # K subset models (complementary: every example held out K / 2 times)
    fraction: float  # fraction of the training set each model sees
    seed: int
    scheme: str

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ValueError(f"atypical.holdout.scheme {self.scheme!r} is not one of {SCHEMES}")
        if self.scheme == "complementary" and (self.models % 2 or self.fraction != 0.5):
            raise ValueError(
                f"atypical.holdout: the complementary scheme trains pairs of models on complementary halves, so "
                f"models must be even and fraction 0.5 (got models={self.models}, fraction={self.fraction})"
            )


def holdout_subset(n: int, model_index: int, cfg: HoldoutConfig) -> np.ndarray:
    """[n] bool: the examples subset model `model_index` trains on (seeded, see HoldoutConfig)."""
    if cfg.scheme == "independent":
        rng = np.random.default_rng([cfg.seed, model_index])
        mask = np.zeros(n, dtype=bool)
        mask[rng.choice(n, size=int(round(cfg.fraction * n)), replace=False)] = True
        return mask
    # "complementary": the pair's half, drawn from a stream that the pair's two models share
    pair, second = divmod(model_index, 2)
    half = np.zeros(n, dtype=bool)
    half[np.random.default_rng([cfg.seed, pair, 2]).permutation(n)[: n // 2]] = True
    return ~half if second else half


def holdout_estimate(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Combine subset models' results into per-example scores.

    parts: one frame per subset model with columns index, in_subset, correct.  An example's
    score is its mean correctness over the models that did not train on it; an example
    held out of no model is unscored (NaN), never 0.
    """
    joined = pd.concat(parts, ignore_index=True)
    held = joined[~joined["in_subset"]]
    scores = held.groupby("index")["correct"].agg(["mean", "size"])
    out = pd.DataFrame({"index": np.sort(joined["index"].unique())})
    out["cscore"] = out["index"].map(scores["mean"])
    out["times_held_out"] = out["index"].map(scores["size"]).fillna(0).astype(int)
    return out


def atypical_table(base: pd.DataFrame, scores: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """The noise-free data table plus cscore, times_held_out and is_atypical (score < threshold;
    unscored examples are not atypical)."""
    out = base.merge(scores, on="index", how="left", validate="one_to_one")
    out["is_atypical"] = (out["cscore"] < threshold).fillna(False).astype(bool)
    return out

