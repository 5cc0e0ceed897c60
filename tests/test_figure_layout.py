"""Every figure the report draws, at the paper preset's shape (3 models x 2 groups x 3 noise
rates, 9 layers, 20 epochs), on small synthetic tables in the pipeline's format:
the figure title (suptitle) overlaps no axes and no panel title, and no panel title overlaps
another axes or another panel's title (matplotlib's bounding boxes after drawing)."""

import functools
import itertools

import numpy as np
import pandas as pd
import pytest

from memloc.core.titles import dataset_title, run_title
from memloc.report import plots

MODELS, NOISES, SEEDS = ["resnet9", "resnet50", "vit_small"], [0.05, 0.1, 0.2], [0, 1]
LAYERS = [f"layer{i}" for i in range(1, 10)]
EPOCHS = 20  # the paper's 50 draw the same layout, slower (seaborn redraws the figure per heatmap)
RNG = np.random.default_rng(0)


@functools.cache
def gradients(datasets=("cifar10",), models=tuple(MODELS), noises=tuple(NOISES), groups=("clean", "noisy", "total")):
    rows = [{"dataset": d, "model": m, "noise": n, "seed": s, "epoch": e, "layer_index": i, "layer": layer,
             "group": g, "norm": RNG.random(), "cosine": RNG.uniform(-1, 1)}
            for d, m, n, s, e, (i, layer), g in itertools.product(datasets, models, noises, SEEDS, range(1, EPOCHS + 1),
                                                               enumerate(LAYERS), groups)]
    return pd.DataFrame(rows)


@functools.cache
def layer_table(rewinding: bool, datasets=("cifar10",), models=tuple(MODELS)) -> pd.DataFrame:
    """Rows (dataset, model, noise, seed, layer_index, layer, epoch, subset, accuracy) as the
    collected rewinding (with the training curve, layer_index -1) or retraining table."""
    epochs = range(EPOCHS + 1) if rewinding else range(21)
    layers = [*enumerate(LAYERS)] + ([(-1, "all")] if rewinding else [])
    rows = [{"dataset": d, "model": m, "noise": n, "seed": s, "layer_index": i, "layer": layer, "epoch": e,
             "subset": sub, "accuracy": RNG.random()}
            for d, m, n, s, (i, layer), e, sub in itertools.product(datasets, models, NOISES, SEEDS, layers, epochs,
                                                                   ["train", "clean", "noisy", "test"])]
    return pd.DataFrame(rows)


def flipping_inputs():
    per_example = pd.DataFrame({"group": ["clean", "noisy"] * 50, "removals": RNG.integers(0, 100, 100),
                                "accuracy": RNG.random(100)})
    removals = pd.DataFrame({"group": ["clean", "noisy"] * 100, "layer": RNG.choice(LAYERS, 200)})
    return per_example, removals


def draw(name: str):
    """The figure `name` as memloc.report.figures draws it (the same plots function and title form)."""
    primary, one_run = run_title("cifar10", "resnet9", 0.1), {"models": ("resnet9",), "noises": (0.1,)}
    rewinding = layer_table(True) if name in ("fig03", "fig15") else None
    retraining = layer_table(False, ("cifar10", "mnist", "svhn"), ("resnet9",)) if name in ("fig04", "fig18") else None
    if name == "fig01":
        return plots.gradient_contribution(gradients(**one_run), (15, 20), primary)
    if name == "fig02":
        return plots.gradient_cosine(gradients(**one_run), f"cosine(clean, noisy gradient): {primary}")
    if name == "fig10":
        return plots.gradient_windows(gradients(**one_run), 2, primary)  # 10 panels, as 50 epochs in 5s
    if name == "fig11":
        return plots.noise_sweep(gradients(models=("resnet9",), noises=(0.01, 0.05, 0.1, 0.2, 0.5, 0.99)),
                                 run_title("cifar10", "resnet9"))
    if name == "fig12":
        return plots.gradient_grid(gradients(), f"Gradient contribution, {dataset_title('cifar10')}")
    if name == "fig07":
        images = [RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(32)]
        captions = ["label: automobile\nnow: truck"] * 32
        return plots.image_grid(images, captions, "Example-tied dropout, CIFAR-10, ResNet-9\n32 of the 150 forgotten "
                                                  "(of 45000 clean examples)", cols=8)
    if name == "fig08":
        grads = gradients(datasets=("cifar10", "mnist"), models=("resnet9",), noises=(0.0,),
                          groups=("typical", "atypical", "total"))
        return plots.typical_gradients(grads, ["cifar10", "mnist"], "resnet9", (15, 20))
    if name == "fig03":
        return plots.rewinding_overview(rewinding[rewinding["noise"] == 0.1], "cifar10", 0.1)
    if name == "fig15":
        return plots.rewinding_grid(rewinding, f"Layer rewinding, {dataset_title('cifar10')}")
    if name == "fig18":
        rows = [{"dataset": d, "noise": n} for d in ("cifar10", "mnist", "svhn") for n in NOISES]
        return plots.retraining_panels(retraining, rows, "Layer retraining on clean examples only, ResNet-9")
    if name == "fig04":
        rows = [{"dataset": d, "noise": 0.1} for d in ("cifar10", "mnist")]
        return plots.retraining_panels(retraining, rows, "Layer retraining on clean examples only, ResNet-9")
    if name == "fig05":
        title = (f"Neuron flipping, {primary}: 1000 clean + 1000 noisy examples, 30 models\n"
                 "120 of 60000 (example, model) pairs left out (misclassified before any removal); 3 censored")
        return plots.neuron_flipping(*flipping_inputs(), title)
    if name == "localization":
        from memloc.localize.figure import draw_localization

        return draw_localization(localization_long())
    raise KeyError(name)


def localization_long() -> pd.DataFrame:
    """The benchmark's long table: 7 methods, 10 + 10 examples, both tracks."""
    methods = ["flipping", "zero_out", "activations", "integrated_gradients", "slimming", "hard_concrete", "random"]
    run = {"dataset": "cifar10", "model": "resnet9", "noise": 0.1}
    rows = [{**run, "track": "deletion", "method": m, "index": i, "is_noisy": i % 2 == 0, "k": k, "units": 4,
             "correct": True, "flipped": bool(RNG.random() < 0.5), "drop_test": RNG.random() / 10,
             "precision": np.nan, "chance": np.nan, "chance_active": np.nan}
            for m in methods for i in range(20) for k in (1, 2, 4, 8, 16)]
    rows += [{**run, "track": "ground_truth", "method": m, "index": i, "is_noisy": i % 2 == 0, "k": k, "units": 4,
              "correct": True, "flipped": False, "drop_test": np.nan, "precision": RNG.random(), "chance": 0.05,
              "chance_active": 0.2} for m in methods for i in range(20) for k in (1, 2, 4)]
    return pd.DataFrame(rows)


# fig09 is fig03's form, fig13 / fig14 fig12's, fig16 / fig17 fig15's, fig19 fig04's
FIGURES = ["fig01", "fig02", "fig03", "fig04", "fig05", "fig07", "fig08", "fig10", "fig11", "fig12", "fig15", "fig18",
           "localization"]


def overlaps(a, b) -> bool:
    """Bounding boxes that share more than a pixel's sliver."""
    return min(a.x1, b.x1) - max(a.x0, b.x0) > 1 and min(a.y1, b.y1) - max(a.y0, b.y0) > 1


@pytest.fixture(autouse=True)
def _small_dpi():
    """Positions scale with the dpi: a small one lays out and draws fast."""
    with plots.matplotlib.rc_context({"figure.dpi": 40}):
        yield


@pytest.mark.parametrize("name", FIGURES)
def test_titles_clear_of_the_panels(name):
    fig = draw(name)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        axes = [ax for ax in fig.axes if ax.get_visible()]
        titles = {ax: ax.title.get_window_extent(renderer) for ax in axes if ax.get_title()}
        suptitle = fig._suptitle
        if suptitle is not None and suptitle.get_text():
            top = suptitle.get_window_extent(renderer)
            for ax in axes:
                assert not overlaps(top, ax.get_tightbbox(renderer)), (name, "suptitle", ax.get_title())
        for ax, title in titles.items():
            for other in axes:
                if other is ax:
                    continue
                assert not overlaps(title, other.get_window_extent(renderer)), (name, ax.get_title(), other.get_title())
                if other in titles:
                    assert not overlaps(title, titles[other]), (name, ax.get_title(), other.get_title())
    finally:
        plots.plt.close(fig)
