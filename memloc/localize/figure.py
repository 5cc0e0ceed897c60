"""The benchmark's figure (results/figures/localization.{png,pdf}): left, the deletion track's
efficacy (noisy examples flipped; dashed: clean ones) against the test accuracy lost, one
curve per method over k; right, the ground-truth track's precision at the example's unit count, noisy and clean
examples, with the chance levels."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from memloc.core.files import atomic_path  # noqa: E402


def _deletion(ax, long: pd.DataFrame) -> None:
    dl = long[long["track"] == "deletion"]
    fit = dl["correct"].astype(bool)
    for method, df in dl.groupby("method", sort=False):
        drop = df.groupby("k")["drop_test"].mean()
        noisy = df[df["is_noisy"] & fit[df.index]].groupby("k")["flipped"].mean().reindex(drop.index)
        clean = df[~df["is_noisy"] & fit[df.index]].groupby("k")["flipped"].mean().reindex(drop.index)
        line, = ax.plot(100 * drop, 100 * noisy, marker="o", label=method)
        ax.plot(100 * drop, 100 * clean, marker=".", ls="--", lw=0.8, color=line.get_color())
        for k in noisy.dropna().index:
            ax.annotate(str(k), (100 * drop[k], 100 * noisy[k]), fontsize=6, xytext=(2, 2), textcoords="offset points")
    ax.set_xlabel("test accuracy lost (points)")
    ax.set_ylabel("examples flipped (%, of those fit)")
    ax.set_title("Deletion: top-k units zeroed (k marked; dashed: clean)")
    ax.legend(fontsize=7)


def _ground_truth(ax, long: pd.DataFrame) -> None:
    gt = long[(long["track"] == "ground_truth") & (long["k"] == long["units"])]
    methods = list(dict.fromkeys(gt["method"]))
    x = np.arange(len(methods))
    for shift, (name, noisy) in zip((-0.2, 0.2), (("noisy", True), ("clean", False))):
        vals = [gt[(gt["method"] == m) & (gt["is_noisy"] == noisy)]["precision"].mean() for m in methods]
        ax.bar(x + shift, vals, width=0.4, label=f"{name} examples")
    if len(gt):
        ax.axhline(gt["chance"].mean(), color="k", ls="--", lw=1, label="chance (all units)")
        ax.axhline(gt["chance_active"].mean(), color="gray", ls=":", lw=1, label="chance (active units)")
    ax.set_xticks(x, methods, rotation=30, ha="right")
    ax.set_ylabel("precision of the top-n units")
    ax.set_title("Ground truth: the example's own tied units")
    ax.legend(fontsize=7)


def localization_figure(long: pd.DataFrame, outputs: list[str | os.PathLike]) -> None:
    fig = draw_localization(long)
    for path in outputs:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=str(path).rsplit(".", 1)[-1])
    plt.close(fig)


def draw_localization(long: pd.DataFrame) -> plt.Figure:
    """Both panels of the long table (memloc.localize.tables) in one figure."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    _deletion(axes[0], long)
    _ground_truth(axes[1], long)
    first = long.iloc[0] if len(long) else None
    if first is not None:
        fig.suptitle(f"Localization benchmark: {first['dataset']}, {first['model']}, {first['noise']:.0%} noise")
    fig.tight_layout()
    return fig
