"""Atomic writes of result files: a temporary file next to the target, then a rename, so that
an interrupted job never leaves a half-written table behind.  Imports only pandas: the table
and figure jobs use it without paying torch's import."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def write_text_atomic(text: str, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a parquet table atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)
