"""Where the workflow keeps things: every path template of results/ and the canonical text of
the values in them (memloc plans and jobs format these; the rules name them).

Every template is written "results/..." here; `set_results_dir` moves all of them (every
upper-case string of this module under results/, whichever template is added later) under
another root, config key results_dir (e.g. config/smoke.yaml's results-smoke/).  The
Snakefile calls it right after validating the config, before any other memloc import, and
the jobs it starts inherit the root through MEMLOC_RESULTS_DIR, read when this module is
imported.
"""

from __future__ import annotations

import os
import sys

DEFAULT_RESULTS_DIR = "results"
RESULTS_DIR_ENV = "MEMLOC_RESULTS_DIR"  # the root of a process started by the workflow
_root = DEFAULT_RESULTS_DIR  # where the templates are now

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


def results_dir() -> str:
    """The folder every template of this module is under now (results unless moved)."""
    return _root


def _templates() -> dict[str, str]:
    return {name: value for name, value in globals().items()
            if name.isupper() and isinstance(value, str) and value.startswith(_root + "/")}


def set_results_dir(root: str) -> None:
    """Put every template of this module under `root` instead of the current root, and export
    it (MEMLOC_RESULTS_DIR) to the processes this one starts.  A module that imported a
    template by value before (from memloc.core.paths import RUN_DIR) would keep the old one,
    so that is refused, naming the module: call this before importing the rest of memloc."""
    global _root
    root = os.path.normpath(root)
    if not root or root == "." or "{" in root or "}" in root:
        raise ValueError(f"results_dir: {root!r} is not a folder name for the results")
    old = _templates()
    if root != _root:
        stale = sorted(f"{name}.{key}" for name, module in list(sys.modules.items())
                       if name.startswith("memloc.") and name != __name__ and module is not None
                       for key, value in vars(module).items() if isinstance(value, str) and value in old.values())
        if stale:
            raise RuntimeError(f"results_dir {root!r}: {', '.join(stale)} already hold templates under {_root}/ "
                               "(memloc.core.paths.set_results_dir must run before they are imported)")
        globals().update({name: root + value[len(_root):] for name, value in old.items()})
        _root = root
    os.environ[RESULTS_DIR_ENV] = root


if os.environ.get(RESULTS_DIR_ENV):  # a job of a workflow whose results_dir is not results/
    set_results_dir(os.environ[RESULTS_DIR_ENV])
