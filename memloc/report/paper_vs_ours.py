"""The paper-vs-ours table: the numbers the paper reports (memloc.flipping.paper,
memloc.dropout.paper) beside ours.  Each stage that reproduces reported numbers gets its rows
here (`flipping_rows`: fig05 and the auc table; `dropout_rows`: tab1-tab3), written to a
parquet file of its own (`write_rows`); `join_rows` concatenates them into
results/tables/paper_vs_ours.{parquet,csv,md}.  Imports no torch: the table jobs start fast.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from memloc.core.files import save_table, write_parquet
from memloc.core.titles import DATASET_TITLES
from memloc.dropout.paper import DROPOUT_SETTING, PAPER_TAB1, PAPER_TAB2, PAPER_TAB3
from memloc.dropout.tables import METHOD_TITLES
from memloc.flipping.paper import AUC_SETTING, FIG05_SETTING, PAPER_AUC, PAPER_FIG05

# Columns of a paper-vs-ours row: which artefact and number, the paper's value and setting,
# ours and the dataset / model / scale ours used, and where ours averages over examples, how
# many (n) and, when it cannot be computed (NaN), why (note).  Accuracies are in percent.
COMPARISON_COLUMNS = ["artefact", "quantity", "paper", "ours", "paper_setting", "our_setting", "n", "note"]


def comparison_row(artefact: str, quantity: str, paper: float | None, ours: float,
                   paper_setting: str, our_setting: str) -> dict:
    """A row without a count (n missing, note empty); `counted` adds them."""
    return dict(zip(COMPARISON_COLUMNS, (artefact, quantity, paper, ours, paper_setting, our_setting, None, "")))


def counted(row: dict, n: int, note: str = "") -> dict:
    """The row with the number of examples ours averages over and, where ours is NaN, the
    note saying why (a quantity over an empty group is legitimately undefined, not a bug)."""
    return {**row, "n": int(n), "note": note}


def write_rows(rows: list[dict], out: str | os.PathLike) -> pd.DataFrame:
    """One stage's paper-vs-ours rows as a parquet table (columns COMPARISON_COLUMNS)."""
    df = _typed(pd.DataFrame(rows, columns=COMPARISON_COLUMNS))
    write_parquet(df, out)
    return df


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Paper-vs-ours rows with their columns' types: n an integer or missing (a row that
    counts nothing), note a string."""
    return df.astype({"paper": float, "ours": float, "n": "Int64", "note": str})


def join_rows(paths: list[str], parquet: str, csv: str, md: str) -> pd.DataFrame:
    """Concatenate every stage's rows (in the given order) into the paper-vs-ours table."""
    frames = [pd.read_parquet(p) for p in paths]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COMPARISON_COLUMNS)
    df = _typed(df)
    write_parquet(df, parquet)
    shown = df.assign(n=df["n"].astype(object).where(df["n"].notna(), ""))  # no "<NA>" in the Markdown
    save_table(shown, csv, md, floatfmt=".3g")  # 3 significant digits: 99.9 (%) and 0.89 (AUC) alike
    return df


# -- neuron flipping and detection (fig05, auc) ----------------------------------------


def initially_correct(flips: pd.DataFrame) -> pd.DataFrame:
    """The (example, model) rows whose example F̄ predicts as labelled before any removal:
    fig05 and its means are over these (a wrong prediction needs no removal; counted as 0
    it would be a flip that no removal caused)."""
    return flips[flips["initially_correct"]]


def _fig05_rows(flips: pd.DataFrame, setting: str) -> list[dict]:
    """fig05's numbers, per example averaged over the flipping seeds as the figure does,
    over the (example, model) pairs that are initially correct.  Each row counts the
    examples it averages over (n); a group none of whose examples is initially correct on
    any model (a few-epoch model may have learned no noisy example) has no mean: its rows
    are NaN with n = 0 (the gap: the other group's count) and a note that says why."""
    per_example = initially_correct(flips).groupby("index").agg(
        is_noisy=("is_noisy", "first"), removals=("removals", "mean"), accuracy=("accuracy_train", "mean"))
    groups = {"noisy": per_example[per_example["is_noisy"]], "clean": per_example[~per_example["is_noisy"]]}
    selected = flips.groupby("index")["is_noisy"].first().value_counts()
    notes = {g: _no_initially_correct(g, int(selected.get(g == "noisy", 0))) if df.empty else ""
             for g, df in groups.items()}
    noisy, clean = groups["noisy"], groups["clean"]
    ours = [  # (quantity, PAPER_FIG05 key, ours, the groups it averages over)
        ("mean removals to flip, noisy", "mean_removals_noisy", noisy["removals"].mean(), ["noisy"]),
        ("mean removals to flip, clean", "mean_removals_clean", clean["removals"].mean(), ["clean"]),
        ("noisy examples flipped by < 10 removals (%; paper: > 90)", "noisy_flipped_below_10",
         100 * (noisy["removals"] < 10).mean(), ["noisy"]),
        ("post-removal training accuracy, noisy minus clean (points)", "accuracy_gap",
         100 * (noisy["accuracy"].mean() - clean["accuracy"].mean()), ["noisy", "clean"]),
    ]
    return [counted(comparison_row("fig05", quantity, PAPER_FIG05[key], value, FIG05_SETTING, setting),
                    sum(len(groups[g]) for g in used), "; ".join(notes[g] for g in used if notes[g]))
            for quantity, key, value, used in ours]


def _no_initially_correct(group: str, selected: int) -> str:
    return (f"none of the {selected} {group} examples flipped is predicted as its label before any removal "
            f"(fig05 averages over initially-correct examples)")


def _auc_rows(auc: pd.DataFrame, setting: str) -> list[dict]:
    """The AUCs the paper reports: the flip count on the flipped examples, the others on
    every example they score (n: the examples scored; a method the auc table lacks: n = 0)."""
    rows = []
    for method, value in PAPER_AUC.items():
        subset = "flipped examples" if method == "flip count" else "all scored examples"
        ours = auc[(auc["method"] == method) & (auc["examples"] == subset)]
        row = comparison_row("auc", f"ROC AUC, {method}", value, ours["auc"].iloc[0] if len(ours) else np.nan,
                             AUC_SETTING, setting)
        n = int(ours["n_clean"].iloc[0] + ours["n_noisy"].iloc[0]) if len(ours) else 0
        rows.append(counted(row, n, "" if len(ours) else f"the auc table has no {method} AUC on the {subset}"))
    return rows


def flipping_rows(flips: pd.DataFrame, auc: pd.DataFrame, setting: str) -> list[dict]:
    """fig05's and the auc table's rows of the paper-vs-ours table."""
    return _fig05_rows(flips, setting) + _auc_rows(auc, setting)


# -- example-tied dropout (tab1-tab3) -----------------------------------------------------


def _tab1_rows(t1: pd.DataFrame, settings: dict[str, str]) -> list[dict]:
    """A dataset the paper does not have (Fashion-MNIST) is set against the paper's
    CIFAR-10, its main setting."""
    rows = []
    for (dataset, when, subset), acc in t1.set_index(["dataset", "when", "subset"])["accuracy"].items():
        ref = dataset if dataset in PAPER_TAB1 else "cifar10"
        paper = PAPER_TAB1[ref][when][("clean", "noisy", "test").index(subset)]
        rows.append(comparison_row("tab1", f"{subset} accuracy {when} dropping (%)", paper, acc,
                                   DROPOUT_SETTING.format(dataset=DATASET_TITLES[ref]) + ", p_gen 0.4, p_mem 0.2",
                                   settings[dataset]))
    return rows


def _tab2_rows(t2: pd.DataFrame, settings: dict[str, str]) -> list[dict]:
    """Cells outside the paper's grid get no row."""
    rows = []
    cells = t2.set_index(["dataset", "p_mem", "p_gen", "subset"])["accuracy"]
    for (dataset, p_mem, p_gen, subset), acc in cells.items():
        paper = PAPER_TAB2.get((round(p_mem, 2), round(p_gen, 2)))
        if paper is not None:
            quantity = f"{subset} accuracy after dropping, p_gen {p_gen:g}, p_mem {p_mem:g} (%)"
            rows.append(comparison_row("tab2", quantity, paper[("clean", "noisy").index(subset)], acc,
                                       DROPOUT_SETTING.format(dataset="CIFAR-10"), settings[dataset]))
    return rows


def _tab3_rows(t3: pd.DataFrame, settings: dict[str, str]) -> list[dict]:
    rows = []
    for _, r in t3.iterrows():
        title = METHOD_TITLES[r["method"]].format(p_gen=r["p_gen"], p_mem=r["p_mem"])
        rows.append(comparison_row("tab3", f"{r['subset']} train accuracy, {title} (%)",
                                   PAPER_TAB3[r["method"]][("clean", "noisy").index(r["subset"])], r["accuracy"],
                                   DROPOUT_SETTING.format(dataset="CIFAR-10") + ", p = s = p_gen = 0.4, p_mem 0.2",
                                   settings[r["dataset"]]))
    return rows


def dropout_rows(tables: dict[str, pd.DataFrame], settings: dict[str, str]) -> list[dict]:
    """Paper-vs-ours rows of tab1-tab3.  tables: {tab id: its long table}; settings:
    {dataset: our setting}."""
    return (_tab1_rows(tables["tab1"], settings) + _tab2_rows(tables["tab2"], settings)
            + _tab3_rows(tables["tab3"], settings))

# -- jobs ---------------------------------------------------------------------------------


def write_flipping_rows(flipping: str, auc: str, out: str, setting: str) -> pd.DataFrame:
    """Job: fig05's and the auc table's rows (flipping, auc: their parquet tables)."""
    return write_rows(flipping_rows(pd.read_parquet(flipping), pd.read_parquet(auc), setting), out)


def write_dropout_rows(long_tables: dict[str, str], out: str | os.PathLike, settings: dict[str, str]) -> pd.DataFrame:
    """Job: tab1-tab3's rows.  long_tables: {tab id: its long parquet}; settings: {dataset: our setting}."""
    frames = {tab: pd.read_parquet(path) for tab, path in long_tables.items()}
    return write_rows(dropout_rows(frames, settings), out)
