"""The criteria of the claims on neuron flipping, mislabeled-example detection and
example-tied dropout (memloc.report.criteria has the others; memloc.report.claims lists
them all).

Flipping and detection statistics average over examples: their criteria are ByExample
(memloc.report.verdicts), a per-example table (one row per example, the mean over the
training seeds it was flipped on) and a judge of it, which the claims table also
bootstraps over examples.

Tables: flipping (seed, index, is_noisy, removals, initially_correct, censored,
accuracy_train), detection_scores (seed, index, is_noisy, flipped, one score column per
detector, larger = more likely mislabeled), tab1 / tab3 (long: when / method, subset,
accuracy in %; averaged over the dropout seeds, no seed column).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu, rankdata

from memloc.report.criteria import Setting, primary
from memloc.report.verdicts import ByExample, Condition, Undecided, Verdict, judged

P_FLOOR = 1e-300  # log10 of a p-value that underflows to 0


def _log_p(name: str, p: float, alpha: float) -> Condition:
    """p < alpha on the log10 scale (its margin in decades, relative to log10 alpha)."""
    return Condition(f"{name} p < {alpha:g} (log10)", math.log10(max(p, P_FLOOR)), math.log10(alpha),
                     at_least=False, strict=True)


def _groups(examples: pd.DataFrame, column: str, s: Setting, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean) values of `column` (NaN left out); Undecided where a group has no
    example.  NumPy: a bootstrap calls it a thousand times."""
    clean, noisy = s.groups
    values = examples[column].to_numpy(dtype=float)
    is_noisy = examples["is_noisy"].to_numpy(dtype=bool)
    known = ~np.isnan(values)
    by_group = values[known & is_noisy], values[known & ~is_noisy]
    for name, group in zip((noisy, clean), by_group):
        if not len(group):
            raise Undecided(f"no {name} example {what}")
    return by_group


# -- neuron flipping ----------------------------------------------------------------------


def initially_correct_examples(t: dict, s: Setting) -> pd.DataFrame:
    """One row per flipped example: is_noisy and the means of removals and post-removal
    training accuracy over the (example, model) pairs predicted as labelled before any
    removal (a wrong prediction needs no removal); accuracy only of those the search
    flipped (a censored search has no post-removal model)."""
    f = primary(t["flipping"], s)
    f = f[f["initially_correct"]]
    flipped = f[~f["censored"]]
    out = f.groupby("index").agg(is_noisy=("is_noisy", "first"), removals=("removals", "mean"))
    out["accuracy"] = flipped.groupby("index")["accuracy_train"].mean()
    return out.reset_index()


WHAT = "predicted as its label before any removal"


def _fewer_units(examples: pd.DataFrame, s: Setting) -> Verdict:
    noisy, clean = _groups(examples, "removals", s, WHAT)
    if not clean.mean() > 0:
        raise Undecided("the clean examples flip with no removal: no ratio")
    ratio = noisy.mean() / clean.mean()
    p = mannwhitneyu(noisy, clean, alternative="less").pvalue
    ours = (f"mean removals {noisy.mean():.1f} (noisy, {len(noisy)}) vs {clean.mean():.1f} (clean, {len(clean)}): "
            f"ratio {ratio:.2f}, p = {p:.1g}")
    return judged(ours, Condition("mean removals noisy / clean", ratio, 0.5, at_least=False),
                  _log_p("Mann-Whitney", p, 0.01))


def _post_removal_accuracy(examples: pd.DataFrame, s: Setting) -> Verdict:
    noisy, clean = _groups(examples, "accuracy", s, WHAT + " and flipped within the cap")
    p = mannwhitneyu(noisy, clean, alternative="greater").pvalue
    ours = f"post-removal training accuracy {noisy.mean():.1%} (noisy) vs {clean.mean():.1%} (clean), p = {p:.1g}"
    return judged(ours, Condition("post-removal accuracy noisy - clean", noisy.mean() - clean.mean(), 0.0,
                                  strict=True), _log_p("Mann-Whitney", p, 0.05))


fewer_units = ByExample(initially_correct_examples, _fewer_units)

# Fig. 5c: the layers of the removed units.  "Scattered over multiple layers" = no two layers
# hold SPREAD_SHARE of a group's removals; "similar for both" = total variation distance of the
# two groups' layer distributions at most SIMILAR_TV.
SPREAD_SHARE, SPREAD_LAYERS, SIMILAR_TV = 0.8, 3, 0.25
LAYER_PREFIX = "removals_in_"


def removal_layer_examples(t: dict, s: Setting) -> pd.DataFrame:
    """One row per example flipped within the cap (predicted as labelled before any
    removal): is_noisy and, per layer, how many of its removals (summed over the seeds)
    fell in that layer (columns LAYER_PREFIX + layer)."""
    f = primary(t["flipping"], s)
    f = f[f["initially_correct"] & ~f["censored"]][["index", "is_noisy", "removed_layers"]]
    long = f.explode("removed_layers").dropna(subset=["removed_layers"])
    if long.empty:
        raise Undecided("no example flipped within the cap")
    counts = pd.crosstab(long["index"], long["removed_layers"]).add_prefix(LAYER_PREFIX)
    is_noisy = f.groupby("index")["is_noisy"].first()
    return counts.join(is_noisy).reset_index()


def layer_shares(examples: pd.DataFrame, noisy: bool) -> pd.Series:
    """The share of a group's removals in each layer (the LAYER_PREFIX columns)."""
    cols = [c for c in examples.columns if c.startswith(LAYER_PREFIX)]
    counts = examples.loc[examples["is_noisy"].to_numpy(dtype=bool) == noisy, cols].sum()
    counts.index = [c[len(LAYER_PREFIX):] for c in cols]
    return counts / counts.sum() if counts.sum() else counts * np.nan


def layers_holding(shares: pd.Series, share: float = SPREAD_SHARE) -> int:
    """The fewest layers that together hold `share` of the removals."""
    return int((shares.sort_values(ascending=False).cumsum() < share - 1e-12).sum() + 1)


def _layers_scattered(examples: pd.DataFrame, s: Setting) -> Verdict:
    clean_name, noisy_name = s.groups
    noisy, clean = layer_shares(examples, True), layer_shares(examples, False)
    if noisy.isna().all() or clean.isna().all():
        raise Undecided("a group has no example flipped within the cap")
    tv = float(0.5 * (noisy - clean).abs().sum())
    top = {name: ", ".join(f"{k} {v:.0%}" for k, v in sh.nlargest(2).items())
           for name, sh in ((noisy_name, noisy), (clean_name, clean))}
    ours = (f"{SPREAD_SHARE:.0%} of the removals in {layers_holding(noisy)} layers ({noisy_name}: {top[noisy_name]}) "
            f"and {layers_holding(clean)} ({clean_name}: {top[clean_name]}); total variation {tv:.2f}")
    return judged(ours, Condition(f"layers holding {SPREAD_SHARE:.0%} of noisy removals", layers_holding(noisy),
                                  SPREAD_LAYERS),
                  Condition(f"layers holding {SPREAD_SHARE:.0%} of clean removals", layers_holding(clean),
                            SPREAD_LAYERS),
                  Condition("total variation noisy vs clean", tv, SIMILAR_TV, at_least=False))


layers_scattered = ByExample(removal_layer_examples, _layers_scattered)
higher_post_removal_accuracy = ByExample(initially_correct_examples, _post_removal_accuracy)


# -- detection ----------------------------------------------------------------------------


def roc_auc(is_noisy: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of `score` (larger = noisy): the Mann-Whitney U of the noisy scores over the
    pairs, ties counting half (as sklearn's roc_auc_score, which the auc table uses)."""
    ranks = rankdata(score)
    n_noisy, n_clean = int(is_noisy.sum()), int((~is_noisy).sum())
    return float((ranks[is_noisy].sum() - n_noisy * (n_noisy + 1) / 2) / (n_noisy * n_clean))


def flipped_scores(t: dict, s: Setting) -> pd.DataFrame:
    """One row per flipped example: is_noisy and the flip count and learning time scores,
    mean over the training seeds (as the auc table's `auc`)."""
    d = primary(t["detection_scores"], s)
    d = d[d["flipped"]]
    return d.groupby("index").agg(is_noisy=("is_noisy", "first"), flip=("flip count", "mean"),
                                  learning=("learning time", "mean")).reset_index()


def _flip_count_detects(examples: pd.DataFrame, s: Setting) -> Verdict:
    flip, learning = (examples[c].to_numpy(dtype=float) for c in ("flip", "learning"))
    known = ~(np.isnan(flip) | np.isnan(learning))
    is_noisy = examples["is_noisy"].to_numpy(dtype=bool)[known]
    for name, present in zip(s.groups, ((~is_noisy).any(), is_noisy.any())):
        if not present:
            raise Undecided(f"no {name} flipped example with both scores: no AUC")
    flip, learning = roc_auc(is_noisy, flip[known]), roc_auc(is_noisy, learning[known])
    ours = f"ROC AUC on the {len(is_noisy)} flipped examples: flip count {flip:.2f}, learning time {learning:.2f}"
    return judged(ours, Condition("flip-count AUC", flip, 0.75),
                  Condition("flip-count AUC - learning time's", flip - learning, -0.05))


flip_count_detects = ByExample(flipped_scores, _flip_count_detects)


# -- example-tied dropout -----------------------------------------------------------------


def _tab(t: dict, name: str, **where) -> float:
    df = t[name]
    for key, value in where.items():
        df = df[df[key] == value]
    if df.empty:
        raise Undecided(f"no {', '.join(map(str, where.values()))} row in {name}")
    return float(df["accuracy"].mean()) / 100


def tied_dropout_removes(t: dict, s: Setting) -> Verdict:
    clean, noisy = s.groups
    before_c, before_n = (_tab(t, "tab1", when="before", subset=g) for g in s.groups)
    after_c, after_n = (_tab(t, "tab1", when="after", subset=g) for g in s.groups)
    ours = (f"{clean} {before_c:.1%} -> {after_c:.1%}, {noisy} {before_n:.1%} -> {after_n:.1%} "
            f"after dropping the memorization units")
    return judged(ours, Condition(f"{noisy} accuracy before", before_n, 0.9),
                  Condition(f"{noisy} accuracy after", after_n, 0.10, at_least=False),
                  Condition(f"{clean} accuracy lost", before_c - after_c, 0.15, at_least=False))


def baselines_memorize(t: dict, s: Setting) -> Verdict:
    clean, noisy = s.groups
    acc = {m: (_tab(t, "tab3", method=m, subset=clean), _tab(t, "tab3", method=m, subset=noisy))
           for m in ("standard", "fixed_sparse")}
    ours = "; ".join(f"{m}: {c:.1%} {clean}, {n:.1%} {noisy}" for m, (c, n) in acc.items())
    return judged(ours, *(Condition(f"{m} {noisy} accuracy", n, 0.9) for m, (_, n) in acc.items()),
                  *(Condition(f"{m} {clean} accuracy", c, 0.95) for m, (c, _) in acc.items()))
