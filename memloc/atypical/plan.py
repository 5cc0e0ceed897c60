"""Which runs the typical-vs-atypical study (Sec. 7: fig08, fig09, fig19) trains, where its
C-scores come from, and the settings of its jobs and of fig08.  Only the workflow's .smk
files call this module."""

from __future__ import annotations

from typing import NamedTuple

from memloc.atypical.cscores import HoldoutConfig
from memloc.atypical.fetch import url_suffix
from memloc.core.paths import HOLDOUT_PART, VARIANT_TABLE, display_table_files, figure_files, run_dir, table
from memloc.runs import plan as runs_plan

# Where rule fetch_cscores puts a published C-score file (ext: the URL's, npz or npy).
CSCORE_DOWNLOAD = "data/cscores/{dataset}.{ext}"


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
        d: {"table": VARIANT_TABLE.format(dataset=d, variant="atypical"), "parts": holdout_parts(config, d)}
        for d in config["atypical"]["datasets"]
    }


def cscore_downloads(config: dict) -> dict[str, dict]:
    """Rule fetch_cscores' jobs: {dataset: {"url", "sha256", "md5", "file"}} of every
    atypical.cscore_files entry with a `url`; file: where the download goes (CSCORE_DOWNLOAD)."""
    return {
        d: {
            "url": e["url"], "sha256": e.get("sha256"), "md5": e.get("md5"),
            "file": CSCORE_DOWNLOAD.format(dataset=d, ext=url_suffix(e["url"]).lstrip(".")),
        }
        for d, e in config["atypical"]["cscore_files"].items() if e.get("url")
    }


def fetch_dataset_pattern(config: dict) -> str:
    """fetch_cscores' wildcard constraint on {dataset}: the datasets with a URL (none: a
    pattern that matches nothing, so the rule never runs)."""
    return "|".join(cscore_downloads(config)) or "(?!)"


def cscore_file(config: dict, dataset: str) -> str | None:
    """The C-score file atypical_data reads for `dataset`: the configured local `file`, or
    where fetch_cscores downloads its `url`; None when the scores are estimated by hold-out."""
    entry = config["atypical"]["cscore_files"].get(dataset)
    if entry is None:
        return None
    return entry.get("file") or cscore_downloads(config)[dataset]["file"]


def cscore_inputs(config: dict, dataset: str) -> list[str]:
    """atypical_data's C-score input: [the file] (a download makes it a fetch_cscores job), or []."""
    path = cscore_file(config, dataset)
    return [path] if path else []


def published_cscores(config: dict, dataset: str, source: dict) -> dict | None:
    """memloc.atypical.jobs.write_atypical_table's `published` argument: the C-score file of
    `dataset` (cscore_file), its order, and how to load the dataset to check it (source:
    DataSource settings); None when the scores are estimated by hold-out."""
    path = cscore_file(config, dataset)
    if path is None:
        return None
    order = config["atypical"]["cscore_files"][dataset].get("order")
    return {"file": path, "order": order, "dataset": dataset, "source": source}


def holdout_model(config: dict) -> dict:
    """ModelConfig fields of the hold-out subset models (less the dataset's shape): the primary
    model, as the runs whose groups the scores define (its model_settings included)."""
    return runs_plan.model_settings(config, config["primary"]["model"])


def holdout_settings(config: dict) -> dict:
    """TrainConfig fields of the hold-out subset models but the seed (each model its own):
    the `train` settings on the noise-free data table, without gradient accounting."""
    settings = runs_plan.train_settings(config, "noise0", 0)
    del settings["seed"]
    return {**settings, "gradient_accounting": False}


def fig08_selection(config: dict) -> dict:
    """memloc.report.figures.fig08's selection: fig01's form (and epoch window) per
    typical/atypical dataset, on the primary model."""
    return dict(
        datasets=config["atypical"]["datasets"],
        model=config["primary"]["model"],
        window=config["figures"]["fig01"]["epochs"],
    )


def targets(config: dict) -> list[str]:
    """What the typical/atypical study's part of rule `all` makes: fig08 where typical/atypical
    datasets are configured; where some of their C-scores are estimated by hold-out, the
    estimate's precision (cscore_holdout) and the typical/atypical layer tables."""
    out = figure_files(["fig08"]) if config["atypical"]["datasets"] else []
    if any(d["parts"] for d in holdout_report(config).values()):
        out += display_table_files(["cscore_holdout"])
        out += [table(t) for t in ("cscore_holdout", "atypical_rewinding", "atypical_retraining")]
    return out
