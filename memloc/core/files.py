"""Atomic writes of result files: a temporary file next to the target, then a rename, so that
an interrupted job never leaves a half-written table behind; display tables as CSV +
Markdown, and per-run tables collected into one.  Imports only pandas: the table and figure
jobs use it without paying torch's import."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` (its folder created) to write to; renamed to `path`
    when the block ends without an exception, removed when it raises (nothing half-written
    is left behind)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def write_text_atomic(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a parquet table atomically (temp file, then rename)."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def save_table(df: pd.DataFrame, csv: str | os.PathLike, md: str | os.PathLike, floatfmt: str = ".1f") -> None:
    """Write a display table as CSV and as a Markdown (GitHub pipe) table, atomically."""
    write_text_atomic(df.to_csv(index=False), csv)
    write_text_atomic(df.to_markdown(index=False, floatfmt=floatfmt) + "\n", md)


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
