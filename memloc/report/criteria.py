"""The numeric criteria of the paper's qualitative claims on the training curves, the
gradients and the layer experiments (memloc.report.claims lists them;
memloc.report.example_criteria has those on the flipping, detection and dropout tables):
each reads the collected tables and returns a Verdict (memloc.report.verdicts): our value,
whether the claim holds and its margin.

Every criterion reads only the collected parquet tables (pandas; no model is run).  The
thresholds are the paper's words made numeric, slightly relaxed where the paper says
"nearly" (0.9 for "near 100%"), and each is chosen so that it fails when the effect is
absent: e.g. "the total gradient is smaller than each group's" fails when the total is the
largest, as a mean of per-batch norms makes it.  Where the tables cannot decide (a group
without rows, an event the claim presupposes that never happens) the criterion says so
(Undecided, or a failing verdict with a note), never passing by default.

Tables (run columns dataset/model/noise/seed first, as the collect rules write them):
metrics (epoch, subset, accuracy), gradients (epoch, layer_index, group, norm, cosine),
rewinding (layer_index, epoch, subset, accuracy; layer_index -1 is the training curve),
retraining (layer_index, epoch, subset, accuracy), and their atypical_* counterparts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from memloc.report.verdicts import Condition, Undecided, Verdict, judged


@dataclass
class Setting:
    """What the criteria need besides the tables: the primary run and the fig01 window."""

    dataset: str
    model: str
    noise: float
    fig01_window: tuple[int, int]  # epochs (start, end], as fig01 averages them
    groups: tuple[str, str]  # the names of group False / True of the primary run


def primary(df: pd.DataFrame, s: Setting) -> pd.DataFrame:
    """The rows of the setting's run (on the run columns the table has)."""
    keep = pd.Series(True, index=df.index)
    for column, value in (("dataset", s.dataset), ("model", s.model)):
        if column in df:
            keep &= df[column] == value
    if "noise" in df:
        keep &= np.isclose(df["noise"].astype(float), s.noise)
    return df[keep]


def _columns(df: pd.DataFrame, columns: list[str], table: str) -> pd.DataFrame:
    """df[columns], or Undecided naming the missing ones (a group without any rows)."""
    missing = [c for c in columns if c not in df]
    if df.empty or missing:
        raise Undecided(f"no rows of {', '.join(missing) or 'this run'} in the {table} table")
    return df[columns]


def accuracy_curves(metrics: pd.DataFrame, groups: tuple[str, str]) -> pd.DataFrame:
    """[epoch x group] training accuracy, mean over seeds."""
    m = metrics[metrics["subset"].isin(groups)]
    curves = m.pivot_table(index="epoch", columns="subset", values="accuracy", aggfunc="mean")
    return _columns(curves, list(groups), "metrics")


def first_epoch(curve: pd.Series, threshold: float) -> int | None:
    """First epoch at which `curve` reaches `threshold`; None if it never does."""
    reached = curve.index[curve.to_numpy() >= threshold]
    return int(reached[0]) if len(reached) else None


def _never(group: str, curves: pd.DataFrame) -> str:
    return f"{group} never reaches 50% in {int(curves.index.max())} epochs"


def memorization_window(curves: pd.DataFrame, groups: tuple[str, str]) -> tuple[int, int, str]:
    """(start, end, note): the memorization epochs, from the clean examples being learned
    (90% of their final accuracy) until the noisy ones reach 50% (the paper's epochs 10-30
    of 50, in which noisy accuracy is still low and the two groups' gradients conflict); at
    least two epochs.  If the noisy ones never reach 50% the window runs to the last epoch
    and the note says so."""
    clean, noisy = groups
    start = first_epoch(curves[clean], 0.9 * curves[clean].iloc[-1])
    end = first_epoch(curves[noisy], 0.5)
    last = int(curves.index.max())
    note = "" if end is not None else f"{_never(noisy, curves)}: the window runs to the last epoch"
    end = last if end is None else min(end, last)
    return start, max(end, start + 1), note


# -- the criteria: each takes the tables and the setting, returns a Verdict -------------


def late_memorization(t: dict, s: Setting) -> Verdict:
    curves = accuracy_curves(primary(t["metrics"], s), s.groups)
    clean, noisy = s.groups
    last = int(curves.index.max())
    t_clean = first_epoch(curves[clean], 0.9 * curves[clean].iloc[-1])
    t_noisy = first_epoch(curves[noisy], 0.5)
    ours = f"{clean} at 90% of final by epoch {t_clean}; "
    if t_noisy is None:  # not learned at all is not "learned late"
        note = _never(noisy, curves)
        return Verdict(ours + note, False, note=note)
    ours += f"{noisy} reaches 50% at epoch {t_noisy} (of {last})"
    return judged(ours, Condition("epochs from clean 90% to noisy 50%", t_noisy - t_clean, 0.15 * last))


def noisy_memorized(t: dict, s: Setting) -> Verdict:
    curves = accuracy_curves(primary(t["metrics"], s), s.groups)
    final = curves.iloc[-1]
    clean, noisy = s.groups
    ours = f"final training accuracy: {noisy} {final[noisy]:.1%}, {clean} {final[clean]:.1%}"
    return judged(ours, Condition(f"final {noisy} accuracy", final[noisy], 0.97),
                  Condition(f"final {clean} accuracy", final[clean], 0.97))


def _layer_norms(grads: pd.DataFrame, epochs: tuple[int, int] | None, groups: list[str]) -> pd.DataFrame:
    """[layer_index x group] normalized norm, mean over the epochs (start, end] and seeds;
    Undecided where a layer lacks a group."""
    g = grads if epochs is None else grads[(grads["epoch"] > epochs[0]) & (grads["epoch"] <= epochs[1])]
    norms = _columns(g.pivot_table(index="layer_index", columns="group", values="norm", aggfunc="mean"),
                     groups, "gradients")
    if norms.isna().any().any():
        raise Undecided("a layer lacks a group's gradient norm")
    return norms


def total_smaller(t: dict, s: Setting) -> Verdict:
    norms = _layer_norms(primary(t["gradients"], s), s.fig01_window, ["total", *s.groups])
    smaller_group = norms[list(s.groups)].min(axis=1)
    smaller = int((norms["total"] < smaller_group).sum())
    ratio = (norms["total"] / smaller_group).median()
    ours = (f"total < both groups in {smaller} of {len(norms)} layers (epochs "
            f"{s.fig01_window[0] + 1}-{s.fig01_window[1]}); median total / smaller group = {ratio:.2f}")
    return judged(ours, Condition("layers with total < both groups", smaller, len(norms) - 1))


def comparable_norms(t: dict, s: Setting) -> Verdict:
    clean, noisy = s.groups
    norms = _layer_norms(primary(t["gradients"], s), None, [clean, noisy])
    ratio = norms[noisy] / norms[clean]
    share = s.noise / (1 - s.noise)
    ours = (f"median over layers of {noisy} / {clean} norm = {ratio.median():.2f} (range {ratio.min():.2f}-"
            f"{ratio.max():.2f}); proportional to size would be {share:.2f}")
    name = f"median {noisy} / {clean} norm"
    return judged(ours, Condition(f"{name} >= 0.5", ratio.median(), 0.5),
                  Condition(f"{name} <= 2", ratio.median(), 2.0, at_least=False))


def negative_cosine(t: dict, s: Setting) -> Verdict:
    start, end, note = memorization_window(accuracy_curves(primary(t["metrics"], s), s.groups), s.groups)
    g = primary(t["gradients"], s)
    g = g[(g["group"] == "total") & (g["epoch"] >= start) & (g["epoch"] <= end)]
    cells = g.groupby(["epoch", "layer_index"])["cosine"].mean().dropna()
    if cells.empty:
        raise Undecided(f"no gradient cosines in epochs {start}-{end}")
    below = float((cells < -0.75).mean())
    ours = f"epochs {start}-{end}: {below:.0%} of (epoch, layer) cells below -0.75, median {cells.median():.2f}"
    return judged(ours + (f" ({note})" if note else ""), Condition("share of cells below -0.75", below, 0.5),
                  note=note)


def _pre_memorization_epoch(curve: pd.Series, group: str) -> tuple[int, str]:
    """(the last epoch before the end at which the group is still at most 20% correct, a
    note where there is none: then the initialization, epoch 0)."""
    before_end = curve.iloc[:-1]
    low = before_end.index[before_end.to_numpy() <= 0.2]
    if len(low):
        return int(low[-1]), ""
    return 0, f"{group} is above 20% at every epoch before the end: rewound to the initialization"


def rewinding_not_critical(t: dict, s: Setting, table: str = "rewinding") -> Verdict:
    """Undecided where the final model has not memorized the group (below 50%): rewinding
    cannot remove what is not there, and "keeps 90% of nothing" would hold trivially."""
    group = s.groups[1]
    rew = primary(t[table], s)
    curve = rew[rew["layer_index"] == -1].pivot_table(index="epoch", columns="subset", values="accuracy")
    curve = _columns(curve, [group], f"{table} (training curve)")[group]
    final = float(curve.iloc[-1])
    if not final >= 0.5:
        raise Undecided(f"the final model has {final:.1%} {group} training accuracy: nothing memorized to remove")
    t_star, note = _pre_memorization_epoch(curve, group)
    r = rew[(rew["layer_index"] >= 0) & (rew["epoch"] == t_star) & (rew["subset"] == group)]
    acc = r.groupby("layer_index")["accuracy"].mean()
    if acc.empty:
        raise Undecided(f"no layer rewound to epoch {t_star} in the {table} table")
    kept, last = int((acc >= 0.9 * final).sum()), acc.index.max()
    ours = (f"layers rewound to epoch {t_star}: {group} accuracy kept (>= 90% of {final:.1%}) for "
            f"{kept} of {len(acc)} layers; last layer {acc[last]:.1%}, lowest {acc.min():.1%}")
    return judged(ours + (f" ({note})" if note else ""),
                  Condition(f"last layer's {group} accuracy", acc[last], 0.9 * final),
                  Condition("layers that keep 90%", kept, math.ceil(len(acc) / 2)), note=note)


def retraining_restores(t: dict, s: Setting, table: str = "retraining") -> Verdict:
    group = s.groups[1]
    r = primary(t[table], s)
    r = r[(r["subset"] == group) & (r["epoch"] >= 1)]
    if r.empty:
        raise Undecided(f"no {group} rows of a retraining epoch in the {table} table")
    best = r.groupby(["layer_index", "epoch"])["accuracy"].mean().groupby("layer_index").max()
    restored = int((best >= 0.9).sum())
    ours = (f"{restored} of {len(best)} layers reach >= 90% {group} accuracy while retrained on "
            f"{s.groups[0]} only (best per layer {best.min():.0%}-{best.max():.0%})")
    return judged(ours, Condition("layers reaching 90%", restored, len(best) / 2, strict=True))


def atypical_gradients(t: dict, s: Setting) -> Verdict:
    typical, atypical = s.groups
    norms = _layer_norms(t["atypical_gradients"], None, [typical, atypical])  # every atypical dataset
    ratio = (norms[atypical] / norms[typical]).median()
    return judged(f"median over layers of {atypical} / {typical} norm = {ratio:.2f}",
                  Condition(f"median {atypical} / {typical} norm", ratio, 0.5))


ATYPICAL_GROUPS = ("typical", "atypical")
