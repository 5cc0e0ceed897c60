"""Two summaries of an atlas table that the README quotes for the default run:

- data_map_groups: where the noisy examples and the atypical clean ones sit on the Data Map
  (median confidence and variability of each group: noisy, atypical clean, typical clean);
- single_removal_layers: whether the examples that flip with one removal share layers (how
  many such (example, seed) flips there are, and their count per layer)."""

from __future__ import annotations

import pandas as pd


def data_map_groups(atlas: pd.DataFrame) -> pd.DataFrame:
    """Per group (noisy / atypical clean / typical clean; clean where no C-score): examples and
    the median and mean confidence and variability."""
    group = pd.Series("clean", index=atlas.index).where(~atlas["is_noisy"], "noisy")
    if "is_atypical" in atlas:  # clean examples without a C-score (NA) stay "clean"
        clean, atypical = ~atlas["is_noisy"], atlas["is_atypical"].astype("boolean")
        group[clean & atypical.fillna(False).astype(bool)] = "atypical clean"
        group[clean & (~atypical).fillna(False).astype(bool)] = "typical clean"
    out = atlas.groupby(group)[["confidence", "variability"]].agg(["count", "median", "mean"])
    out.columns = [f"{c}_{s}" for c, s in out.columns]
    return out.rename(columns={"confidence_count": "examples"}).drop(columns="variability_count").rename_axis("group")


def single_removal_layers(atlas: pd.DataFrame) -> pd.DataFrame:
    """The flips (example, flipping seed) that took exactly one removal, counted by the layer of
    the unit removed and by group (noisy / clean): columns layer, noisy, clean, share (of all
    single-removal flips).  Empty when flipping is not in the table."""
    rows = []
    for seed_col in [c for c in atlas.columns if c.startswith("removals_s")]:
        seed = seed_col[len("removals_s"):]
        one = atlas[(atlas[seed_col] == 1) & (atlas[f"censored_s{seed}"] == 0)]
        rows += [{"layer": layer, "noisy": bool(n)} for layer, n in zip(one[f"layers_s{seed}"], one["is_noisy"])]
    if not rows:
        return pd.DataFrame(columns=["layer", "noisy", "clean", "share"])
    df = pd.DataFrame(rows)
    out = pd.crosstab(df["layer"], df["noisy"]).reindex(columns=[True, False], fill_value=0)
    out.columns = ["noisy", "clean"]
    out["share"] = (out["noisy"] + out["clean"]) / len(df)
    return out.sort_values("share", ascending=False).reset_index()
