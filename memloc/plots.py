"""Figures drawn from the pipeline's parquet tables (seaborn; nothing is recomputed here).

Every function takes a DataFrame as the aggregation rules write it and returns a
matplotlib Figure; `save_figure` writes it as PNG and PDF atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(style="whitegrid", context="paper")

DATASET_TITLES = {"cifar10": "CIFAR-10", "mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "svhn": "SVHN"}
MODEL_TITLES = {"resnet9": "ResNet-9", "resnet50": "ResNet-50", "vit_small": "ViT-small"}


def run_title(dataset: str, model: str, noise: float | None = None) -> str:
    parts = [MODEL_TITLES.get(model, model), DATASET_TITLES.get(dataset, dataset)]
    if noise is not None:
        parts.append(f"{noise:.0%} label noise")
    return ", ".join(parts)


def save_figure(fig: plt.Figure, *paths: str | os.PathLike) -> None:
    """Save to every path (format from the suffix) via a temp file, then close the figure."""
    for path in paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp" + path.suffix)
        fig.savefig(tmp, bbox_inches="tight", dpi=150)
        os.replace(tmp, path)
    plt.close(fig)


def select(df: pd.DataFrame, **where) -> pd.DataFrame:
    """Rows matching every column=value; a clear error when nothing matches."""
    mask = pd.Series(True, index=df.index)
    for col, val in where.items():
        mask &= df[col] == val
    out = df[mask]
    if out.empty:
        raise ValueError(f"no rows with {where} in the table (has: {df[list(where)].drop_duplicates().to_dict('records')})")
    return out


def in_window(df: pd.DataFrame, start: int, end: int) -> pd.DataFrame:
    """Gradient statistics of the training epochs in (start, end]."""
    return df[(df["epoch"] > start) & (df["epoch"] <= end)]


def _layer_bars(df: pd.DataFrame, ax: plt.Axes, legend: bool = True) -> None:
    """Bars of the window-mean normalised gradient norm per layer and group (sd over seeds)."""
    per_seed = df.groupby(["seed", "layer_index", "layer", "group"], as_index=False)["norm"].mean()
    order = per_seed.sort_values("layer_index")["layer"].unique()
    sns.barplot(per_seed, x="layer", y="norm", hue="group", order=order, errorbar="sd", ax=ax, legend=legend)
    ax.set_xlabel("layer")
    ax.set_ylabel("gradient norm / sqrt(#params)")
    ax.tick_params(axis="x", rotation=45)


def gradient_contribution(grads: pd.DataFrame, window: tuple[int, int], title: str) -> plt.Figure:
    """fig01 / fig08: per-layer gradient-norm contribution of each group and of all examples."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    _layer_bars(in_window(grads, *window), ax)
    ax.set_title(f"{title}; epochs {window[0]}-{window[1]}")
    return fig


def gradient_cosine(grads: pd.DataFrame, title: str) -> plt.Figure:
    """fig02: cosine similarity of the two groups' gradients, layer x epoch (mean over seeds)."""
    cos = grads.groupby(["layer_index", "layer", "epoch"], as_index=False)["cosine"].mean()
    table = cos.pivot(index=["layer_index", "layer"], columns="epoch", values="cosine").droplevel(0)
    fig, ax = plt.subplots(figsize=(max(6, 0.25 * table.shape[1] + 2), 3.5))
    sns.heatmap(table, vmin=-1, vmax=1, cmap="RdBu_r", ax=ax, cbar_kws={"label": "cosine similarity"})
    ax.set_title(title)
    ax.set_xlabel("epoch")
    return fig


def gradient_windows(grads: pd.DataFrame, window: int, title: str) -> plt.Figure:
    """fig10: fig01 for every `window`-epoch span of training."""
    last = int(grads["epoch"].max())
    spans = [(s, min(s + window, last)) for s in range(0, last, window)]
    cols = min(3, len(spans))
    rows = -(-len(spans) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    for k, (ax, span) in enumerate(zip(axes.flat, spans)):
        _layer_bars(in_window(grads, *span), ax, legend=k == 0)
        ax.set_title(f"epochs {span[0]}-{span[1]}")
    for ax in list(axes.flat)[len(spans):]:
        ax.remove()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def noise_sweep(grads: pd.DataFrame, title: str) -> plt.Figure:
    """fig11: total contribution (mean over layers and all epochs) of each group per noise rate."""
    groups = [g for g in grads["group"].unique() if g != "total"]
    per_seed = grads[grads["group"].isin(groups)].groupby(["noise", "seed", "group"], as_index=False)["norm"].mean()
    per_seed["noise rate"] = per_seed["noise"].map(lambda v: f"{v:.0%}")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sns.barplot(per_seed, x="noise rate", y="norm", hue="group", errorbar="sd", ax=ax)
    ax.set_ylabel("mean gradient norm / sqrt(#params)")
    ax.set_title(title)
    return fig


def gradient_grid(grads: pd.DataFrame, window: tuple[int, int], title: str) -> plt.Figure:
    """fig12-14: fig01 for every model (rows) x noise rate (columns), mean +- sd over seeds."""
    models = list(dict.fromkeys(grads["model"]))
    noises = sorted(grads["noise"].unique())
    fig, axes = plt.subplots(len(models), len(noises), figsize=(4.5 * len(noises), 3.2 * len(models)), squeeze=False)
    for i, model in enumerate(models):
        for j, noise in enumerate(noises):
            ax = axes[i, j]
            _layer_bars(in_window(select(grads, model=model, noise=noise), *window), ax, legend=(i, j) == (0, 0))
            ax.set_title(f"{MODEL_TITLES.get(model, model)}, {noise:.0%} noise")
    fig.suptitle(f"{title}; epochs {window[0]}-{window[1]}")
    fig.tight_layout()
    return fig
