"""How sure a claim's verdict is.  A criterion (memloc.report.criteria, .example_criteria)
returns a Verdict: our value in words, whether the claim holds and by how much (margin).
memloc.report.claims evaluates it on the pooled tables, on each training seed's tables and,
for a criterion on a per-example table (ByExample), on bootstrap resamples of the examples;
`conclude` turns the three into holds / fails / inconclusive with the reason.

Margins: positive on the holding side.  A criterion of one condition gives that condition's
margin in the statistic's units (epochs, layers, accuracy, ...).  A compound criterion gives
its binding (smallest) condition's margin relative to that condition's threshold (margin /
|threshold|, or / 1 where the threshold is 0; p-values as log10 p), so that conditions in
different units compare; `binding` names the condition.

A criterion that cannot be decided on its tables (an empty group, an undefined mean) raises
Undecided with the reason; `evaluate` turns it into a Verdict whose holds is None, so that
no empty table passes or fails silently.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0  # fixed: the claims table is the same on every run of the same tables
CONFIDENCE = 0.95  # share of resamples (and the percentile interval) a verdict needs


class Undecided(Exception):
    """The tables do not decide the criterion; the message says why."""


@dataclass(frozen=True)
class Condition:
    """One inequality of a criterion: value >= threshold (at_least) or value <= threshold;
    strict: > / <."""

    name: str
    value: float
    threshold: float
    at_least: bool = True
    strict: bool = False

    @property
    def margin(self) -> float:
        return self.value - self.threshold if self.at_least else self.threshold - self.value

    @property
    def holds(self) -> bool:
        return self.margin > 0 if self.strict else self.margin >= 0

    @property
    def relative_margin(self) -> float:
        return self.margin / (abs(self.threshold) or 1.0)


@dataclass(frozen=True)
class Verdict:
    ours: str
    holds: bool | None  # None: undecided (ours says why) or not run
    margin: float = math.nan
    binding: str = ""  # the condition whose margin `margin` is (compound criteria)
    value: float = math.nan  # the headline statistic: the first condition's value
    statistic: str = ""  # its name
    note: str = ""  # what the verdict rests on besides the numbers, e.g. an event that never happens


def judged(ours: str, *conditions: Condition, note: str = "") -> Verdict:
    """The verdict of `conditions` (all must hold).  A condition with an undefined value
    (NaN) makes the criterion undecided, never passed or failed by a NaN comparison."""
    undefined = [c.name for c in conditions if math.isnan(c.value)]
    if undefined:
        raise Undecided(f"{ours}: undefined {', '.join(undefined)}")
    if len(conditions) == 1:
        binding, margin = conditions[0], conditions[0].margin
    else:
        binding = min(conditions, key=lambda c: c.relative_margin)
        margin = binding.relative_margin
        ours = f"{ours} [binding: {binding.name}]"
    return Verdict(ours, all(c.holds for c in conditions), float(margin), binding.name,
                   float(conditions[0].value), conditions[0].name, note)


def evaluate(check: Callable[..., Verdict], *args) -> Verdict:
    """check(*args), or an undecided Verdict with the reason the criterion raised."""
    try:
        return check(*args)
    except Undecided as why:
        return Verdict(f"undecided: {why}", None)


@dataclass(frozen=True)
class ByExample:
    """A criterion on a per-example table (one row per example, with is_noisy): `examples`
    builds it from the tables, `judge` decides on it.  Its statistic averages over examples,
    so the claims table also bootstraps it over them."""

    examples: Callable[[dict, object], pd.DataFrame]
    judge: Callable[[pd.DataFrame, object], Verdict]

    def __call__(self, tables: dict, setting) -> Verdict:
        return self.judge(self.examples(tables, setting), setting)


@dataclass(frozen=True)
class Bootstrap:
    statistic: str
    low: float
    high: float
    share: float  # of the resamples in which the criterion holds
    resamples: int
    undecided: float = 0.0  # of the resamples the criterion cannot decide: they back neither verdict

    @property
    def fails_share(self) -> float:
        return 1.0 - self.share - self.undecided

    def text(self) -> str:
        undecided = f", undecided in {_percent(self.undecided)}" if self.undecided else ""
        return (f"{self.statistic}: {CONFIDENCE:.0%} CI [{self.low:.3g}, {self.high:.3g}]; "
                f"holds in {_percent(self.share)}{undecided} of {self.resamples} resamples")


def bootstrap(examples: pd.DataFrame, judge: Callable[[pd.DataFrame], Verdict], resamples: int,
              seed: int = BOOTSTRAP_SEED) -> Bootstrap:
    """Resample the examples with replacement within each group (is_noisy), so that every
    resample has both groups at their sizes, and judge each resample.  A resample the
    criterion cannot decide backs neither verdict (counted apart, in `undecided`)."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(examples["is_noisy"].to_numpy() == g) for g in (True, False)]
    verdicts = []
    for _ in range(resamples):
        rows = np.concatenate([rng.choice(g, size=len(g)) for g in groups])
        verdicts.append(evaluate(judge, examples.iloc[rows]))
    values = np.array([v.value for v in verdicts], dtype=float)
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.nanpercentile(values, [tail, 100 - tail]) if np.isfinite(values).any() else (np.nan, np.nan)
    share = float(np.mean([v.holds is True for v in verdicts]))
    undecided = float(np.mean([v.holds is None for v in verdicts]))
    statistic = next((v.statistic for v in verdicts if v.statistic), "statistic")
    return Bootstrap(statistic, float(low), float(high), share, resamples, undecided)


# -- the verdict of a claim --------------------------------------------------------------


def seed_tables(tables: dict[str, pd.DataFrame], seed: int) -> dict[str, pd.DataFrame]:
    """Every table restricted to one training seed; a table without a seed column whole."""
    return {name: df[df["seed"] == seed] if "seed" in df else df for name, df in tables.items()}


def _percent(share: float) -> str:
    return f"{100 * share:.3g}%"


def signed(margin: float) -> str:
    if math.isnan(margin):
        return "n/a"
    return f"{margin:+.2f}" if abs(margin) >= 0.01 or margin == 0 else f"{margin:+.1g}"


def word(holds: bool | None) -> str:
    return {True: "holds", False: "fails", None: "undecided"}[holds]


def seeds_text(per_seed: dict[int, Verdict]) -> str:
    """'0: holds (+0.12); 1: fails (-0.03)'."""
    if not per_seed:
        return "pooled only (its tables have no seed column)"
    return "; ".join(f"{seed}: {word(v.holds)}" + (f" ({signed(v.margin)})" if v.holds is not None else "")
                     for seed, v in per_seed.items())


def _disagreement(seed: int, v: Verdict) -> str:
    if v.holds is None:
        return f"seed {seed} {v.ours}"
    why = signed(v.margin) if not math.isnan(v.margin) else v.note or v.ours
    return f"seed {seed} {word(v.holds)} ({why})"


def conclude(pooled: Verdict, per_seed: dict[int, Verdict], boot: Bootstrap | None) -> tuple[str, str]:
    """(verdict, reason).  holds / fails: the pooled verdict, every seed's and (where
    bootstrapped) at least CONFIDENCE of the resamples agree; otherwise inconclusive, the
    reason naming what disagrees.  The pooled verdict's note (an event that never happens)
    is part of the reason either way."""
    notes = [pooled.note] if pooled.note else []
    if pooled.holds is None:
        return "inconclusive", "; ".join([f"pooled {pooled.ours}", *notes])
    causes = [_disagreement(seed, v) for seed, v in per_seed.items() if v.holds is not pooled.holds]
    if boot is not None:
        agreeing = boot.share if pooled.holds else boot.fails_share
        if agreeing < CONFIDENCE:
            undecided = f", undecided in {_percent(boot.undecided)}" if boot.undecided else ""
            causes.append(f"holds in {_percent(boot.share)}{undecided} of {boot.resamples} bootstrap resamples")
    verdict = "inconclusive" if causes else word(pooled.holds)
    return verdict, "; ".join(causes + notes)
