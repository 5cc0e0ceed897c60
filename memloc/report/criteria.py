"""The numeric criteria of the paper's qualitative claims (memloc.report.claims lists them):
each reads the collected tables and returns our value and whether the claim holds.

Every criterion reads only the collected parquet tables (pandas; no model is run).  The
thresholds are the paper's words made numeric, slightly relaxed where the paper says
"nearly" (0.9 for "near 100%"), and each is chosen so that it fails when the effect is
absent: e.g. "the total gradient is smaller than each group's" fails when the total is the
largest, as a mean of per-batch norms makes it.

Tables (run columns dataset/model/noise/seed first, as the collect rules write them):
metrics (epoch, subset, accuracy), gradients (epoch, layer_index, group, norm, cosine),
rewinding (layer_index, epoch, subset, accuracy; layer_index -1 is the training curve),
retraining (layer_index, epoch, subset, accuracy), flipping (is_noisy, removals,
initially_correct, accuracy_train), auc (method, examples, auc), tab1 / tab3 (long:
when / method, subset, accuracy in %), and their atypical_* counterparts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu


@dataclass
class Setting:
    """What the criteria need besides the tables: the primary run and the fig01 window."""

    dataset: str
    model: str
    noise: float
    fig01_window: tuple[int, int]  # epochs (start, end], as fig01 averages them
    groups: tuple[str, str] = ("clean", "noisy")


@dataclass
class Verdict:
    ours: str
    holds: bool | None  # None: the tables it needs were not produced


def _primary(df: pd.DataFrame, s: Setting) -> pd.DataFrame:
    keep = (df["dataset"] == s.dataset) & (df["model"] == s.model)
    if "noise" in df:
        keep &= np.isclose(df["noise"].astype(float), s.noise)
    return df[keep]


def accuracy_curves(metrics: pd.DataFrame, groups: tuple[str, str]) -> pd.DataFrame:
    """[epoch x group] training accuracy, mean over seeds."""
    m = metrics[metrics["subset"].isin(groups)]
    return m.pivot_table(index="epoch", columns="subset", values="accuracy", aggfunc="mean")[list(groups)]


def first_epoch(curve: pd.Series, threshold: float) -> int:
    """First epoch at which `curve` reaches `threshold` (one past the last if never)."""
    reached = curve.index[curve.to_numpy() >= threshold]
    return int(reached[0]) if len(reached) else int(curve.index.max()) + 1


def memorization_window(curves: pd.DataFrame, groups: tuple[str, str]) -> tuple[int, int]:
    """The memorization epochs: from the clean examples being learned (90% of their final
    accuracy) until the noisy ones reach 50% (the paper's epochs 10-30 of 50, in which noisy
    accuracy is still low and the two groups' gradients conflict); at least two epochs."""
    clean, noisy = groups
    start = first_epoch(curves[clean], 0.9 * curves[clean].iloc[-1])
    end = min(first_epoch(curves[noisy], 0.5), int(curves.index.max()))
    return start, max(end, start + 1)


# -- the criteria: each takes the tables and the setting, returns a Verdict -------------


def late_memorization(t: dict, s: Setting) -> Verdict:
    curves = accuracy_curves(_primary(t["metrics"], s), s.groups)
    clean, noisy = s.groups
    last = int(curves.index.max())
    t_clean = first_epoch(curves[clean], 0.9 * curves[clean].iloc[-1])
    t_noisy = first_epoch(curves[noisy], 0.5)
    ours = f"{clean} at 90% of final by epoch {t_clean}; {noisy} reaches 50% at epoch {t_noisy} (of {last})"
    return Verdict(ours, t_noisy - t_clean >= 0.15 * last)


def noisy_memorized(t: dict, s: Setting) -> Verdict:
    curves = accuracy_curves(_primary(t["metrics"], s), s.groups)
    final = curves.iloc[-1]
    clean, noisy = s.groups
    ours = f"final training accuracy: {noisy} {final[noisy]:.1%}, {clean} {final[clean]:.1%}"
    return Verdict(ours, bool(final[noisy] >= 0.97 and final[clean] >= 0.97))


def _layer_norms(grads: pd.DataFrame, epochs: tuple[int, int] | None) -> pd.DataFrame:
    """[layer_index x group] normalized norm, mean over the epochs (start, end] and seeds."""
    g = grads if epochs is None else grads[(grads["epoch"] > epochs[0]) & (grads["epoch"] <= epochs[1])]
    return g.pivot_table(index="layer_index", columns="group", values="norm", aggfunc="mean")


def total_smaller(t: dict, s: Setting) -> Verdict:
    norms = _layer_norms(_primary(t["gradients"], s), s.fig01_window)
    smaller = norms["total"] < norms[list(s.groups)].min(axis=1)
    ratio = (norms["total"] / norms[list(s.groups)].min(axis=1)).median()
    ours = (f"total < both groups in {int(smaller.sum())} of {len(norms)} layers (epochs "
            f"{s.fig01_window[0] + 1}-{s.fig01_window[1]}); median total / smaller group = {ratio:.2f}")
    return Verdict(ours, bool(smaller.sum() >= len(norms) - 1))


def comparable_norms(t: dict, s: Setting) -> Verdict:
    norms = _layer_norms(_primary(t["gradients"], s), None)
    clean, noisy = s.groups
    ratio = norms[noisy] / norms[clean]
    share = s.noise / (1 - s.noise)
    ours = (f"median over layers of {noisy} / {clean} norm = {ratio.median():.2f} (range {ratio.min():.2f}-"
            f"{ratio.max():.2f}); proportional to size would be {share:.2f}")
    return Verdict(ours, bool(0.5 <= ratio.median() <= 2.0))


def negative_cosine(t: dict, s: Setting) -> Verdict:
    start, end = memorization_window(accuracy_curves(_primary(t["metrics"], s), s.groups), s.groups)
    g = _primary(t["gradients"], s)
    g = g[(g["group"] == "total") & (g["epoch"] >= start) & (g["epoch"] <= end)]
    cells = g.groupby(["epoch", "layer_index"])["cosine"].mean()
    below = float((cells < -0.75).mean())
    ours = f"epochs {start}-{end}: {below:.0%} of (epoch, layer) cells below -0.75, median {cells.median():.2f}"
    return Verdict(ours, below >= 0.5)


def _pre_memorization_epoch(curves: pd.DataFrame, group: str) -> int:
    """The last epoch before the end at which the group is still at most 20% correct."""
    curve = curves[group].iloc[:-1]
    low = curve.index[curve.to_numpy() <= 0.2]
    return int(low[-1]) if len(low) else 0


def _rewound(rew: pd.DataFrame, group: str, final_curves: pd.DataFrame) -> tuple[int, pd.Series, float]:
    """(t*, group accuracy per layer rewound to t*, the final model's group accuracy)."""
    curve = rew[rew["layer_index"] == -1].pivot_table(index="epoch", columns="subset", values="accuracy")
    t_star = _pre_memorization_epoch(final_curves if final_curves is not None else curve, group)
    r = rew[(rew["layer_index"] >= 0) & (rew["epoch"] == t_star) & (rew["subset"] == group)]
    return t_star, r.groupby("layer_index")["accuracy"].mean(), float(curve[group].iloc[-1])


def rewinding_not_critical(t: dict, s: Setting, table: str = "rewinding") -> Verdict:
    group = s.groups[1]
    rew = _primary(t[table], s)
    t_star, acc, final = _rewound(rew, group, None)
    kept = acc >= 0.9 * final
    last = acc.index.max()
    ours = (f"layers rewound to epoch {t_star}: {group} accuracy kept (>= 90% of {final:.1%}) for "
            f"{int(kept.sum())} of {len(acc)} layers; last layer {acc[last]:.1%}, lowest {acc.min():.1%}")
    return Verdict(ours, bool(kept[last] and kept.sum() >= (len(acc) + 1) // 2))


def retraining_restores(t: dict, s: Setting, table: str = "retraining") -> Verdict:
    group = s.groups[1]
    r = _primary(t[table], s)
    r = r[(r["subset"] == group) & (r["epoch"] >= 1)]
    best = r.groupby(["layer_index", "epoch"])["accuracy"].mean().groupby("layer_index").max()
    restored = best >= 0.9
    ours = (f"{int(restored.sum())} of {len(best)} layers reach >= 90% {group} accuracy while retrained on "
            f"{s.groups[0]} only (best per layer {best.min():.0%}-{best.max():.0%})")
    return Verdict(ours, bool(restored.sum() > len(best) / 2))


def _flips(t: dict, s: Setting) -> pd.DataFrame:
    f = _primary(t["flipping"], s)
    return f[f["initially_correct"]] if "initially_correct" in f else f


def fewer_units(t: dict, s: Setting) -> Verdict:
    f = _flips(t, s).groupby("index").agg(is_noisy=("is_noisy", "first"), removals=("removals", "mean"))
    noisy, clean = f[f["is_noisy"]]["removals"], f[~f["is_noisy"]]["removals"]
    ratio = noisy.mean() / clean.mean()
    p = mannwhitneyu(noisy, clean, alternative="less").pvalue
    ours = f"mean removals {noisy.mean():.1f} (noisy) vs {clean.mean():.1f} (clean): ratio {ratio:.2f}, p = {p:.1g}"
    return Verdict(ours, bool(ratio <= 0.5 and p < 0.01))


def higher_post_removal_accuracy(t: dict, s: Setting) -> Verdict:
    f = _flips(t, s)
    if "censored" in f:
        f = f[~f["censored"]]
    noisy, clean = f[f["is_noisy"]]["accuracy_train"], f[~f["is_noisy"]]["accuracy_train"]
    delta = noisy.mean() - clean.mean()
    p = mannwhitneyu(noisy, clean, alternative="greater").pvalue
    ours = f"post-removal training accuracy {noisy.mean():.1%} (noisy) vs {clean.mean():.1%} (clean), p = {p:.1g}"
    return Verdict(ours, bool(delta > 0 and p < 0.05))


def flip_count_detects(t: dict, s: Setting) -> Verdict:
    auc = t["auc"].set_index(["method", "examples"])["auc"]
    flip = auc.get(("flip count", "flipped examples"), np.nan)
    learning = auc.get(("learning time", "flipped examples"), auc.get(("learning time", "all scored examples")))
    ours = f"ROC AUC flip count {flip:.2f}, learning time {learning:.2f}"
    return Verdict(ours, bool(flip >= 0.75 and flip >= learning - 0.05))


def _tab(t: dict, name: str, **where) -> float:
    df = t[name]
    for key, value in where.items():
        df = df[df[key] == value]
    return float(df["accuracy"].mean()) / 100


def tied_dropout_removes(t: dict, s: Setting) -> Verdict:
    clean, noisy = s.groups
    before_c, before_n = (_tab(t, "tab1", when="before", subset=g) for g in s.groups)
    after_c, after_n = (_tab(t, "tab1", when="after", subset=g) for g in s.groups)
    ours = (f"{clean} {before_c:.1%} -> {after_c:.1%}, {noisy} {before_n:.1%} -> {after_n:.1%} "
            f"after dropping the memorization units")
    return Verdict(ours, bool(before_n >= 0.9 and after_n <= 0.10 and before_c - after_c <= 0.15))


def baselines_memorize(t: dict, s: Setting) -> Verdict:
    clean, noisy = s.groups
    acc = {m: (_tab(t, "tab3", method=m, subset=clean), _tab(t, "tab3", method=m, subset=noisy))
           for m in ("standard", "fixed_sparse")}
    ours = "; ".join(f"{m}: {c:.1%} {clean}, {n:.1%} {noisy}" for m, (c, n) in acc.items())
    return Verdict(ours, all(n >= 0.9 and c >= 0.95 for c, n in acc.values()))


def atypical_gradients(t: dict, s: Setting) -> Verdict:
    typical, atypical = ATYPICAL_GROUPS
    norms = _layer_norms(t["atypical_gradients"], None)
    ratio = (norms[atypical] / norms[typical]).median()
    return Verdict(f"median over layers of atypical / typical norm = {ratio:.2f}", bool(ratio >= 0.5))


ATYPICAL_GROUPS = ("typical", "atypical")
