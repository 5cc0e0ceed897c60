"""The example-tied dropout study's tables: tab1-tab3 from the runs' metrics and fig07's
forgotten examples (their paper-vs-ours rows: memloc.report.paper_vs_ours).  DataFrames in, DataFrames out
(memloc.dropout.jobs reads and writes the files).

A run here is a run dict of memloc.dropout.plan (dataset, dropout, method, p_gen, p_mem, ...);
the metrics table names a run's dropout in its `variant` column."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from memloc.core.titles import CLASS_NAMES, dataset_title

# The three methods of tab3, formatted with p_gen, p_mem.
METHOD_TITLES = {
    "standard": "Standard dropout (p = {p_gen:g})",
    "fixed_sparse": "Sparse network (s = {p_gen:g})",
    "example_tied": "Example-tied (p_gen = {p_gen:g}, p_mem = {p_mem:g})",
}

# -- tab1-tab3 --------------------------------------------------------------------------


def final_accuracy(metrics: pd.DataFrame) -> pd.DataFrame:
    """Last-epoch accuracy (percent) of every run and subset, averaged over seeds."""
    last = metrics[metrics["epoch"] == metrics.groupby(["variant", "dataset", "seed"])["epoch"].transform("max")]
    keys = ["dataset", "model", "noise", "variant", "method", "p_gen", "p_mem", "subset"]
    out = last.groupby(keys, as_index=False).agg(accuracy=("accuracy", "mean"), seeds=("seed", "nunique"))
    out["accuracy"] *= 100
    return out


def _accuracy(final: pd.DataFrame, run: dict, subset: str) -> float:
    same_run = (final["variant"] == run["dropout"]) & (final["dataset"] == run["dataset"])
    rows = final[same_run & (final["subset"] == subset)]
    if rows.empty:
        raise ValueError(f"no {subset!r} accuracy of run {run} in the dropout metrics table")
    return float(rows["accuracy"].iloc[0])


def tab1(final: pd.DataFrame, runs: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long table, display table): clean / noisy / test accuracy before and after dropping."""
    long = [
        {"dataset": r["dataset"], "p_gen": r["p_gen"], "p_mem": r["p_mem"], "when": when, "subset": s,
         "accuracy": _accuracy(final, r, s + suffix)}
        for r in {r["dataset"]: r for r in runs}.values()
        for when, suffix in (("before", ""), ("after", "/drop")) for s in ("clean", "noisy", "test")
    ]
    long = pd.DataFrame(long)
    wide = long.pivot_table(index="dataset", columns=["when", "subset"], values="accuracy", sort=False)
    wide.columns = [f"{s} {w} dropping (%)" for w, s in wide.columns]
    wide = wide.reset_index()
    wide["dataset"] = wide["dataset"].map(dataset_title)
    return long, wide


def tab2(final: pd.DataFrame, runs: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long, display): clean / noisy accuracy after dropping for each p_mem (rows) x p_gen."""
    cells = {(r["p_mem"], r["p_gen"]): r for r in runs}
    long = pd.DataFrame(
        [{"dataset": r["dataset"], "p_mem": pm, "p_gen": pg, "subset": s, "accuracy": _accuracy(final, r, s + "/drop")}
         for (pm, pg), r in cells.items() for s in ("clean", "noisy")]
    )
    acc = long.pivot_table(index=["p_mem", "p_gen"], columns="subset", values="accuracy")
    text = acc.apply(lambda row: f"{row['clean']:.1f}%, {row['noisy']:.1f}%", axis=1).unstack("p_gen")
    text.columns = [f"p_gen = {g:g}" for g in text.columns]
    wide = text.reset_index().rename(columns={"p_mem": "p_mem \\ clean, noisy after dropping"})
    return long, wide


def tab3(final: pd.DataFrame, runs: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long, display): clean / noisy training accuracy of the three methods (example-tied
    after dropping; the baselines have nothing to drop)."""
    rows = []
    for r in {r["method"]: r for r in runs}.values():
        suffix = "/drop" if r["method"] == "example_tied" else ""
        for s in ("clean", "noisy"):
            rows.append({"dataset": r["dataset"], "method": r["method"], "p_gen": r["p_gen"], "p_mem": r["p_mem"],
                         "subset": s, "accuracy": _accuracy(final, r, s + suffix)})
    long = pd.DataFrame(rows)
    wide = long.pivot_table(index=["method", "p_gen", "p_mem"], columns="subset", values="accuracy", sort=False)
    wide = wide.reset_index()
    wide.insert(0, "Method", [METHOD_TITLES[m].format(p_gen=g, p_mem=pm) for m, g, pm in
                              zip(wide["method"], wide["p_gen"], wide["p_mem"])])
    wide = wide.drop(columns=["method", "p_gen", "p_mem"]).rename(
        columns={"clean": "clean train accuracy (%)", "noisy": "noisy train accuracy (%)"})
    return long, wide


TABLES = {"tab1": tab1, "tab2": tab2, "tab3": tab3}


# -- fig07 ------------------------------------------------------------------------------


def forgotten_rows(examples: pd.DataFrame, data: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """(clean training examples right before dropping and wrong after, at the last epoch,
    most confidently wrong first; how many clean examples there are).  examples: a run's
    per-example table; data: its data table."""
    ex = examples[examples["epoch"] == examples["epoch"].max()].merge(data, on="index", validate="1:1")
    clean = ex[~ex["is_noisy"]]
    lost = clean[clean["correct"] & ~clean["correct_drop"]].sort_values(["margin_drop", "index"])
    return lost, len(clean)


def fig07_table(shown: pd.DataFrame, images, dataset: str, n_forgotten: int, n_clean: int,
                class_names: Sequence[str] = ()) -> pd.DataFrame:
    """fig07's table: the shown rows of `forgotten_rows`'s with their pixels (images [n, C, H, W]
    uint8, stored as bytes so that the figure needs no dataset); a label is shown by its name
    (CLASS_NAMES, else `class_names`, else its number).  Columns: index,
    source_index, label, label_name, prediction, prediction_name, margin_drop, channels,
    height, width, image, forgotten (how many there are in all), clean (how many clean
    examples)."""
    names = CLASS_NAMES.get(dataset) or list(class_names)
    name = lambda c: names[c] if c < len(names) else str(c)  # noqa: E731
    return pd.DataFrame({
        "index": shown["index"].to_numpy(),
        "source_index": shown["source_index"].to_numpy(),
        "label": shown["label"].to_numpy(),
        "label_name": [name(c) for c in shown["label"]],
        "prediction": shown["prediction_drop"].to_numpy(),
        "prediction_name": [name(c) for c in shown["prediction_drop"]],
        "margin_drop": shown["margin_drop"].to_numpy(),
        "channels": images.shape[1], "height": images.shape[2], "width": images.shape[3],
        "image": [img.numpy().tobytes() for img in images],
        "forgotten": n_forgotten, "clean": n_clean,
    })
