"""results/tables/provenance.{parquet,csv,md}: what produced this run's results, one row per
training run (its provenance.json, written by the train job) and one for the job that made
the tables.  The Markdown version is a summary a reader takes in at a glance: each field once,
with its value, or the runs' values where they differ.  Imports no torch."""

from __future__ import annotations

import json
import os

import pandas as pd

from memloc.core.files import write_parquet, write_text_atomic
from memloc.core.provenance import environment_record

TABLE_JOB = "tables (this job)"


def provenance_frame(records: dict[str, str]) -> pd.DataFrame:
    """One row per record: column `source` (a run folder, or the table job), then the fields
    (the union over records; a field a record lacks, e.g. gpu on a CPU run, is '-')."""
    rows = [{"source": source, **json.loads(open(path).read())} for source, path in records.items()]
    rows.append({"source": TABLE_JOB, **environment_record()})
    return pd.DataFrame(rows).fillna("-").astype(str)


def provenance_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """field | value: one value where every row that has the field agrees, else
    'value (n rows); other (m rows)'."""
    out = []
    for field in frame.columns.drop("source"):
        values = frame.loc[frame[field] != "-", field].value_counts()
        value = (values.index[0] if len(values) == 1 else
                 "; ".join(f"{v} ({n} rows)" for v, n in values.items()) if len(values) else "-")
        out.append({"field": field, "value": value})
    return pd.DataFrame(out)


def write_provenance_table(records: dict[str, str], outputs: dict[str, str]) -> pd.DataFrame:
    """Job: gather `records` ({source label: provenance.json}) into outputs parquet / csv / md."""
    frame = provenance_frame(records)
    write_parquet(frame, outputs["parquet"])
    write_text_atomic(frame.to_csv(index=False), outputs["csv"])
    summary = provenance_summary(frame)
    text = (f"# Provenance\n\n{len(frame) - 1} training runs and the table job; full rows in "
            f"{os.path.basename(outputs['csv'])}.\n\n" + summary.to_markdown(index=False) + "\n")
    write_text_atomic(text, outputs["md"])
    return frame
