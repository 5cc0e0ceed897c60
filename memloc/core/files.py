"""Atomic writes of result files: a temporary file next to the target, then a rename, so that
an interrupted job never leaves a half-written table behind; display tables as CSV +
Markdown, per-run tables collected into one, and the partial results a long job keeps so
that its rerun resumes after the last finished unit of work.  Imports only pandas: the table and figure
jobs use it without paying torch's import."""

from __future__ import annotations

import json
import os
import sys
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


# -- partial results of a resumable job --------------------------------------------------


def partial_path(out: str | os.PathLike) -> Path:
    """Where a resumable job keeps its finished units' results until `out` is written."""
    return Path(out).with_name(Path(out).name + ".partial.json")


def file_id(path: str | os.PathLike) -> list:
    """(path, size, mtime) of an input file: a partial result made from other inputs is not reused."""
    stat = os.stat(path)
    return [str(path), stat.st_size, stat.st_mtime_ns]


def load_partial(path: Path, key: dict, what: str) -> dict[int, list[dict]]:
    """{unit index: rows} of the units a previous attempt of this very job finished; none when
    there is no partial file or it was made from other inputs or settings (`key`)."""
    if not path.exists():
        return {}
    saved = json.loads(path.read_text())
    if saved.get("key") != json.loads(json.dumps(key)):
        print(f"{what}: ignoring {path}, made from other inputs or settings", file=sys.stderr)
        return {}
    return {int(unit): rows for unit, rows in saved["layers"].items()}


def save_partial(path: Path, key: dict, done: dict[int, list[dict]]) -> None:
    """Write the finished units' rows atomically (JSON: floats round-trip exactly)."""
    write_text_atomic(json.dumps({"key": key, "layers": done}), path)
