"""Which collected tables the claims table reads, and the setting its criteria need.  Only
the workflow's .smk files call this module."""

from __future__ import annotations

from memloc.core.paths import TABLE

# Tables every configuration produces, and those of the typical/atypical study.
CLAIM_TABLES = ("metrics", "gradients", "rewinding", "retraining", "flipping", "auc", "tab1", "tab3")
ATYPICAL_CLAIM_TABLES = ("atypical_gradients", "atypical_rewinding", "atypical_retraining")


def claim_tables(config: dict) -> dict[str, str]:
    """{table name: parquet path} of the tables behind results/tables/claims.*."""
    names = CLAIM_TABLES + (ATYPICAL_CLAIM_TABLES if config["atypical"]["datasets"] else ())
    return {name: TABLE.format(name=name) for name in names}


def claim_setting(config: dict) -> dict:
    """memloc.report.claims.Setting fields: the primary run and fig01's epoch window."""
    p = config["primary"]
    return {"dataset": p["dataset"], "model": p["model"], "noise": float(p["noise"]),
            "fig01_window": list(config["figures"]["fig01"]["epochs"])}
