"""Where the workflow keeps things: every path template of results/ and the canonical text of
the values in them (memloc plans and jobs format these; the rules name them)."""

from __future__ import annotations

# A dataset fetched (or found, or exported) and checked, with its classes, size, split sizes and
# normalization statistics (rule fetch_dataset; an input of every job that loads the dataset).
DATASET_INFO = "results/data/{dataset}/dataset.json"
# Both splits of it as arrays, which the later jobs load without the dataset's own loader (rule
# fetch_dataset; memloc.core.data.cache).
DATASET_SPLITS = "results/data/{dataset}/splits.npz"
# The corrupted training set of a dataset and noise rate (rule corrupt_data): index, label, is_noisy, ...
DATA_TABLE = "results/data/{dataset}/noise{noise}.parquet"
# A run's data table by its data variant (RUN_DIR): noise{noise} (DATA_TABLE), or atypical
# (rule atypical_data: the noise-free table with the C-scores and is_atypical).
VARIANT_TABLE = "results/data/{dataset}/{variant}.parquet"
# One training run: checkpoints, metrics, per-example records, gradient statistics, and the
# layer experiments on it.  variant: noise<fraction>, or atypical (typical/atypical groups).
RUN_DIR = "results/runs/{dataset}/{model}/{variant}/seed{seed}"
# One hold-out subset model of the C-score estimate.
HOLDOUT_PART = "results/cscores/{dataset}/holdout{k}.parquet"
# An example-tied dropout (or baseline) run; dropout: its variant name (memloc.dropout.plan).
DROPOUT_RUN_DIR = "results/dropout/runs/{dataset}/{model}/noise{noise}/{dropout}/seed{seed}"
# Neuron flipping of one setting: the selected examples, then seed{seed}/shard{k}.parquet.
FLIP_DIR = "results/flipping/{dataset}/{model}/noise{noise}"
# Second-split forgetting of one flipping seed.
DETECTION_DIR = "results/detection/{dataset}/{model}/noise{noise}/seed{seed}"
# The memorization atlas of the primary setting: atlas.parquet, neighbours.parquet, page/ (memloc.atlas).
ATLAS_DIR = "results/atlas/{dataset}/{model}/noise{noise}"
# One shard of the localization benchmark (memloc.localize); track: ground_truth | deletion.
LOCALIZE_PART = "results/localization/{track}/shard{shard}.parquet"
# Collected tables (parquet, with run columns) and the figures / display tables drawn from them.
TABLE = "results/tables/{name}.parquet"
DISPLAY_TABLE = "results/tables/{name}.{ext}"  # ext: csv, md
FIGURE = "results/figures/{name}.{ext}"  # ext: png, pdf
# One stage's rows of the paper-vs-ours table (memloc.report.paper_vs_ours).
PAPER_ROWS = "results/tables/paper_vs_ours/{stage}.parquet"


def noise_label(noise: float) -> str:
    """Canonical text of a noise fraction in paths: 0.1 -> '0.1', 0.0 -> '0'."""
    return f"{float(noise):g}"


def run_dir(dataset: str, model: str, seed: int, noise: float = 0.0, variant: str | None = None) -> str:
    """A run's folder.  Its data variant is noise<fraction> (label noise, the default) or
    atypical (no noise; typical/atypical groups by C-score)."""
    variant = variant or f"noise{noise_label(noise)}"
    return RUN_DIR.format(dataset=dataset, model=model, variant=variant, seed=seed)


def table(name: str) -> str:
    """results/tables/<name>.parquet (name may be a wildcard: "{table}")."""
    return TABLE.format(name=name)


def display_table(name: str, ext: str) -> str:
    """results/tables/<name>.<ext> (csv, md) of a display table."""
    return DISPLAY_TABLE.format(name=name, ext=ext)


def figure(name: str, ext: str) -> str:
    """results/figures/<name>.<ext> (png, pdf)."""
    return FIGURE.format(name=name, ext=ext)


def figure_files(names: list[str]) -> list[str]:
    """Both files (PNG, PDF) of every figure named."""
    return [figure(name, ext) for name in names for ext in ("png", "pdf")]


def display_table_files(names: list[str]) -> list[str]:
    """Both files (CSV, Markdown) of every display table named."""
    return [display_table(name, ext) for name in names for ext in ("csv", "md")]
