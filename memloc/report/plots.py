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
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from memloc.core.titles import dataset_title, model_title, run_title  # noqa: E402

sns.set_theme(style="whitegrid", context="paper")


def save_figure(fig: plt.Figure, *paths: str | os.PathLike) -> None:
    """Save to every path (format from the suffix) via a temp file, then close the figure."""
    for path in paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp" + path.suffix)
        fig.savefig(tmp, bbox_inches="tight", dpi=150)
        os.replace(tmp, path)
    plt.close(fig)


def title_above(fig: plt.Figure, title: str, **text) -> None:
    """The figure's title (suptitle) above its panels: tight_layout fills the space below the
    title's own height (a plain tight_layout lets the title run into the first row's panel
    titles in tall figures such as fig15-18's six or nine rows)."""
    suptitle = fig.suptitle(title, **text)
    height = suptitle.get_window_extent(fig.canvas.get_renderer()).height / fig.bbox.height
    top = suptitle.get_position()[1] - height - 6 / 72 / fig.get_figheight()  # 6 pt below the title
    for _ in range(2):  # twice: the second pass sees the first one's tick labels and titles in place
        fig.tight_layout(rect=(0, 0, 1, top))


def select(df: pd.DataFrame, **where) -> pd.DataFrame:
    """Rows matching every column=value; a clear error when nothing matches."""
    mask = pd.Series(True, index=df.index)
    for col, val in where.items():
        mask &= df[col] == val
    out = df[mask]
    if out.empty:
        has = df[list(where)].drop_duplicates().to_dict("records")
        raise ValueError(f"no rows with {where} in the table (has: {has})")
    return out


def in_window(df: pd.DataFrame, start: int, end: int) -> pd.DataFrame:
    """Gradient statistics of the training epochs in (start, end]."""
    return df[(df["epoch"] > start) & (df["epoch"] <= end)]


def layer_bars(df: pd.DataFrame, ax: plt.Axes, legend: bool = True) -> None:
    """Bars of the normalised gradient norm per layer and group: per seed the mean over
    df's epochs of the epoch gradients' norms (Sec. 4.1), then mean and sd over seeds."""
    per_seed = df.groupby(["seed", "layer_index", "layer", "group"], as_index=False)["norm"].mean()
    order = per_seed.sort_values("layer_index")["layer"].unique()
    sns.barplot(per_seed, x="layer", y="norm", hue="group", order=order, errorbar="sd", ax=ax, legend=legend)
    ax.set_xlabel("layer")
    ax.set_ylabel("epoch-gradient norm / sqrt(#params)")
    ax.tick_params(axis="x", rotation=45)


def gradient_contribution(grads: pd.DataFrame, window: tuple[int, int], title: str) -> plt.Figure:
    """fig01 / fig08: per-layer gradient-norm contribution of each group and of all examples."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    layer_bars(in_window(grads, *window), ax)
    ax.set_title(f"{title}; epochs {window[0]}-{window[1]}")
    return fig


def gradient_cosine(grads: pd.DataFrame, title: str) -> plt.Figure:
    """fig02: cosine similarity of the two groups' epoch gradients, layer x epoch (mean over seeds)."""
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
        layer_bars(in_window(grads, *span), ax, legend=k == 0)
        ax.set_title(f"epochs {span[0]}-{span[1]}")
    for ax in list(axes.flat)[len(spans):]:
        ax.remove()
    title_above(fig, title)
    return fig


def typical_gradients(grads: pd.DataFrame, datasets: list[str], model: str, window: tuple[int, int]) -> plt.Figure:
    """fig08: fig01's bars of typical vs atypical examples, one panel per dataset."""
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 3.5), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        layer_bars(in_window(select(grads, dataset=dataset, model=model), *window), ax)
        ax.set_title(f"{run_title(dataset, model)}, no label noise; epochs {window[0]}-{window[1]}")
    fig.tight_layout()
    return fig


def noise_sweep(grads: pd.DataFrame, title: str) -> plt.Figure:
    """fig11: each group's contribution per noise rate: its normalised epoch-gradient norm,
    averaged over layers and all epochs (per seed), mean +- sd over seeds."""
    groups = [g for g in grads["group"].unique() if g != "total"]
    per_seed = grads[grads["group"].isin(groups)].groupby(["noise", "seed", "group"], as_index=False)["norm"].mean()
    per_seed["noise rate"] = per_seed["noise"].map(lambda v: f"{v:.0%}")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sns.barplot(per_seed, x="noise rate", y="norm", hue="group", errorbar="sd", ax=ax)
    ax.set_ylabel("epoch-gradient norm / sqrt(#params)\n(mean over layers, epochs)")
    ax.set_title(title)
    return fig


def gradient_grid(grads: pd.DataFrame, title: str) -> plt.Figure:
    """fig12-14: fig01 averaged over all epochs, for every model (rows) x noise rate (columns),
    mean +- sd over seeds."""
    models = list(dict.fromkeys(grads["model"]))
    noises = sorted(grads["noise"].unique())
    fig, axes = plt.subplots(len(models), len(noises), figsize=(4.5 * len(noises), 3.2 * len(models)), squeeze=False)
    for i, model in enumerate(models):
        for j, noise in enumerate(noises):
            ax = axes[i, j]
            layer_bars(select(grads, model=model, noise=noise), ax, legend=(i, j) == (0, 0))
            ax.set_title(f"{model_title(model)}, {noise:.0%} noise")
    title_above(fig, f"{title}; mean over all {grads['epoch'].nunique()} epochs")
    return fig


def image_grid(images: list, captions: list[str], title: str, cols: int = 8) -> plt.Figure:
    """fig07: images (each [H, W] or [H, W, 3] uint8) in a grid, a caption under each."""
    rows = max(1, -(-len(images) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.55 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, caption in zip(axes.flat, images, captions):
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
        ax.set_title(caption, fontsize=6)
    if not images:
        axes[0, 0].text(0, 0.5, "no clean example is forgotten", fontsize=9)
    title_above(fig, title, fontsize=9)
    return fig


# -- layer rewinding and retraining (fig03, fig04, fig15-18) -----------------------------


def groups_of(table: pd.DataFrame) -> list[str]:
    """The two example groups of a rewinding / retraining table (e.g. clean, noisy), in the
    order the table has them (group False first)."""
    return [s for s in dict.fromkeys(table["subset"]) if s not in ("train", "test")]


def rewinding_heatmap(table: pd.DataFrame, subset: str, ax: plt.Axes, cbar: bool = True) -> None:
    """Accuracy on `subset` with layer l (rows) rewound to epoch t (columns), mean over seeds."""
    rows = table[(table["layer_index"] >= 0) & (table["subset"] == subset)]
    mean = rows.groupby(["layer_index", "layer", "epoch"], as_index=False)["accuracy"].mean()
    grid = mean.pivot(index=["layer_index", "layer"], columns="epoch", values="accuracy").droplevel(0)
    sns.heatmap(grid, vmin=0, vmax=1, cmap="viridis", ax=ax, cbar=cbar, cbar_kws={"label": "accuracy"})
    ax.set_xlabel("rewound to epoch")
    ax.set_ylabel("layer")


def training_curves(table: pd.DataFrame, ax: plt.Axes, legend: bool = True) -> None:
    """Accuracy per training epoch of each group and of the test set (the rewinding table's
    rows with every layer at epoch t), mean over seeds."""
    curve = table[(table["layer_index"] < 0) & table["subset"].isin([*groups_of(table), "test"])]
    sns.lineplot(curve, x="epoch", y="accuracy", hue="subset", errorbar=None, ax=ax, legend=legend)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("training epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))


def rewinding_overview(table: pd.DataFrame, dataset: str, noise: float) -> plt.Figure:
    """fig03: per model (rows) the training curves beside the two groups' rewinding heatmaps."""
    models = list(dict.fromkeys(table["model"]))
    groups = groups_of(table)
    fig, axes = plt.subplots(len(models), 3, figsize=(15, 3.6 * len(models)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.3, 1.3]})
    for i, (row, model) in enumerate(zip(axes, models)):
        runs = select(table, model=model)
        training_curves(runs, row[0], legend=i == 0)
        row[0].set_title(f"{model_title(model)}: training")
        for ax, group in zip(row[1:], groups):
            rewinding_heatmap(runs, group, ax)
            ax.set_title(f"rewinding: accuracy on {group} examples")
    title_above(fig, f"Layer rewinding, {dataset_title(dataset)}, {noise:.0%} label noise")
    return fig


def rewinding_grid(table: pd.DataFrame, title: str) -> plt.Figure:
    """fig15-17: the rewinding heatmaps of every model x group (rows) and noise rate (columns)."""
    models, groups = list(dict.fromkeys(table["model"])), groups_of(table)
    noises = sorted(table["noise"].unique())
    rows = [(m, g) for m in models for g in groups]
    fig, axes = plt.subplots(len(rows), len(noises), figsize=(5.2 * len(noises), 3.2 * len(rows)), squeeze=False)
    for (model, group), axrow in zip(rows, axes):
        for ax, noise in zip(axrow, noises):
            rewinding_heatmap(select(table, model=model, noise=noise), group, ax, cbar=ax is axrow[-1])
            ax.set_title(f"{model_title(model)}, {noise:.0%} noise: {group}")
    title_above(fig, title)
    return fig


def retraining_curves(table: pd.DataFrame, group: str, ax: plt.Axes, legend: bool = True) -> None:
    """Accuracy on `group` per retraining epoch, one line per retrained layer (mean over seeds)."""
    rows = table[table["subset"] == group].sort_values("layer_index")
    palette = sns.color_palette("viridis", rows["layer"].nunique())
    sns.lineplot(rows, x="epoch", y="accuracy", hue="layer", palette=palette, errorbar=None, ax=ax, legend=legend)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("retraining epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(f"accuracy on {group}")
    if legend:
        ax.legend(title="retrained layer", fontsize=7, ncols=2)


def retraining_panels(table: pd.DataFrame, rows: list[dict], title: str) -> plt.Figure:
    """fig04 / fig18: per row of `rows` (a selection, e.g. {dataset, noise}) one retraining
    panel per group; a row's title is its selection."""
    groups = groups_of(table)
    fig, axes = plt.subplots(len(rows), len(groups), figsize=(5.5 * len(groups), 3.4 * len(rows)), squeeze=False)
    for where, axrow in zip(rows, axes):
        part = select(table, **where)
        for ax, group in zip(axrow, groups):
            retraining_curves(part, group, ax, legend=ax is axes[0, -1])
            ax.set_title(f"{run_title(where['dataset'], part['model'].iloc[0], where.get('noise'))}: {group}")
    title_above(fig, title)
    return fig


def neuron_flipping(per_example: pd.DataFrame, removals: pd.DataFrame, title: str) -> plt.Figure:
    """fig05: (a) units zeroed until the prediction (of F̄, the noise-averaged classifier)
    flips, (b) training accuracy after the removal, per example (mean over models), clean
    vs noisy; (c) the layers of the removed units (share of each group's removals).
    per_example: group, removals, accuracy;
    removals: group, layer (one row per removed unit)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    hue = dict(hue="group", hue_order=["clean", "noisy"], common_norm=False, stat="percent")
    top = int(np.ceil(per_example["removals"].max()))
    sns.histplot(per_example, x="removals", binwidth=max(1, round(top / 40)), binrange=(-0.5, top + 0.5),
                 element="step", ax=axes[0], **hue)
    axes[0].set_xlabel(r"units zeroed until $\bar{F}$'s prediction flips (mean over models)")
    axes[0].set_title("(a) removals to flip")
    sns.histplot(per_example, x="accuracy", bins=20, element="step", ax=axes[1], **hue)
    axes[1].set_xlabel("training accuracy after the removals (mean over models)")
    axes[1].set_title("(b) accuracy after removal")
    share = removals.groupby("group")["layer"].value_counts(normalize=True).mul(100).rename("percent").reset_index()
    order = sorted(share["layer"].unique(), key=lambda s: (len(s), s))  # layer2 before layer10
    sns.barplot(share, x="layer", y="percent", hue="group", hue_order=["clean", "noisy"], order=order, ax=axes[2])
    axes[2].set_ylabel("% of the group's removed units")
    axes[2].tick_params(axis="x", rotation=45)
    axes[2].set_title("(c) layers of the removed units")
    title_above(fig, title)
    return fig
