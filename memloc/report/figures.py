"""One entry point per figure id: read the parquet table behind it, select, draw, save.

Each function takes the table path, the output paths (PNG, PDF) and the selection, so a
figure can be restyled and redrawn without recomputing anything.
"""

from __future__ import annotations

import pandas as pd

from memloc.core.titles import dataset_title, model_title, run_title
from memloc.report import plots


def _primary(table: str, dataset: str, model: str, noise: float) -> pd.DataFrame:
    return plots.select(pd.read_parquet(table), dataset=dataset, model=model, noise=noise)


def fig01(table: str, outputs: list[str], dataset: str, model: str, noise: float, window: list[int]) -> None:
    grads = _primary(table, dataset, model, noise)
    fig = plots.gradient_contribution(grads, tuple(window), run_title(dataset, model, noise))
    plots.save_figure(fig, *outputs)


def fig02(table: str, outputs: list[str], dataset: str, model: str, noise: float) -> None:
    grads = _primary(table, dataset, model, noise)
    title = f"cosine(clean, noisy gradient): {run_title(dataset, model, noise)}"
    plots.save_figure(plots.gradient_cosine(grads, title), *outputs)


def fig10(table: str, outputs: list[str], dataset: str, model: str, noise: float, window: int) -> None:
    grads = _primary(table, dataset, model, noise)
    plots.save_figure(plots.gradient_windows(grads, window, run_title(dataset, model, noise)), *outputs)


def fig11(table: str, outputs: list[str], dataset: str, model: str, noise_rates: list[float], seeds: list[int]) -> None:
    """Each group's gradient norm per noise rate, averaged over all epochs and layers."""
    grads = plots.select(pd.read_parquet(table), dataset=dataset, model=model)
    grads = grads[grads["noise"].isin(noise_rates) & grads["seed"].isin(seeds)]
    plots.save_figure(plots.noise_sweep(grads, run_title(dataset, model)), *outputs)


def gradient_grid(
    table: str, outputs: list[str], dataset: str, models: list[str], noise_rates: list[float], seeds: list[int]
) -> None:
    """fig12 / fig13 / fig14 (by dataset), averaged over all epochs."""
    grads = plots.select(pd.read_parquet(table), dataset=dataset)
    grads = grads[grads["model"].isin(models) & grads["noise"].isin(noise_rates) & grads["seed"].isin(seeds)]
    title = f"Gradient contribution, {dataset_title(dataset)}"
    plots.save_figure(plots.gradient_grid(grads, title), *outputs)


def fig07(table: str, outputs: list[str], title: str, cols: int = 8) -> None:
    """Clean training images right before and wrong after dropping the memorization units."""
    import numpy as np

    df = pd.read_parquet(table)
    images = []
    for r in df.itertuples():  # pixels stored as C x H x W uint8 bytes
        img = np.frombuffer(r.image, dtype=np.uint8).reshape(r.channels, r.height, r.width).transpose(1, 2, 0)
        images.append(img if r.channels == 3 else img[..., 0])  # RGB, else (gray, or C != 3) the first channel
    captions = [f"label: {r.label_name}\nnow: {r.prediction_name}" for r in df.itertuples()]
    if len(df):
        forgotten, clean = df["forgotten"].iloc[0], df["clean"].iloc[0]
        title = f"{title}\n{len(df)} of the {forgotten} forgotten (of {clean} clean examples)"
    plots.save_figure(plots.image_grid(images, captions, title, cols), *outputs)


def fig08(table: str, outputs: list[str], datasets: list[str], model: str, window: list[int]) -> None:
    """Gradient contribution of typical vs atypical examples, one panel per dataset."""
    plots.save_figure(plots.typical_gradients(pd.read_parquet(table), datasets, model, tuple(window)), *outputs)


def _runs(table: str, **values) -> pd.DataFrame:
    """The table's rows whose columns take the given values (a list: any of them)."""
    df = pd.read_parquet(table)
    for col, val in values.items():
        df = df[df[col].isin(val if isinstance(val, list) else [val])]
    if df.empty:
        raise ValueError(f"no rows with {values} in {table}")
    return df


def fig03(table: str, outputs: list[str], dataset: str, models: list[str], noise: float, seeds: list[int]) -> None:
    """Training curves and rewinding heatmaps, one row per model."""
    df = _runs(table, dataset=dataset, model=models, noise=noise, seed=seeds)
    plots.save_figure(plots.rewinding_overview(df, dataset, noise), *outputs)


def rewinding_grid(
    table: str, outputs: list[str], dataset: str, models: list[str], noise_rates: list[float], seeds: list[int]
) -> None:
    """fig15 / fig16 / fig17 (by dataset): rewinding heatmaps per model x noise rate."""
    df = _runs(table, dataset=dataset, model=models, noise=noise_rates, seed=seeds)
    title = f"Layer rewinding, {dataset_title(dataset)}"
    plots.save_figure(plots.rewinding_grid(df, title), *outputs)


def retraining(
    table: str, outputs: list[str], datasets: list[str], model: str, noise_rates: list[float], seeds: list[int]
) -> None:
    """fig04 (the primary noise rate) / fig18 (every noise rate): retraining curves per
    dataset x noise rate."""
    df = _runs(table, dataset=datasets, model=model, noise=noise_rates, seed=seeds)
    rows = [{"dataset": d, "noise": float(n)} for d in datasets for n in noise_rates]
    title = f"Layer retraining on {plots.groups_of(df)[0]} examples only, {model_title(model)}"
    plots.save_figure(plots.retraining_panels(df, rows, title), *outputs)


def fig05(table: str, outputs: list[str], dataset: str, model: str, noise: float, seeds: list[int]) -> None:
    """Neuron flipping: per example the mean over the flipping seeds (censored counts at
    their maximum) of the (example, model) pairs F̄ predicts as labelled before any removal;
    the title says how many pairs were left out."""
    df = _runs(table, dataset=dataset, model=model, noise=noise, seed=seeds)
    kept = df[df["initially_correct"]].copy()  # as memloc.report.paper_vs_ours.initially_correct
    kept["group"] = kept["is_noisy"].map({False: "clean", True: "noisy"})
    per_example = kept.groupby(["index", "group"], as_index=False).agg(
        removals=("removals", "mean"), accuracy=("accuracy_train", "mean"))
    removed = kept[["group", "removed_layers"]].explode("removed_layers").dropna()
    removed = removed.rename(columns={"removed_layers": "layer"})
    n = per_example["group"].value_counts()
    title = (f"Neuron flipping, {run_title(dataset, model, noise)}: {n.get('clean', 0)} clean + "
             f"{n.get('noisy', 0)} noisy examples, {df['seed'].nunique()} models\n"
             f"{len(df) - len(kept)} of {len(df)} (example, model) pairs left out (misclassified before any "
             f"removal); {int(kept['censored'].sum())} censored")
    plots.save_figure(plots.neuron_flipping(per_example, removed, title), *outputs)
