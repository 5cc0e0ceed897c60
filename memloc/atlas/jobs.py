"""Job steps of the atlas: the neighbours of every training example (a model pass), the table
(a join of the DAG's files) and the page.  Paths in, files out; only workflow/scripts call these."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from memloc.core.data.inputs import RunInputs
from memloc.core.files import write_parquet


def write_neighbours(inputs: RunInputs, checkpoints: str | os.PathLike, out: str | os.PathLike, k: int,
                     device) -> pd.DataFrame:
    """index, neighbours: the k nearest training examples of every training example in the
    penultimate features of the run's final model (the last line of its checkpoints.txt)."""
    from memloc.atlas.neighbours import nearest, penultimate_features
    from memloc.core.train.checkpoints import model_from_checkpoint

    model = model_from_checkpoint(Path(checkpoints).read_text().split()[-1], device)
    features = penultimate_features(model, inputs.training_set().images, device)
    df = nearest(features, k)
    write_parquet(df, out)
    return df


def write_atlas_table(files: dict[str, str], out: str | os.PathLike) -> pd.DataFrame:
    """atlas.parquet from the files memloc.atlas.plan.table_inputs names (data and examples
    required; the others optional: their columns are absent without them)."""
    from memloc.atlas.table import build_atlas

    frames = {name: pd.read_parquet(path) for name, path in files.items()}
    atlas = build_atlas(frames.pop("data"), frames.pop("examples"), frames)
    write_parquet(atlas, out)
    return atlas


def write_atlas_page(atlas: str | os.PathLike, examples: str | os.PathLike, inputs: RunInputs,
                     dataset_info: str | os.PathLike, out: str | os.PathLike, title: str) -> Path:
    """The page folder (memloc.atlas.page) of atlas.parquet: the run's per-epoch records for the
    detail curves, the training images from the dataset, class names from its dataset.json."""
    from memloc.atlas.page import image_array, write_page
    from memloc.atlas.table import per_epoch

    examples_df = pd.read_parquet(examples)
    info = json.loads(Path(dataset_info).read_text())
    meta = {"title": title, "classes": [str(c) for c in info.get("classes", [])],
            "epochs": int(examples_df["epoch"].max())}
    images = image_array(inputs.training_set().images.numpy())
    return write_page(pd.read_parquet(atlas), images, per_epoch(examples_df), meta, out)


def write_atlas_summaries(atlas: str | os.PathLike, outputs: dict[str, str]) -> None:
    """The report's view of the atlas (memloc.atlas.summary): data_map / data_map_md (where each
    group sits on the Data Map) and layers / layers_md (the layers of the single-removal flips)."""
    from memloc.atlas.summary import data_map_groups, single_removal_layers
    from memloc.core.files import save_table

    df = pd.read_parquet(atlas)
    save_table(data_map_groups(df).reset_index(), outputs["data_map"], outputs["data_map_md"], floatfmt=".3f")
    save_table(single_removal_layers(df), outputs["layers"], outputs["layers_md"], floatfmt=".3f")
