"""Result tables as CSV + Markdown, the per-run tables collected into one, and the
paper-vs-ours comparison every stage feeds.  Imports no torch: the table jobs start fast.

Each stage that reproduces numbers the paper reports writes its comparison rows
(`comparison_row`, `write_rows`) to a parquet file of its own; `join_rows` concatenates
them into results/tables/paper_vs_ours.{parquet,csv,md}.
"""

from __future__ import annotations

import os

import pandas as pd

from memloc.core.files import write_parquet, write_text_atomic

# Columns of a paper-vs-ours row: which artefact and number, the paper's value and setting,
# ours and the dataset / model / scale ours used, and where ours averages over examples, how
# many (n) and, when it cannot be computed (NaN), why (note).  Accuracies are in percent.
COMPARISON_COLUMNS = ["artefact", "quantity", "paper", "ours", "paper_setting", "our_setting", "n", "note"]


def save_table(df: pd.DataFrame, csv: str | os.PathLike, md: str | os.PathLike, floatfmt: str = ".1f") -> None:
    """Write a display table as CSV and as a Markdown (GitHub pipe) table, atomically."""
    write_text_atomic(df.to_csv(index=False), csv)
    write_text_atomic(df.to_markdown(index=False, floatfmt=floatfmt) + "\n", md)


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
    df = df.reindex(columns=COMPARISON_COLUMNS)
    return df.astype({"paper": float, "ours": float, "n": "Int64"}).assign(note=df["note"].fillna("").astype(str))


def join_rows(paths: list[str], parquet: str, csv: str, md: str) -> pd.DataFrame:
    """Concatenate every stage's rows (in the given order) into the paper-vs-ours table."""
    frames = [pd.read_parquet(p) for p in paths]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COMPARISON_COLUMNS)
    df = _typed(df)
    write_parquet(df, parquet)
    shown = df.assign(n=df["n"].astype(object).where(df["n"].notna(), ""))  # no "<NA>" in the Markdown
    save_table(shown, csv, md, floatfmt=".3g")  # 3 significant digits: 99.9 (%) and 0.89 (AUC) alike
    return df


def collect_runs(tables: list[str], runs: list[dict], out: str | os.PathLike) -> pd.DataFrame:
    """Concatenate per-run tables, adding each run's identifying columns (dataset, model,
    noise, seed, ...) in front."""
    frames = []
    for path, run in zip(tables, runs, strict=True):
        df = pd.read_parquet(path)
        for key, value in reversed(list(run.items())):
            df.insert(0, key, value)
        frames.append(df)
    joined = pd.concat(frames, ignore_index=True)
    write_parquet(joined, out)
    return joined
