"""Which runs the typical-vs-atypical study (Sec. 7: fig08, fig09, fig19) trains, where its
C-scores come from, and the settings of its jobs and of fig08.  Only the workflow's .smk
files call this module."""

from __future__ import annotations

from typing import NamedTuple

from memloc.atypical.cscores import HoldoutConfig
from memloc.core.paths import HOLDOUT_PART, run_dir

ATYPICAL_LAYER_FIGURES = ("fig09", "fig19")


class AtypicalTables(NamedTuple):
    """The per-run files behind results/tables/atypical_{table}.parquet and the run of each."""

    files: list[str]
    runs: list[dict]


def atypical_runs(config: dict, seeds: list[int] | None = None) -> list[dict]:
    """Noise-free runs of the primary model whose groups are typical/atypical (C-score)."""
    model = config["primary"]["model"]
    return [
        {"dataset": d, "model": model, "noise": 0.0, "seed": s, "variant": "atypical"}
        for d in config["atypical"]["datasets"] for s in (seeds or config["seeds"])
    ]


def atypical_tables(config: dict, table: str) -> AtypicalTables:
    """One table (table: gradients / metrics) of every typical/atypical run."""
    runs = atypical_runs(config)
    return AtypicalTables([f"{run_dir(**r)}/{table}.parquet" for r in runs], runs)


def holdout_parts(config: dict, dataset: str) -> list[str]:
    """The hold-out subset models' results, one file each; none where published C-scores
    are configured (they replace the estimate)."""
    if dataset in config["atypical"]["cscore_files"]:
        return []
    cfg = HoldoutConfig(**config["atypical"]["holdout"])  # a bad scheme stops the DAG here, not in a job
    return [HOLDOUT_PART.format(dataset=dataset, k=k) for k in range(cfg.models)]


def holdout_report(config: dict) -> dict[str, dict]:
    """memloc.atypical.jobs.write_holdout_report's `datasets`: every typical/atypical dataset's
    data table and hold-out parts (empty where published scores are used)."""
    return {
        d: {"table": f"results/data/{d}/atypical.parquet", "parts": holdout_parts(config, d)}
        for d in config["atypical"]["datasets"]
    }


def published_cscores(config: dict, dataset: str, source: dict) -> dict | None:
    """memloc.atypical.jobs.write_atypical_table's `published` argument: the configured C-score
    file of `dataset` and how to load the dataset to check it (source: DataSource settings);
    None when the scores are estimated by hold-out."""
    entry = config["atypical"]["cscore_files"].get(dataset)
    if entry is None:
        return None
    return {"file": entry["file"], "order": entry.get("order"), "dataset": dataset, "source": source}


def holdout_model(config: dict) -> dict:
    """ModelConfig settings of the hold-out subset models: the primary model, as the runs
    whose groups the scores define (its model_settings included)."""
    name = config["primary"]["model"]
    return {"name": name, **config["model_settings"].get(name, {})}


def fig08_selection(config: dict) -> dict:
    """memloc.report.figures.fig08's selection: fig01's form (and epoch window) per
    typical/atypical dataset, on the primary model."""
    return dict(
        datasets=config["atypical"]["datasets"],
        model=config["primary"]["model"],
        window=config["figures"]["fig01"]["epochs"],
    )
