"""The paper's qualitative claims, one row each: the claim as the paper states it (section /
figure), an explicit numeric criterion computed from our tables (memloc.report.criteria),
our value and whether it holds: results/tables/claims.{parquet,csv,md}.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from memloc.report.criteria import (
    ATYPICAL_GROUPS,
    Setting,
    Verdict,
    atypical_gradients,
    baselines_memorize,
    comparable_norms,
    fewer_units,
    flip_count_detects,
    higher_post_removal_accuracy,
    late_memorization,
    negative_cosine,
    noisy_memorized,
    retraining_restores,
    rewinding_not_critical,
    tied_dropout_removes,
    total_smaller,
)

COLUMNS = ["claim", "paper", "criterion", "ours", "holds"]


def _atypical(s: Setting) -> Setting:
    return Setting(s.dataset, s.model, 0.0, s.fig01_window, ATYPICAL_GROUPS)


# (id, the paper's claim with its place, the criterion in words, the function, the tables it needs)
CLAIMS: list[tuple[str, str, str, Callable[[dict, Setting], Verdict], tuple[str, ...]]] = [
    ("late memorization", "noisy examples are learned late, after the clean ones (Sec. 5.1, Fig. 3: below 20% "
     "until epoch 30 of 50)", "noisy reach 50% at least 0.15 x epochs after clean reach 90% of their final "
     "accuracy", late_memorization, ("metrics",)),
    ("noisy memorized", "the noisy examples end memorized (Table 1: 99.3-100% before dropping)",
     "final noisy and clean training accuracy >= 97%", noisy_memorized, ("metrics",)),
    ("total smaller", "the total gradient norm is significantly smaller than both the clean and the noisy "
     "one (Sec. 4.2, Fig. 1)", "total < min(clean, noisy) in all layers but at most one, fig01's epochs",
     total_smaller, ("gradients",)),
    ("noisy comparable", "noisy examples (10% of the data) contribute about as much gradient norm as all clean "
     "examples together (Sec. 4.1, Fig. 1)", "median over layers of noisy / clean norm in [0.5, 2], all epochs",
     comparable_norms, ("gradients",)),
    ("negative cosine", "clean and noisy gradients have cosine below -0.75 in all layers during most of the "
     "memorization epochs (Sec. 4.2, Fig. 2)", ">= 50% of (epoch, layer) cells below -0.75 from the epoch "
     "clean examples reach 90% of their final accuracy to the one noisy examples reach 50%", negative_cosine,
     ("metrics", "gradients")),
    ("rewinding: no critical layer", "rewinding a layer, in particular the last ones, to before memorization "
     "does not remove it (Sec. 5.1, Fig. 3)", "rewound to the last epoch with noisy accuracy <= 20%: the last "
     "layer and at least half of the layers keep >= 90% of the final noisy accuracy",
     rewinding_not_critical, ("rewinding",)),
    ("retraining restores", "retraining one layer on clean examples only gives the unseen noisy examples nearly "
     "100% accuracy for most layers (Sec. 5.2, Fig. 4)", "more than half of the layers reach >= 90% noisy "
     "accuracy at some retraining epoch", retraining_restores, ("retraining",)),
    ("fewer units", "noisy examples flip with far fewer units than clean ones: 5.1 vs 15.7 (Sec. 6.1, Fig. 5)",
     "mean removals noisy / clean <= 0.5, one-sided Mann-Whitney p < 0.01 (examples right before removal)",
     fewer_units, ("flipping",)),
    ("post-removal accuracy", "training accuracy after the removal is higher for noisy examples: +10 points "
     "(Sec. 6.1, Fig. 5b)", "mean post-removal training accuracy noisy > clean, one-sided Mann-Whitney p < 0.05",
     higher_post_removal_accuracy, ("flipping",)),
    ("flip count detects", "the flip count detects mislabeled examples about as well as learning time: AUC "
     "0.89 vs 0.87 (Sec. 6.1)", "ROC AUC of flip count >= 0.75 and >= learning time's - 0.05",
     flip_count_detects, ("auc",)),
    ("tied dropout", "dropping the memorization units removes the noisy accuracy (99.3 -> 3.1%) and keeps most "
     "clean accuracy (99.9 -> 90.8%) (Sec. 6.2, Table 1)", "noisy >= 90% before, <= 10% after; clean loses "
     "<= 15 points", tied_dropout_removes, ("tab1",)),
    ("baselines memorize", "standard dropout and a sparse network still memorize the noisy examples: 99.5 / "
     "99.8% (Sec. 6.2, Table 3)", "noisy >= 90% and clean >= 95% for both baselines", baselines_memorize,
     ("tab3",)),
    ("atypical: gradients", "atypical examples contribute as much gradient norm as typical ones despite their "
     "smaller number (Sec. 7, Fig. 8)", "median over layers of atypical / typical norm >= 0.5, all epochs",
     atypical_gradients, ("atypical_gradients",)),
    ("atypical: rewinding", "memorization of atypical examples is dispersed over layers (Sec. 7, Fig. 9)",
     "as 'rewinding: no critical layer', for atypical examples",
     lambda t, s: rewinding_not_critical(t, _atypical(s), "atypical_rewinding"), ("atypical_rewinding",)),
    ("atypical: retraining", "retraining any layer on typical examples only gives atypical examples high "
     "accuracy (App. B.2, Fig. 19)", "as 'retraining restores', for atypical examples",
     lambda t, s: retraining_restores(t, _atypical(s), "atypical_retraining"), ("atypical_retraining",)),
]


def evaluate_claims(tables: dict[str, pd.DataFrame], setting: Setting) -> pd.DataFrame:
    """One row per claim: claim, the paper's statement, the criterion, our value, holds."""
    rows = []
    for name, paper, criterion, check, needs in CLAIMS:
        if any(tables.get(n) is None for n in needs):
            verdict = Verdict("not run in this configuration", None)
        else:
            verdict = check(tables, setting)
        rows.append({"claim": name, "paper": paper, "criterion": criterion, "ours": verdict.ours,
                     "holds": {True: "yes", False: "no", None: "n/a"}[verdict.holds]})
    return pd.DataFrame(rows, columns=COLUMNS)


def write_claims(tables: dict[str, str], setting: dict, outputs: dict[str, str]) -> pd.DataFrame:
    """Job: read the named parquet tables (a claim whose tables are absent is 'n/a'), write
    claims.parquet / .csv / .md."""
    from memloc.core.files import write_parquet
    from memloc.report.tables import save_table

    frames = {name: pd.read_parquet(path) for name, path in tables.items()}
    claims = evaluate_claims(frames, Setting(**{**setting, "fig01_window": tuple(setting["fig01_window"])}))
    write_parquet(claims, outputs["parquet"])
    save_table(claims, outputs["csv"], outputs["md"])
    return claims
