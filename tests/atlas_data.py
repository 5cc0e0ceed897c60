"""A small atlas from real Fashion-MNIST images for the atlas tests (tests/test_atlas.py,
tests/test_atlas_browser.py): the corrupted data table and images of a 300-example subset,
per-epoch records and flipping results drawn from a seeded generator shaped as the DAG writes
them, and neighbours in the images' own pixels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from schema_defaults import data_source

from memloc.atlas.neighbours import nearest
from memloc.atlas.page import image_array, write_page
from memloc.atlas.table import build_atlas, per_epoch
from memloc.core.data.noise import make_corrupted_table
from memloc.core.data.run_data import training_set

FASHION = "/usr/share/datasets/fashion-mnist"
EPOCHS = 6


def examples_table(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """epoch 0..EPOCHS x n rows: correct, loss, margin."""
    rows = []
    for epoch in range(EPOCHS + 1):
        loss = rng.gamma(1.0, 1.0 / (1 + epoch), n).astype(np.float32)
        rows.append(pd.DataFrame({"epoch": epoch, "index": np.arange(n), "correct": loss < np.log(2),
                                  "loss": loss, "margin": (np.log(2) - loss).astype(np.float32)}))
    return pd.concat(rows, ignore_index=True)


def flipping_table(data: pd.DataFrame, seeds: list[int], rng: np.random.Generator) -> pd.DataFrame:
    chosen = rng.choice(len(data), 40, replace=False)
    rows = []
    for seed in seeds:
        for i in chosen:
            k = int(rng.integers(0, 4))
            layers = [f"layer{int(x)}" for x in rng.integers(1, 10, k)]
            rows.append({"seed": seed, "index": int(i), "label": int(data["label"][i]),
                         "is_noisy": bool(data["is_noisy"][i]), "removals": k, "censored": k == 3,
                         "initially_correct": True, "flipped_to": -1 if k == 3 else int(rng.integers(0, 10)),
                         "removed_layers": layers, "removed_units": list(range(k)),
                         "accuracy_clean": 0.9, "accuracy_noisy": 0.5, "accuracy_train": float(rng.uniform(0.8, 0.9))})
    return pd.DataFrame(rows)


def small_atlas(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """(atlas table, {images, curves, examples, flipping, data}) of n real Fashion-MNIST examples."""
    source = data_source(FASHION)
    data = make_corrupted_table("fashion_mnist", source, 0.1, n, seed)
    images = training_set(data, source.load("fashion_mnist", train=True), "is_noisy").images
    rng = np.random.default_rng(seed)
    examples, flipping = examples_table(n, rng), flipping_table(data, [0, 1], rng)
    neighbours = nearest(images.flatten(1).to(torch.float32), 5)
    atlas = build_atlas(data, examples, {"flipping": flipping, "neighbours": neighbours})
    return atlas, {"images": image_array(images.numpy()), "curves": per_epoch(examples), "examples": examples,
                   "flipping": flipping, "data": data}


def write_small_page(out, n: int = 300) -> tuple[pd.DataFrame, str]:
    atlas, parts = small_atlas(n)
    meta = {"title": "Memorization atlas (test)", "classes": [str(k) for k in range(10)], "epochs": EPOCHS}
    return atlas, str(write_page(atlas, parts["images"], parts["curves"], meta, out))
