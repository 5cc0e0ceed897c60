# Input functions, the targets of rule all, and the wildcards every rule shares; what they
# return is planned in memloc.*.plan (which runs exist, their settings, figure selections).

from memloc.core import paths
from memloc.core.data import DATASETS
from memloc.core.models import MODELS
from memloc.atypical import plan as atypical_plan
from memloc.layers.plan import REWINDING_FIGURES
from memloc.runs import plan as runs_plan

# A run's data variant (memloc.core.paths.RUN_DIR): label noise, or typical/atypical groups.
VARIANT = r"noise[0-9.]+|atypical"


# Wildcards that mean one thing in every rule; a rule's own constraint overrides these.
wildcard_constraints:
    dataset="|".join(DATASETS),
    model="|".join(MODELS),
    noise=r"[0-9.]+",  # a noise fraction as memloc.core.paths.noise_label writes it
    seed=r"\d+",
    variant=VARIANT,


def all_outputs():
    """Every figure (PNG + PDF), table (CSV + MD) and parquet table of the configured DAG."""
    figures = [
        "fig01",
        "fig02",
        "fig10",
        "fig11",
        *runs_plan.appendix_datasets(config),
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
        *runs_plan.appendix_datasets(config, REWINDING_FIGURES),
        "fig18",
    ]
    parquet += ["results/tables/rewinding.parquet", "results/tables/retraining.parquet"]
    if config["atypical"]["datasets"]:
        figures += ["fig09", "fig19"]
    # the precision of hold-out estimated C-scores (none where all are published)
    if any(d["parts"] for d in atypical_plan.holdout_report(config).values()):
        tables += ["cscore_holdout"]
        parquet += ["results/tables/cscore_holdout.parquet"]
        parquet += [
            "results/tables/atypical_rewinding.parquet",
            "results/tables/atypical_retraining.parquet",
        ]
    figures += ["fig05"]
    tables += ["auc", "claims"]
    parquet += [
        f"results/tables/{t}.parquet"
        for t in ("flipping", "auc", "detection_scores", "claims")
    ]
    return (
        [f"results/figures/{fig}.{ext}" for fig in figures for ext in ("png", "pdf")]
        + [f"results/tables/{tab}.{ext}" for tab in tables for ext in ("csv", "md")]
        + parquet
    )


def data_source():
    """memloc.core.data.DataSource settings."""
    return runs_plan.data_source(config)


def model_settings(wildcards):
    return config["model_settings"].get(wildcards.model, {})


def train_settings(wildcards):
    """memloc.core.training.TrainConfig fields of a run; the groups follow the data variant."""
    return runs_plan.train_settings(config, wildcards.variant, wildcards.seed)


def gradient_figure(wildcards):
    """memloc.runs.plan.GradientFigure of {fig}: .figure, .selection."""
    return runs_plan.gradient_figure(config, wildcards.fig)


def gradient_run_files(wildcards):
    """{table}.parquet (gradients or metrics) of every run a gradient figure uses."""
    return runs_plan.gradient_run_files(config, wildcards.table)
