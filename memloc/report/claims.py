"""The paper's qualitative claims, one row each: the claim as the paper states it (section /
figure), an explicit numeric criterion computed from our tables (memloc.report.criteria,
.example_criteria), our value, and how sure the verdict is: results/tables/claims.{parquet,
csv,md}.

A claim's criterion is evaluated on the pooled tables (every seed, as the figures average
them), on each training seed's tables, and, where its statistic averages over examples,
on bootstrap resamples of the examples (memloc.report.verdicts).  `verdict` is "holds" or
"fails" only where all of these agree, else "inconclusive" with the reason; "n/a" where the
tables it needs were not produced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import pandas as pd

from memloc.report.criteria import (
    ATYPICAL_GROUPS,
    Setting,
    atypical_gradients,
    comparable_norms,
    late_memorization,
    negative_cosine,
    noisy_memorized,
    primary,
    retraining_restores,
    rewinding_not_critical,
    total_smaller,
)
from memloc.report.example_criteria import (
    baselines_memorize,
    fewer_units,
    flip_count_detects,
    higher_post_removal_accuracy,
    layers_scattered,
    tied_dropout_removes,
)
from memloc.report.verdicts import (
    BOOTSTRAP_RESAMPLES,
    ByExample,
    Verdict,
    bootstrap,
    conclude,
    evaluate,
    seed_tables,
    seeds_text,
)

COLUMNS = ["claim", "paper", "criterion", "ours", "verdict", "margin", "seeds", "bootstrap", "reason"]


@dataclass(frozen=True)
class Claim:
    name: str
    paper: str  # the paper's claim with its place
    criterion: str  # in words
    check: Callable[[dict, Setting], Verdict]  # a ByExample is also bootstrapped over examples
    needs: tuple[str, ...]  # the tables it reads
    atypical: bool = False  # on the typical / atypical runs (noise-free) instead of clean / noisy

    def setting(self, s: Setting) -> Setting:
        return Setting(s.dataset, s.model, 0.0, s.fig01_window, ATYPICAL_GROUPS) if self.atypical else s


CLAIMS: list[Claim] = [
    Claim("late memorization", "noisy examples are learned late, after the clean ones (Sec. 5.1, Fig. 3: below 20% "
          "until epoch 30 of 50)", "noisy reach 50% at least 0.15 x epochs after clean reach 90% of their final "
          "accuracy (fails if noisy never reach 50%)", late_memorization, ("metrics",)),
    Claim("noisy memorized", "the noisy examples end memorized (Table 1: 99.3-100% before dropping)",
          "final noisy and clean training accuracy >= 97%", noisy_memorized, ("metrics",)),
    Claim("total smaller", "the total gradient norm is significantly smaller than both the clean and the noisy "
          "one (Sec. 4.2, Fig. 1)", "total < min(clean, noisy) in all layers but at most one, fig01's epochs",
          total_smaller, ("gradients",)),
    Claim("noisy comparable", "noisy examples (10% of the data) contribute about as much gradient norm as all "
          "clean examples together (Sec. 4.1, Fig. 1)", "median over layers of noisy / clean norm in [0.5, 2], all "
          "epochs", comparable_norms, ("gradients",)),
    Claim("negative cosine", "clean and noisy gradients have cosine below -0.75 in all layers during most of the "
          "memorization epochs (Sec. 4.2, Fig. 2)", ">= 50% of (epoch, layer) cells below -0.75 from the epoch "
          "clean examples reach 90% of their final accuracy to the one noisy examples reach 50% (the last if "
          "never)", negative_cosine, ("metrics", "gradients")),
    Claim("rewinding: no critical layer", "rewinding a layer, in particular the last ones, to before "
          "memorization does not remove it (Sec. 5.1, Fig. 3)", "rewound to the last epoch with noisy accuracy "
          "<= 20%: the last layer and at least half of the layers keep >= 90% of the final noisy accuracy "
          "(undecided below 50% final)", rewinding_not_critical, ("rewinding",)),
    Claim("retraining restores", "retraining one layer on clean examples only gives the unseen noisy examples "
          "nearly 100% accuracy for most layers (Sec. 5.2, Fig. 4)", "more than half of the layers reach >= 90% "
          "noisy accuracy at some retraining epoch", retraining_restores, ("retraining",)),
    Claim("fewer units", "noisy examples flip with far fewer units than clean ones: 5.1 vs 15.7 (Sec. 6.1, "
          "Fig. 5)", "per-example mean removals noisy / clean <= 0.5, one-sided Mann-Whitney p < 0.01 (examples "
          "right before removal)", fewer_units, ("flipping",)),
    Claim("post-removal accuracy", "training accuracy after the removal is higher for noisy examples: +10 points "
          "(Sec. 6.1, Fig. 5b)", "per-example mean post-removal training accuracy noisy > clean, one-sided "
          "Mann-Whitney p < 0.05", higher_post_removal_accuracy, ("flipping",)),
    Claim("critical neurons scattered", "the critical neurons of clean and noisy examples are scattered over "
          "multiple layers, in a similar way for both (Sec. 6.1, Fig. 5c)", "the fewest layers holding 80% of the "
          "removals >= 3 for noisy and for clean examples; total variation distance of their layer distributions "
          "<= 0.25 (examples flipped within the cap)", layers_scattered, ("flipping",)),
    Claim("flip count detects", "the flip count detects mislabeled examples about as well as learning time: AUC "
          "0.89 vs 0.87 (Sec. 6.1)", "ROC AUC of flip count on the flipped examples >= 0.75 and >= learning "
          "time's - 0.05", flip_count_detects, ("detection_scores",)),
    Claim("tied dropout", "dropping the memorization units removes the noisy accuracy (99.3 -> 3.1%) and keeps "
          "most clean accuracy (99.9 -> 90.8%) (Sec. 6.2, Table 1)", "noisy >= 90% before, <= 10% after; clean "
          "loses <= 15 points", tied_dropout_removes, ("tab1",)),
    Claim("baselines memorize", "standard dropout and a sparse network still memorize the noisy examples: 99.5 / "
          "99.8% (Sec. 6.2, Table 3)", "noisy >= 90% and clean >= 95% for both baselines", baselines_memorize,
          ("tab3",)),
    Claim("atypical: gradients", "atypical examples contribute as much gradient norm as typical ones despite "
          "their smaller number (Sec. 7, Fig. 8)", "median over layers of atypical / typical norm >= 0.5, all "
          "epochs", atypical_gradients, ("atypical_gradients",), atypical=True),
    Claim("atypical: rewinding", "memorization of atypical examples is dispersed over layers (Sec. 7, Fig. 9)",
          "as 'rewinding: no critical layer', for atypical examples",
          partial(rewinding_not_critical, table="atypical_rewinding"), ("atypical_rewinding",), atypical=True),
    Claim("atypical: retraining", "retraining any layer on typical examples only gives atypical examples high "
          "accuracy (App. B.2, Fig. 19)", "as 'retraining restores', for atypical examples",
          partial(retraining_restores, table="atypical_retraining"), ("atypical_retraining",), atypical=True),
]


def claim_seeds(tables: dict[str, pd.DataFrame], setting: Setting) -> list[int]:
    """The training seeds of the claim's run in its tables (those with a seed column)."""
    return sorted({int(x) for df in tables.values() if "seed" in df for x in primary(df, setting)["seed"].unique()})


def evaluate_claim(claim: Claim, tables: dict[str, pd.DataFrame], setting: Setting, resamples: int) -> dict:
    """The claim's row: the pooled verdict, each seed's and the bootstrap's (ByExample)."""
    row = {"claim": claim.name, "paper": claim.paper, "criterion": claim.criterion}
    if any(tables.get(n) is None for n in claim.needs):
        return {**row, "ours": "not run in this configuration", "verdict": "n/a", "margin": float("nan"),
                "seeds": "", "bootstrap": "", "reason": "the tables it needs were not produced"}
    s = claim.setting(setting)
    needed = {n: tables[n] for n in claim.needs}
    pooled = evaluate(claim.check, needed, s)
    per_seed = {seed: evaluate(claim.check, seed_tables(needed, seed), s) for seed in claim_seeds(needed, s)}
    boot = None
    if isinstance(claim.check, ByExample) and pooled.holds is not None:
        boot = bootstrap(claim.check.examples(needed, s), partial(claim.check.judge, s=s), resamples)
    verdict, reason = conclude(pooled, per_seed, boot)
    return {**row, "ours": pooled.ours, "verdict": verdict, "margin": pooled.margin, "seeds": seeds_text(per_seed),
            "bootstrap": boot.text() if boot else "", "reason": reason}


def evaluate_claims(tables: dict[str, pd.DataFrame], setting: Setting,
                    resamples: int = BOOTSTRAP_RESAMPLES) -> pd.DataFrame:
    """One row per claim (COLUMNS)."""
    rows = [evaluate_claim(claim, tables, setting, resamples) for claim in CLAIMS]
    return pd.DataFrame(rows, columns=COLUMNS)


def write_claims(tables: dict[str, str], setting: dict, outputs: dict[str, str]) -> pd.DataFrame:
    """Job: read the named parquet tables (a claim whose tables are absent is 'n/a'), write
    claims.parquet / .csv / .md."""
    from memloc.core.files import save_table, write_parquet

    frames = {name: pd.read_parquet(path) for name, path in tables.items()}
    setting = {**setting, "fig01_window": tuple(setting["fig01_window"]), "groups": tuple(setting["groups"])}
    claims = evaluate_claims(frames, Setting(**setting))
    write_parquet(claims, outputs["parquet"])
    save_table(claims, outputs["csv"], outputs["md"], floatfmt=".3g")
    return claims
