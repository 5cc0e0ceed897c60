"""One entry point per figure id: read the parquet table behind it, select, draw, save.

Each function takes the table path, the output paths (PNG, PDF) and the selection, so a
figure can be restyled and redrawn without recomputing anything.
"""

from __future__ import annotations

import pandas as pd

from memloc import plots


def _primary(table: str, dataset: str, model: str, noise: float) -> pd.DataFrame:
    return plots.select(pd.read_parquet(table), dataset=dataset, model=model, noise=noise)


def fig01(table: str, outputs: list[str], dataset: str, model: str, noise: float, window: list[int]) -> None:
    grads = _primary(table, dataset, model, noise)
    fig = plots.gradient_contribution(grads, tuple(window), plots.run_title(dataset, model, noise))
    plots.save_figure(fig, *outputs)


def fig02(table: str, outputs: list[str], dataset: str, model: str, noise: float) -> None:
    grads = _primary(table, dataset, model, noise)
    title = f"cosine(clean, noisy gradient): {plots.run_title(dataset, model, noise)}"
    plots.save_figure(plots.gradient_cosine(grads, title), *outputs)


def fig10(table: str, outputs: list[str], dataset: str, model: str, noise: float, window: int) -> None:
    grads = _primary(table, dataset, model, noise)
    plots.save_figure(plots.gradient_windows(grads, window, plots.run_title(dataset, model, noise)), *outputs)


def fig11(table: str, outputs: list[str], dataset: str, model: str, noise_rates: list[float], seeds: list[int]) -> None:
    grads = plots.select(pd.read_parquet(table), dataset=dataset, model=model)
    grads = grads[grads["noise"].isin(noise_rates) & grads["seed"].isin(seeds)]
    plots.save_figure(plots.noise_sweep(grads, plots.run_title(dataset, model)), *outputs)


def gradient_grid(
    table: str, outputs: list[str], dataset: str, models: list[str], noise_rates: list[float], seeds: list[int],
    window: list[int],
) -> None:
    """fig12 / fig13 / fig14 (by dataset)."""
    grads = plots.select(pd.read_parquet(table), dataset=dataset)
    grads = grads[grads["model"].isin(models) & grads["noise"].isin(noise_rates) & grads["seed"].isin(seeds)]
    title = f"Gradient contribution, {plots.DATASET_TITLES.get(dataset, dataset)}"
    plots.save_figure(plots.gradient_grid(grads, tuple(window), title), *outputs)
