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
  on B would barely move it and nothing would be forgotten; `second_split_forgetting`
  trains A from scratch (same model, settings and seed as the run) and then fine-tunes.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from memloc.core.data import DataSource, TrainingSet, training_set, write_parquet
from memloc.core.evaluation import autocast_for, evaluate_examples, prepare_batch, resolve_device
from memloc.core.models import ModelConfig
from memloc.report.tables import comparison_row, save_table, write_rows
from memloc.core.training import TrainConfig, make_optimizer, model_from_checkpoint, one_cycle, train

# The paper's AUCs (Sec. 6.1; ResNet-9, CIFAR-10, 10% label noise).
PAPER_AUC = {"flip count": 0.89, "learning time": 0.87, "second-split forgetting time": 0.93}
METHODS = ["flip count", "learning time", "forgetting events", "area under the margin", "second-split forgetting time"]


def roc_auc(is_noisy, score) -> float:
    """ROC AUC of `score` (larger = mislabeled) for telling noisy from clean; NaN when only
    one group is present."""
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


# -- second-split forgetting time --------------------------------------------------------


def split_rows(n: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted training rows of split A (`fraction` of n, seeded); the rest are split B."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=int(round(fraction * n)), replace=False))


def _subset(data: TrainingSet, rows) -> TrainingSet:
    rows = torch.as_tensor(rows)
    return TrainingSet(data.images[rows], data.labels[rows], data.group[rows], data.true_labels[rows])


def fine_tune_tracking(model, train_on: TrainingSet, tracked: TrainingSet, cfg: TrainConfig, device,
                       progress: bool = True) -> np.ndarray:
    """Fine-tune `model` on `train_on` (SGD, one-cycle, cfg) and record after every epoch
    which `tracked` examples it classifies correctly: [epochs + 1, n_tracked] bool, row 0
    before fine-tuning."""
    torch.manual_seed(cfg.seed)
    order = torch.Generator().manual_seed(cfg.seed)
    n = len(train_on.labels)
    steps = -(-n // cfg.batch_size)
    optimizer = make_optimizer(model.parameters(), cfg)
    scheduler = one_cycle(optimizer, cfg, steps)
    labels = train_on.labels.to(device)

    def record():
        return evaluate_examples(model, tracked.images, tracked.labels, device, cfg.eval_batch_size).correct.numpy()

    records = [record()]
    for _ in tqdm(range(cfg.epochs), desc="fine-tune", disable=not progress):
        model.train()
        perm = torch.randperm(n, generator=order)
        for s in range(steps):
            idx = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
            with autocast_for(device):
                logits = model(prepare_batch(train_on.images[idx], device))
            loss = F.cross_entropy(logits.float(), labels[idx.to(device)])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        records.append(record())
    return np.stack(records)


def second_split_forgetting(
    data_table: str | os.PathLike,
    out: str | os.PathLike,
    dataset: str,
    source: dict,
    model: dict,
    first: dict,
    second: dict,
    fraction: float,
    split_seed: int,
    device: str = "auto",
    threads: int = 1,
) -> pd.DataFrame:
    """Train on split A (TrainConfig fields `first`), fine-tune on split B (`second`), and
    write every A example's second-split forgetting time: columns index, ssft,
    learned_first (correct after training on A).  A's checkpoints go to a folder
    `first_split/` beside `out` (not a declared output, so an interrupted job resumes)."""
    torch.set_num_threads(threads)
    dev = resolve_device(device)
    table = pd.read_parquet(data_table)
    data = training_set(table, DataSource(**source).load(dataset, train=True))
    rows_a = split_rows(len(table), fraction, split_seed)
    rows_b = np.setdiff1d(np.arange(len(table)), rows_a)
    split_a, split_b = _subset(data, rows_a), _subset(data, rows_b)
    model_cfg = ModelConfig.for_dataset(dataset, **model)
    cfg_a = TrainConfig(**{**first, "gradient_accounting": False})
    ckpts = train(model_cfg, cfg_a, split_a, split_b.images, split_b.labels, Path(out).parent / "first_split", dev)
    net = model_from_checkpoint(ckpts[-1], dev)
    cfg_b = replace(cfg_a, **second)
    correct = fine_tune_tracking(net, split_b, split_a, cfg_b, dev)
    df = pd.DataFrame({"index": rows_a, "ssft": settled_epoch(correct, False), "learned_first": correct[0]})
    write_parquet(df, out)
    return df


# -- scores and the auc table -------------------------------------------------------------


def run_scores(examples: pd.DataFrame, second_split: pd.DataFrame) -> pd.DataFrame:
    """One run's per-example scores (larger = more likely mislabeled), by training row."""
    scores = pd.concat(
        [learning_time(examples), forgetting_events(examples), -area_under_margin(examples)], axis=1
    ).set_axis(["learning time", "forgetting events", "area under the margin"], axis=1)
    scores["second-split forgetting time"] = -second_split.set_index("index")["ssft"].astype(float)
    return scores.rename_axis("index")


def detection_scores(flipping: pd.DataFrame, runs: dict[int, tuple[str, str]], data_table: str) -> pd.DataFrame:
    """Per (seed, training row) scores of every method, with is_noisy and `flipped` (the
    row is one of the examples flipped).

    flipping: the merged flipping table (seed, index, removals, ...); runs: {seed:
    (examples.parquet, second_split.parquet)}."""
    noisy = pd.read_parquet(data_table).set_index("index")["is_noisy"]
    frames = []
    for seed, (examples, second) in runs.items():
        s = run_scores(pd.read_parquet(examples), pd.read_parquet(second))
        flips = flipping[flipping["seed"] == seed].set_index("index")["removals"]
        s["flip count"] = -flips.astype(float)
        s["flipped"] = s.index.isin(flips.index)
        s.insert(0, "seed", seed)
        frames.append(s.reset_index())
    out = pd.concat(frames, ignore_index=True)
    out.insert(2, "is_noisy", noisy.loc[out["index"]].to_numpy())
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


def write_auc(flipping: str, runs: dict[int, tuple[str, str]], data_table: str, outputs: dict[str, str]) -> pd.DataFrame:
    """Job: the per-example scores (outputs["scores"]) and the auc table (outputs["parquet"])."""
    scores = detection_scores(pd.read_parquet(flipping), runs, data_table)
    write_parquet(scores, outputs["scores"])
    table = auc_rows(scores)
    write_parquet(table, outputs["parquet"])
    return table


def render_auc(table: str, csv: str, md: str) -> None:
    """auc.csv / auc.md from auc.parquet."""
    save_table(pd.read_parquet(table), csv, md, floatfmt=".3f")


def paper_rows(flipping: str, auc: str, out: str, setting: str) -> pd.DataFrame:
    """fig05's and the auc table's rows of the paper-vs-ours table."""
    flips = pd.read_parquet(flipping)
    per_example = flips.groupby("index").agg(is_noisy=("is_noisy", "first"), removals=("removals", "mean"),
                                            accuracy=("accuracy_train", "mean"))
    noisy, clean = per_example[per_example["is_noisy"]], per_example[~per_example["is_noisy"]]
    paper = "ResNet-9, CIFAR-10, 10% noise, 1000 + 1000 examples, 30 models"
    rows = [
        comparison_row("fig05", "mean removals to flip, noisy", 5.1, noisy["removals"].mean(), paper, setting),
        comparison_row("fig05", "mean removals to flip, clean", 15.7, clean["removals"].mean(), paper, setting),
        comparison_row("fig05", "noisy examples flipped by < 10 removals (%; paper: > 90)", 90.0,
                       100 * (noisy["removals"] < 10).mean(), paper, setting),
        comparison_row("fig05", "post-removal training accuracy, noisy minus clean (points)", 10.0,
                       100 * (noisy["accuracy"].mean() - clean["accuracy"].mean()), paper, setting),
    ]
    table = pd.read_parquet(auc)
    for method, value in PAPER_AUC.items():
        subset = "flipped examples" if method == "flip count" else "all scored examples"
        ours = table[(table["method"] == method) & (table["examples"] == subset)]["auc"]
        rows.append(comparison_row("auc", f"ROC AUC, {method}", value, ours.iloc[0] if len(ours) else float("nan"),
                                   "ResNet-9, CIFAR-10, 10% noise", setting))
    return write_rows(rows, out)
