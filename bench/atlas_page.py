"""The atlas page at the paper's scale: 50,000 synthetic rows (every column group of a CIFAR-10
atlas: C-scores, dynamics over 50 epochs, 2 flipping seeds, tied dropout, 5 neighbours) and
50,000 synthetic 32x32 RGB images, opened from disk in headless Chromium (Debian's, through
selenium).  Prints the page's size, its load time (driver.get until the load event, and the
page script's own time to parse and draw), and the time of sorting and filtering all rows
(measured in the page, render included).

    python3 bench/atlas_page.py [--rows 50000] [--out /tmp/atlas_bench]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from memloc.atlas.page import write_page


def synthetic(rows: int, epochs: int = 50, seed: int = 0):
    rng = np.random.default_rng(seed)
    noisy = rng.random(rows) < 0.1
    conf = np.clip(rng.beta(5, 1, rows) - 0.6 * noisy, 0, 1)
    df = pd.DataFrame({"index": np.arange(rows), "label": rng.integers(0, 10, rows),
                       "true_label": rng.integers(0, 10, rows),
                       "is_noisy": noisy, "cscore": rng.random(rows), "is_atypical": rng.random(rows) < 0.2,
                       "learning_time": rng.integers(0, epochs + 1, rows),
                       "forgetting_events": rng.integers(0, 6, rows),
                       "aum": rng.normal(2, 2, rows), "confidence": conf, "variability": rng.random(rows) * 0.4,
                       "ssft": np.where(rng.random(rows) < 0.5, rng.integers(0, 9, rows), np.nan)})
    flipped = rng.random(rows) < 0.02
    df["flipped"] = flipped
    for s in (0, 1):
        k = np.where(flipped, rng.integers(0, 50, rows), np.nan)
        df[f"removals_s{s}"], df[f"censored_s{s}"] = k, np.where(flipped, k > 45, np.nan)
        df[f"flipped_to_s{s}"] = np.where(flipped, rng.integers(0, 10, rows), np.nan)
        df[f"accuracy_after_s{s}"] = np.where(flipped, rng.uniform(0.8, 0.95, rows), np.nan)
        df[f"layers_s{s}"] = ["" if not f or np.isnan(n) else ",".join(f"layer{j % 9 + 1}" for j in range(int(n)))
                              for f, n in zip(flipped, k)]
    df["removals_mean"] = df[["removals_s0", "removals_s1"]].mean(axis=1)
    df["censored_fraction"] = df[["censored_s0", "censored_s1"]].mean(axis=1)
    df["accuracy_after_mean"] = df[["accuracy_after_s0", "accuracy_after_s1"]].mean(axis=1)
    df["tied_correct"], df["tied_correct_drop"] = rng.random(rows) < 0.95, rng.random(rows) < 0.6
    df["neighbours"] = list(rng.integers(0, rows, (rows, 5)))
    df["neighbours_same_label"] = rng.integers(0, 6, rows)
    images = rng.integers(0, 256, (rows, 32, 32, 3), dtype=np.uint8)
    curves = {"correct": rng.random((rows, epochs + 1)) < 0.8, "margin": rng.normal(1, 2, (rows, epochs + 1))}
    return df, images, curves


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--out", default="/tmp/atlas_bench")
    args = ap.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    df, images, curves = synthetic(args.rows)
    t = time.perf_counter()
    html = write_page(df, images, curves, {"title": "bench", "classes": [str(k) for k in range(10)], "epochs": 50},
                      Path(args.out) / "page")
    image_mb = sum(p.stat().st_size for p in (html.parent / "images").iterdir()) / 1e6
    print(f"rows {args.rows}: page written in {time.perf_counter() - t:.1f} s; index.html "
          f"{html.stat().st_size / 1e6:.1f} MB, images {image_mb:.1f} MB")
    options = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(a)
    options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        for attempt in range(3):
            t = time.perf_counter()
            driver.get(f"file://{html}")
            wall = time.perf_counter() - t
            load = driver.execute_script("return performance.getEntriesByType('navigation')[0].loadEventEnd")
            ready = driver.execute_script("return window.atlas.readyMs")
            print(f"load {attempt}: driver.get {wall * 1000:.0f} ms, load event at {load:.0f} ms, "
                  f"page script {ready:.0f} ms")
        for col in ("confidence", "cscore", "layers_s0", "removals_mean", "index"):
            for direction in (1, -1):
                ms = driver.execute_script(
                    "const t = performance.now(); window.atlas.sortBy(arguments[0], arguments[1]); "
                    "document.body.offsetHeight; return performance.now() - t", col, direction)
                print(f"sort {col} {'asc' if direction > 0 else 'desc'}: {ms:.0f} ms")
        for fid, value in (("f-noisy", "1"), ("f-class", "3"), ("f-atypical", "1"), ("f-flipped", "1")):
            ms = driver.execute_script(
                "const e = document.getElementById(arguments[0]); e.value = arguments[1]; "
                "const t = performance.now(); e.dispatchEvent(new Event('change')); document.body.offsetHeight; "
                "return performance.now() - t", fid, value)
            n = len(driver.execute_script("return window.atlas.visibleIndices()"))
            print(f"filter {fid}={value}: {ms:.0f} ms, {n} rows")
        ms = driver.execute_script("const t = performance.now(); "
                                   "window.atlas.selectBox({x0: 0, x1: 0.2, y0: 0.5, y1: 1}, -1); "
                                   "return performance.now() - t")
        print(f"Data Map box selection: {ms:.0f} ms")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
