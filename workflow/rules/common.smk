# Input functions and the run lists they draw on (memloc.*.plan say which runs exist).

from memloc.atypical.plan import atypical_runs
from memloc.runs.plan import (
    REWINDING_FIGURES,
    appendix_datasets,
    gradient_runs,
    run_dir,
)

# Per-stage parquet files of paper-vs-ours rows (memloc.report.tables); each stage's .smk appends
# its own, rule paper_vs_ours joins them.
paper_rows = []


def run_file(run, name):
    return f"{run_dir(**run)}/{name}"


def all_outputs():
    """Every figure (PNG + PDF), table (CSV + MD) and parquet table of the configured DAG."""
    figures = [
        "fig01",
        "fig02",
        "fig10",
        "fig11",
        *appendix_datasets(config),
        *(["fig08"] if config["atypical"]["datasets"] else []),
        "fig07",
    ]
    tables = ["tab1", "tab2", "tab3", "paper_vs_ours"]
    parquet = ["results/tables/gradients.parquet", "results/tables/metrics.parquet"]
    parquet += [
        f"results/tables/{t}.parquet" for t in ("dropout_metrics", "fig07", *tables)
    ]
    figures += [
        "fig03",
        "fig04",
        *appendix_datasets(config, REWINDING_FIGURES),
        "fig18",
    ]
    parquet += ["results/tables/rewinding.parquet", "results/tables/retraining.parquet"]
    if config["atypical"]["datasets"]:
        figures += ["fig09", "fig19"]
        parquet += [
            "results/tables/atypical_rewinding.parquet",
            "results/tables/atypical_retraining.parquet",
        ]
    figures += ["fig05"]
    tables += ["auc"]
    parquet += [
        f"results/tables/{t}.parquet" for t in ("flipping", "auc", "detection_scores")
    ]
    return (
        [f"results/figures/{fig}.{ext}" for fig in figures for ext in ("png", "pdf")]
        + [f"results/tables/{tab}.{ext}" for tab in tables for ext in ("csv", "md")]
        + parquet
    )


def data_source():
    """memloc.core.data.DataSource settings."""
    keys = ("data_root", "download", "verify_checksums")
    return dict(
        zip(("root", "download", "verify_checksums"), (config[k] for k in keys))
    )


def model_settings(wildcards):
    return config["model_settings"].get(wildcards.model, {})


VARIANT = r"noise[0-9.]+|atypical"


def train_settings(wildcards):
    """memloc.core.training.TrainConfig of a run; the groups follow the data variant."""
    groups = {"group_column": "is_noisy", "group_names": ["clean", "noisy"]}
    if wildcards.variant == "atypical":
        groups = {"group_column": "is_atypical", "group_names": ["typical", "atypical"]}
    return {**config["train"], "seed": int(wildcards.seed), **groups}


def gradient_figure(fig):
    """(memloc.report.figures function, its selection) of a gradient-accounting figure."""
    p = config["primary"]
    primary = dict(dataset=p["dataset"], model=p["model"], noise=float(p["noise"]))
    window = config["figures"]["fig01"]["epochs"]
    if fig in ("fig12", "fig13", "fig14"):
        grid = dict(
            models=config["models"],
            noise_rates=config["noise_rates"],
            seeds=config["seeds"],
        )
        return "gradient_grid", dict(
            dataset=appendix_datasets(config)[fig], window=window, **grid
        )
    return {
        "fig01": ("fig01", dict(primary, window=window)),
        "fig02": ("fig02", primary),
        "fig10": ("fig10", dict(primary, window=config["figures"]["fig10"]["window"])),
        "fig11": (
            "fig11",
            dict(dataset=p["dataset"], model=p["model"], **config["figures"]["fig11"]),
        ),
    }[fig]


def holdout_parts(wildcards):
    """The hold-out subset models' results, unless published C-scores are configured."""
    if wildcards.dataset in config["atypical"]["cscore_files"]:
        return []
    k = config["atypical"]["holdout"]["models"]
    return [f"results/cscores/{wildcards.dataset}/holdout{i}.parquet" for i in range(k)]


def published_cscores(wildcards):
    """memloc.atypical.cscores.write_atypical_table's `published` argument (None: estimate)."""
    entry = config["atypical"]["cscore_files"].get(wildcards.dataset)
    if entry is None:
        return None
    return {
        "file": entry["file"],
        "order": entry.get("order"),
        "dataset": wildcards.dataset,
        "source": data_source(),
    }
