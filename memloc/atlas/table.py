"""The atlas table: one row per training example of the primary setting, joined from what the
DAG computed (pandas only; memloc.atlas.jobs reads the files).

Columns (a group is absent when its measurement is not configured, never NaN-filled):

- index, label (the training label), true_label, is_noisy: the data table;
- cscore, is_atypical: the typical/atypical data table (same training rows, by source_index;
  NaN / NA for a row it has no C-score for);
- learning_time, forgetting_events, aum: memloc.flipping.detection on the run's per-epoch
  records (aum here is the mean margin itself, larger = easier; detection negates it);
- confidence, variability: Data Maps (Swayamdipta et al. 2020), the mean and standard
  deviation over epochs 1..E of p(given label) = exp(-loss);
- ssft: second-split forgetting time (NaN for the examples of split B, which it does not time);
- flipped: selected for neuron flipping; per flipping seed s: removals_s{s}, censored_s{s},
  flipped_to_s{s}, accuracy_after_s{s} (training accuracy after the removals), layers_s{s}
  (the removed units' layers, in removal order, comma-separated); averaged: removals_mean,
  censored_fraction, accuracy_after_mean;
- tied_correct, tied_correct_drop: the example-tied dropout run, at its last epoch, correct
  with all units and after dropping the memorization units;
- neighbours, neighbours_same_label: the 5 nearest training examples in the final model's
  penultimate features (memloc.atlas.neighbours) and how many of them share the label.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from memloc.flipping.detection import area_under_margin, forgetting_events, learning_time

BASE_COLUMNS = ["index", "label", "true_label", "is_noisy"]


def dynamics(examples: pd.DataFrame) -> pd.DataFrame:
    """Per-example training dynamics of a run's examples table, by training row."""
    trained = examples[examples["epoch"] >= 1]
    p = np.exp(-trained["loss"].astype(float))
    by_example = p.groupby(trained["index"])
    # the population std over epochs (ddof 0), as Data Maps' definition and code (np.std)
    maps = pd.DataFrame({"confidence": by_example.mean(), "variability": by_example.std(ddof=0)})
    out = pd.concat([learning_time(examples), forgetting_events(examples), area_under_margin(examples), maps], axis=1)
    return out.rename_axis("index")


def flipping_columns(flipping: pd.DataFrame) -> pd.DataFrame:
    """Per flipping seed and averaged columns of the merged flipping table, by training row."""
    cols = {}
    for seed, g in flipping.groupby("seed"):
        g = g.set_index("index")
        cols[f"removals_s{seed}"] = g["removals"].astype(float)
        cols[f"censored_s{seed}"] = g["censored"].astype(float)
        cols[f"flipped_to_s{seed}"] = g["flipped_to"].astype(float)
        cols[f"accuracy_after_s{seed}"] = g["accuracy_train"].astype(float)
        cols[f"layers_s{seed}"] = g["removed_layers"].map(lambda x: ",".join(map(str, x)))
    out = pd.DataFrame(cols)
    by_index = flipping.groupby("index")
    out["removals_mean"] = by_index["removals"].mean()
    out["censored_fraction"] = by_index["censored"].mean()
    out["accuracy_after_mean"] = by_index["accuracy_train"].mean()
    return out.rename_axis("index")


def build_atlas(data: pd.DataFrame, examples: pd.DataFrame, parts: dict[str, pd.DataFrame | None]) -> pd.DataFrame:
    """The atlas table of one run.  data: its data table; examples: its per-epoch records;
    parts (each optional, None or missing = not configured): flipping (the merged flipping
    table of the setting), second_split (the run's second-split table), atypical (the
    typical/atypical data table of the dataset), dropout (the example-tied run's examples
    table), neighbours (memloc.atlas.neighbours.nearest: index, neighbours)."""
    out = data[BASE_COLUMNS].set_index("index")
    atypical = parts.get("atypical")
    if atypical is not None:
        scores = atypical.set_index("source_index")[["cscore", "is_atypical"]]
        joined = scores.reindex(data["source_index"].to_numpy())
        out["cscore"] = joined["cscore"].to_numpy()
        # nullable: an example without a C-score is neither typical nor atypical (NA), not typical
        out["is_atypical"] = pd.array(joined["is_atypical"].to_numpy(dtype=object), dtype="boolean")
    out = out.join(dynamics(examples))
    if parts.get("second_split") is not None:
        out["ssft"] = parts["second_split"].set_index("index")["ssft"].astype(float).reindex(out.index)
    flipping = parts.get("flipping")
    if flipping is not None:
        out["flipped"] = out.index.isin(flipping["index"])
        out = out.join(flipping_columns(flipping))
        for c in [c for c in out.columns if c.startswith("layers_s")]:
            out[c] = out[c].fillna("")
    dropout = parts.get("dropout")
    if dropout is not None:
        last = dropout[dropout["epoch"] == dropout["epoch"].max()].set_index("index")
        out["tied_correct"] = last["correct"].astype(bool).reindex(out.index)
        out["tied_correct_drop"] = last["correct_drop"].astype(bool).reindex(out.index)
    nn = parts.get("neighbours")
    if nn is not None:
        nn = nn.set_index("index")["neighbours"].reindex(out.index)
        out["neighbours"] = nn
        labels = out["label"].to_numpy()
        out["neighbours_same_label"] = [int((labels[np.asarray(n)] == lab).sum()) for n, lab in zip(nn, labels)]
    return out.reset_index()


def per_epoch(examples: pd.DataFrame) -> dict[str, np.ndarray]:
    """{correct: [n, epochs] bool, margin: [n, epochs] float} of a run's examples table (epoch 0
    first), row i = training row i: the detail view's curves."""
    out = {}
    for col in ("correct", "margin"):
        out[col] = examples.pivot(index="index", columns="epoch", values=col).sort_index().to_numpy()
    return out
