# Input functions, the targets of rule all, and the wildcards every rule shares; what they
# return is planned in memloc.*.plan (which runs exist, their settings, figure selections).

from memloc.core import paths
from memloc.core.data.catalog import dataset_names
from memloc.core.models.config import model_names
from memloc.atypical import plan as atypical_plan
from memloc.layers.plan import REWINDING_FIGURES
from memloc.runs import plan as runs_plan
from memloc.plan import resources as job_resources
from memloc.plan.compute import compute_settings

# A run's data variant (memloc.core.paths.RUN_DIR): label noise, or typical/atypical groups.
VARIANT = r"noise[0-9.]+|atypical"


# Wildcards that mean one thing in every rule; a rule's own constraint overrides these.
wildcard_constraints:
    dataset="|".join(dataset_names(config["dataset_definitions"])),  # built in and declared
    model="|".join(model_names(config)),  # built-in and model_definitions
    noise=r"[0-9.]+",  # a noise fraction as memloc.core.paths.noise_label writes it
    seed=r"\d+",
    variant=VARIANT,


# Jobs that run in the Snakemake process itself, never through a cluster's queue: the
# downloads (on a cluster, the login node has the internet; the compute nodes may not) and
# the quick table, figure and collect jobs (seconds of CPU each; an sbatch would wait longer).
localrules:
    fetch_dataset,
    fetch_cscores,
    collect_run_tables,
    collect_layer_tables,
    collect_atypical_tables,
    collect_dropout_metrics,
    merge_flipping,
    select_flip_examples,
    gradient_figure,
    layer_figure,
    fig05,
    fig07,
    fig07_table,
    fig08,
    dropout_table,
    dropout_paper_rows,
    cscore_holdout,
    detection_auc,
    auc_table,
    flipping_paper_rows,
    paper_vs_ours,
    claims,
    provenance,


def job_runtime(rule_name):
    """A job's wall-clock limit in minutes (memloc.plan.resources.minutes: from the model,
    dataset, epochs and example counts); a retried job gets more."""
    return lambda wildcards, attempt: job_resources.minutes(
        rule_name, config, dict(wildcards.items()), attempt
    )


def job_mem_mb(rule_name):
    """A job's memory in MB (memloc.plan.resources.mem_mb); a retried job gets more."""
    return lambda wildcards, attempt: job_resources.mem_mb(
        rule_name, config, dict(wildcards.items()), attempt
    )


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
    tables += ["auc", "claims", "provenance"]
    parquet += [
        f"results/tables/{t}.parquet"
        for t in ("flipping", "auc", "detection_scores", "claims", "provenance")
    ]
    return (
        [f"results/figures/{fig}.{ext}" for fig in figures for ext in ("png", "pdf")]
        + [f"results/tables/{tab}.{ext}" for tab in tables for ext in ("csv", "md")]
        + parquet
    )


def data_source():
    """memloc.core.data.source.DataSource settings of the jobs that read a dataset (no download:
    rule fetch_dataset, their input, has fetched and checked it)."""
    return runs_plan.data_source(config)


def run_inputs(wildcards):
    """memloc.core.data.inputs.RunInputs fields (less the data table) of a job on a run's data:
    its data variant is {variant}, else noise{noise} (label noise; none: the noise-free table).
    """
    wc = dict(wildcards.items())
    variant = wc.get("variant") or f"noise{wc.get('noise', '0')}"
    return runs_plan.run_inputs(config, wc["dataset"], variant)


def model_settings(wildcards):
    """memloc.core.models.build.ModelConfig fields of the {model} (less the dataset's shape)."""
    return runs_plan.model_settings(config, wildcards.model)


def train_settings(wildcards):
    """memloc.core.train.config.TrainConfig fields of a run; the groups follow the data variant."""
    return runs_plan.train_settings(config, wildcards.variant, wildcards.seed)


def job_compute(rule_name):
    """How a compute job computes (memloc.plan.compute.compute_settings): its device,
    precision, determinism and (for the rules that train) compile, and its name in errors.
    """
    return lambda wildcards: compute_settings(
        config, rule_name, dict(wildcards.items())
    )


def gradient_figure(wildcards):
    """memloc.runs.plan.GradientFigure of {fig}: .figure, .selection."""
    return runs_plan.gradient_figure(config, wildcards.fig)


def gradient_run_files(wildcards):
    """{table}.parquet (gradients or metrics) of every run a gradient figure uses."""
    return runs_plan.gradient_run_files(config, wildcards.table)
