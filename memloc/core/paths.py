"""Where the workflow keeps things: every path template of results/ and the canonical text of
the values in them (memloc plans and jobs format these; the rules name them)."""

from __future__ import annotations


RUN_DIR = "results/runs/{dataset}/{model}/{variant}/seed{seed}"


def noise_label(noise: float) -> str:
    """Canonical text of a noise fraction in paths: 0.1 -> '0.1', 0.0 -> '0'."""
    return f"{float(noise):g}"


def run_dir(dataset: str, model: str, seed: int, noise: float = 0.0, variant: str | None = None) -> str:
    """A run's folder.  Its data variant is noise<fraction> (label noise, the default) or
    atypical (no noise; typical/atypical groups by C-score)."""
    variant = variant or f"noise{noise_label(noise)}"
    return RUN_DIR.format(dataset=dataset, model=model, variant=variant, seed=seed)
