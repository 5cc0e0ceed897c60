"""The atlas page: a folder with index.html (the table's rows inline as JSON, the page's own
JavaScript and CSS inline: no CDN, it opens from disk), images/<index>.png (one small PNG per
example, loaded lazily by the browser as the table scrolls, the Data Map hovers or the detail
view opens) and detail/<chunk>.js (per-epoch correctness and margin of CHUNK examples each,
loaded by a script tag when an example of the chunk is opened).

The JavaScript (atlas.js beside this module) is small and hand-written: a virtualized table
(only the visible rows are in the DOM), a canvas scatter and plain DOM filters; docs/atlas.md
has the measurement that chose it."""

from __future__ import annotations

import html
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

CHUNK = 1000  # examples per detail file
HERE = Path(__file__).parent


def image_array(images) -> np.ndarray:
    """uint8 [n, H, W] (grey) or [n, H, W, 3] of a TrainingSet's images ([n, C, H, W])."""
    a = np.asarray(images)
    if a.dtype != np.uint8:  # a declared dataset stored standardized: rescale per image for display
        lo, hi = a.min(axis=(1, 2, 3), keepdims=True), a.max(axis=(1, 2, 3), keepdims=True)
        a = ((a - lo) / np.maximum(hi - lo, 1e-8) * 255).astype(np.uint8)
    a = a.transpose(0, 2, 3, 1)
    return a[..., 0] if a.shape[-1] == 1 else a


def write_images(images: np.ndarray, index, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in zip(index, images):
        Image.fromarray(img).save(folder / f"{int(i)}.png", optimize=False, compress_level=1)


def _column_values(s: pd.Series) -> list:
    if pd.api.types.is_bool_dtype(s):  # bool, or nullable boolean (NA -> null)
        return [None if pd.isna(x) else int(x) for x in s.tolist()]
    if pd.api.types.is_numeric_dtype(s):
        v = s.astype(float).tolist()  # 7 significant digits: float32's, the precision of the records
        return [None if np.isnan(x) else (int(x) if float(x).is_integer() else float(f"{x:.7g}")) for x in v]
    if s.map(lambda x: isinstance(x, (list, np.ndarray))).any():
        return [[int(y) for y in x] for x in s]
    return s.fillna("").astype(str).tolist()


def _kind(s: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(s):
        return "bool"
    if pd.api.types.is_numeric_dtype(s):
        return "num"
    return "list" if s.map(lambda x: isinstance(x, (list, np.ndarray))).any() else "str"


def page_data(atlas: pd.DataFrame, meta: dict) -> dict:
    """What the page embeds: meta (title, classes, epochs) and the table by column."""
    atlas = atlas.sort_values("index").reset_index(drop=True)
    return {**meta, "chunk": CHUNK, "columns": [{"name": c, "kind": _kind(atlas[c])} for c in atlas.columns],
            "data": {c: _column_values(atlas[c]) for c in atlas.columns}}


def write_detail(curves: dict[str, np.ndarray], folder: Path) -> None:
    """detail/<k>.js: atlasDetail(k, {correct: ["0111..", ...], margin: [[...], ...]})."""
    folder.mkdir(parents=True, exist_ok=True)
    correct, margin = curves["correct"].astype(bool), np.round(curves["margin"].astype(float), 3)
    for k in range(0, len(correct), CHUNK):
        part = {"correct": ["".join("1" if c else "0" for c in row) for row in correct[k:k + CHUNK]],
                "margin": margin[k:k + CHUNK].tolist()}
        (folder / f"{k // CHUNK}.js").write_text(f"atlasDetail({k // CHUNK},{json.dumps(part)});\n")


def render_html(data: dict) -> str:
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return (TEMPLATE.replace("@TITLE@", html.escape(data["title"]))
            .replace("@CSS@", (HERE / "atlas.css").read_text())
            .replace("@DATA@", payload)
            .replace("@JS@", (HERE / "atlas.js").read_text()))


def write_page(atlas: pd.DataFrame, images: np.ndarray, curves: dict[str, np.ndarray], meta: dict,
               out: str | os.PathLike) -> Path:
    """The page folder `out` (index.html, images/, detail/), written beside and renamed into
    place.  images: image_array() of every training row; curves: memloc.atlas.table.per_epoch;
    meta: {title, classes (names by label), epochs}."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_images(images, range(len(images)), tmp / "images")
    write_detail(curves, tmp / "detail")
    (tmp / "index.html").write_text(render_html(page_data(atlas, meta)))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out / "index.html"


TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>@TITLE@</title>
<style>@CSS@</style></head>
<body>
<header><h1>@TITLE@</h1><span id="count"></span></header>
<div id="controls">
  <label>noisy <select id="f-noisy"><option value="all">all</option><option value="1">noisy</option>
    <option value="0">clean</option></select></label>
  <label>class <select id="f-class"><option value="all">all</option></select></label>
  <label id="l-atypical">atypical <select id="f-atypical"><option value="all">all</option>
    <option value="1">atypical</option><option value="0">typical</option></select></label>
  <label id="l-flipped">flipped <select id="f-flipped"><option value="all">all</option>
    <option value="1">flipped</option><option value="0">not flipped</option></select></label>
  <label>index <input id="f-search" type="search" placeholder="e.g. 42" size="8"></label>
  <label>colour <select id="color-by"><option value="is_noisy">noisy</option></select></label>
  <span id="selection-info"></span> <button id="clear-selection">clear selection</button>
</div>
<main>
  <section id="map"><h2>Data Map</h2><div id="map-wrap"><canvas id="datamap" width="440" height="380"></canvas>
    <div id="tooltip"></div></div>
    <p class="hint">x: variability, y: confidence of the given label over epochs; drag a box to select,
    click a point to open it</p></section>
  <section id="detail"><h2>Example</h2><p class="hint">Click a row or a point.</p></section>
</main>
<section id="table"><div id="thead"></div><div id="tbody"><div id="spacer"></div></div></section>
<script id="atlas-data" type="application/json">@DATA@</script>
<script>@JS@</script>
</body></html>
"""
