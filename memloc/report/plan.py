"""Which collected tables the claims table reads, and the setting its criteria need.  Only
the workflow's .smk files call this module."""

from __future__ import annotations

from memloc.atypical.plan import atypical_runs
from memloc.core.paths import TABLE, display_table_files, noise_label, run_dir, table
from memloc.dropout.plan import metrics_tables as dropout_metrics_tables
from memloc.runs.plan import gradient_runs, run_groups, unique_runs

# Tables every configuration produces, and those of the typical/atypical study.
# (detection_scores, the auc table's per-example scores: the AUC claim bootstraps over them)
CLAIM_TABLES = ("metrics", "gradients", "rewinding", "retraining", "flipping", "detection_scores", "tab1", "tab3")
ATYPICAL_CLAIM_TABLES = ("atypical_gradients", "atypical_rewinding", "atypical_retraining")


def claim_tables(config: dict) -> dict[str, str]:
    """{table name: parquet path} of the tables behind results/tables/claims.*."""
    names = CLAIM_TABLES + (ATYPICAL_CLAIM_TABLES if config["atypical"]["datasets"] else ())
    return {name: TABLE.format(name=name) for name in names}


def claim_setting(config: dict) -> dict:
    """memloc.report.claims.Setting fields: the primary run, fig01's epoch window and the names
    of the primary run's two groups."""
    p = config["primary"]
    return {"dataset": p["dataset"], "model": p["model"], "noise": float(p["noise"]),
            "fig01_window": list(config["figures"]["fig01"]["epochs"]),
            "groups": run_groups(f"noise{noise_label(p['noise'])}")["group_names"]}


def provenance_records(config: dict) -> dict[str, str]:
    """{run folder: its provenance.json} of every training run of the DAG (rules train and
    train_dropout write one per run): the noise-grid runs, the typical/atypical ones where
    configured, and the example-tied dropout runs."""
    runs = gradient_runs(config) + (atypical_runs(config) if config["atypical"]["datasets"] else [])
    records = {run_dir(**r): f"{run_dir(**r)}/provenance.json" for r in unique_runs(runs)}
    for metrics in dropout_metrics_tables(config):
        folder = metrics.rsplit("/", 1)[0]
        records[folder] = f"{folder}/provenance.json"
    return records


def targets(config: dict) -> list[str]:
    """What the report's part of rule `all` makes: the paper-vs-ours, claims and provenance
    tables (CSV, Markdown, parquet)."""
    names = ["paper_vs_ours", "claims", "provenance"]
    return display_table_files(names) + [table(name) for name in names]
