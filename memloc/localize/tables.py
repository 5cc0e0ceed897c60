"""The benchmark's summary: one row per method (localization.{csv,md}) and the numbers the
docs' statement of results reads off (`findings`; `python -m memloc.localize.tables
results/tables/localization.parquet` prints them).

Columns of the long table (results/tables/localization.parquet, one row per track, example,
method and k): track, dataset, model, noise, seed, index, is_noisy, label, method, k,
seconds (of the method's ranking, per example of the shard), correct (the example's
prediction before zeroing is its label), flipped (with its top-k zeroed it is not); the
ground-truth track also: precision, recall, units (the example's memorization units),
candidates, chance (units / candidates), chance_active (units / the units active for the
example: the generalization units and its own); the deletion track: drop_clean, drop_noisy,
drop_test (accuracy lost on the specificity rows)."""

from __future__ import annotations

import sys

import pandas as pd

SUMMARY_K = 4


def summary_k(ks) -> int:
    """The k of the summary's deletion columns: 4, else the largest k below it, else the smallest."""
    ks = sorted(set(int(k) for k in ks))
    below = [k for k in ks if k <= SUMMARY_K]
    return below[-1] if below else ks[0]


def _group(values: pd.Series, noisy: bool) -> pd.Series:
    """values indexed by (method, is_noisy) -> the methods' values of one group (NaN if none)."""
    if values.empty:
        return pd.Series(dtype=float)
    return values.unstack("is_noisy").reindex(columns=[False, True])[noisy]


def _ground_truth(long: pd.DataFrame) -> pd.DataFrame:
    gt = long[(long["track"] == "ground_truth") & (long["k"] == long["units"])]
    if gt.empty:
        return pd.DataFrame()
    precision = gt.groupby(["method", "is_noisy"])["precision"].mean()
    fit = gt[gt["correct"].astype(bool)]  # flips: of the examples predicted as labelled
    return pd.DataFrame({
        "precision noisy": _group(precision, True),
        "precision clean": _group(precision, False),
        "chance": gt.groupby("method")["chance"].mean(),
        "chance (active units)": gt.groupby("method")["chance_active"].mean(),
        "flips noisy (own count)": _group(fit.groupby(["method", "is_noisy"])["flipped"].mean(), True),
        "s/example (ground truth)": gt.groupby("method")["seconds"].mean(),
    })


def _deletion(long: pd.DataFrame) -> pd.DataFrame:
    dl = long[long["track"] == "deletion"]
    if dl.empty:
        return pd.DataFrame()
    k = summary_k(dl["k"].unique())
    at = dl[dl["k"] == k]
    fit = at[at["correct"].astype(bool)]
    flipped = fit.groupby(["method", "is_noisy"])["flipped"].mean()
    return pd.DataFrame({
        "noisy examples fit": fit[fit["is_noisy"]].groupby("method")["index"].nunique(),
        f"efficacy@{k} noisy": _group(flipped, True),
        f"flipped@{k} clean": _group(flipped, False),
        **{f"drop@{k} {g}": at.groupby("method")[f"drop_{g}"].mean() for g in ("clean", "noisy", "test")},
        "s/example (deletion)": dl.groupby("method")["seconds"].mean(),
    }).reindex(list(dict.fromkeys(dl["method"])))


def summary(long: pd.DataFrame) -> pd.DataFrame:
    """One row per method (in the order of the long table): precision of the top-n units at n
    = the example's unit count (= recall), noisy and clean examples, with both chance levels,
    and the share of noisy examples that zeroing them flips (ground truth); efficacy,
    flipped clean examples and accuracy drops at k = 4 (deletion); seconds per example.
    Flip shares count only the examples that the model predicts as labelled before any unit
    is zeroed (as fig05 does); the noisy ones of the deletion track are counted."""
    order = list(dict.fromkeys(long["method"]))
    parts = [p for p in (_ground_truth(long), _deletion(long)) if not p.empty]
    table = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=order)
    return table.reindex(order).rename_axis("method").reset_index()


def findings(long: pd.DataFrame) -> dict:
    """The numbers of the docs' statement of results: the ranking of the methods by precision
    on noisy examples (ground truth), flipping's place in it, the methods at or below random,
    and per method the efficacy on noisy against the flips of clean examples (deletion)."""
    table = summary(long).set_index("method")
    out: dict = {}
    if "precision noisy" in table:
        ranked = table["precision noisy"].sort_values(ascending=False)
        out["precision_ranking"] = ranked.round(3).to_dict()
        out["best"] = ranked.index[0]
        if "flipping" in ranked.index:
            out["flipping_rank"] = int(list(ranked.index).index("flipping")) + 1
        if "random" in ranked.index:
            out["not_above_random"] = [m for m in ranked.index if m != "random" and ranked[m] <= ranked["random"]]
        out["chance"] = float(table["chance"].mean())
    effic = [c for c in table.columns if c.startswith("efficacy@")]
    if effic:
        clean = effic[0].replace("efficacy", "flipped").replace("noisy", "clean")
        out["deletion"] = {m: {"noisy": round(float(table.loc[m, effic[0]]), 3),
                               "clean": round(float(table.loc[m, clean]), 3)} for m in table.index}
        if "random" in table.index:
            chance = table.loc["random", effic[0]]
            out["deletion_not_above_random"] = [m for m in table.index
                                                if m != "random" and table.loc[m, effic[0]] <= chance]
    return out


if __name__ == "__main__":
    import json

    print(summary(pd.read_parquet(sys.argv[1])).to_string())
    print(json.dumps(findings(pd.read_parquet(sys.argv[1])), indent=2))
