"""The example-tied dropout study (Sec. 6.2): which runs, tab1-tab3, fig07's examples and
the paper-vs-ours rows.

Runs live in results/dropout/runs/{dataset}/{model}/noise{noise}/{variant}/seed{seed}; a
variant names the dropout (`variant_name`): tied_pgen0.4_pmem0.2 (example-tied),
standard_p0.4 (standard dropout, drop probability p_gen), sparse_keep0.4 (a fixed sparse
network keeping a fraction p_gen of the units).  tab1 has a run per configured dataset,
tab2 the p_gen x p_mem grid and tab3 the three methods, both on the first configured dataset.
"""

from __future__ import annotations

import os
import re

import pandas as pd
import torch

from memloc.core.paths import noise_label
from memloc.core.data import DataSource, write_parquet
from memloc.report.plots import DATASET_TITLES
from memloc.report.tables import comparison_row, save_table, write_rows

MODEL = "resnet9"  # the paper's, and the only model with ConvBN blocks to put dropout after
RUN_DIR = "results/dropout/runs/{dataset}/{model}/noise{noise}/{variant}/seed{seed}"
METHOD_TITLES = {
    "standard": "Standard dropout (p = {p_gen:g})",
    "fixed_sparse": "Sparse network (s = {p_gen:g})",
    "example_tied": "Example-tied (p_gen = {p_gen:g}, p_mem = {p_mem:g})",
}
CLASS_NAMES = {
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
}

# The paper's numbers (percent).  tab1: dataset -> clean/noisy/test before and after dropping.
PAPER_TAB1 = {
    "cifar10": {"before": (99.9, 99.3, 79.3), "after": (90.8, 3.1, 82.7)},
    "mnist": {"before": (100.0, 100.0, 99.0), "after": (99.2, 0.1, 99.3)},
    "svhn": {"before": (99.9, 99.6, 89.5), "after": (95.8, 1.4, 89.6)},
}
# tab2 (CIFAR-10): (p_mem, p_gen) -> (clean, noisy) after dropping.
_TAB2_ROWS = {
    0.1: [(84.2, 2.9), (86.9, 2.8), (87.1, 2.9), (89.9, 3.1), (92.0, 3.9), (93.0, 4.9)],
    0.2: [(86.9, 2.8), (88.2, 3.0), (90.8, 3.1), (91.7, 3.4), (93.6, 4.7), (95.0, 6.9)],
}
PAPER_TAB2 = {(p_mem, round(0.1 * (i + 1), 1)): v for p_mem, row in _TAB2_ROWS.items() for i, v in enumerate(row)}
# tab3 (CIFAR-10, p_gen = 0.4, p_mem = 0.2): method -> (clean, noisy) training accuracy.
PAPER_TAB3 = {"standard": (100.0, 99.5), "fixed_sparse": (100.0, 99.8), "example_tied": (90.8, 3.1)}
PAPER_SETTING = "{dataset}, ResNet-9, 10% noise, 50 epochs"


# -- runs -------------------------------------------------------------------------------


def variant_name(kind: str, p_gen: float, p_mem: float = 0.0) -> str:
    if kind == "example_tied":
        return f"tied_pgen{p_gen:g}_pmem{p_mem:g}"
    return {"standard": f"standard_p{p_gen:g}", "fixed_sparse": f"sparse_keep{p_gen:g}"}[kind]


def parse_variant(name: str) -> dict:
    """variant name -> {kind, p_gen, p_mem} (memloc.dropout.DropoutConfig without the seed)."""
    patterns = {
        "example_tied": r"tied_pgen([\d.]+)_pmem([\d.]+)",
        "standard": r"standard_p([\d.]+)",
        "fixed_sparse": r"sparse_keep([\d.]+)",
    }
    for kind, pattern in patterns.items():
        m = re.fullmatch(pattern, name)
        if m:
            p_gen, p_mem = float(m.group(1)), float(m.group(2)) if m.lastindex == 2 else 0.0
            return {"kind": kind, "p_gen": p_gen, "p_mem": p_mem}
    raise ValueError(f"not a dropout variant: {name!r}")


def _run(dataset: str, noise: float, kind: str, p_gen: float, p_mem: float, seed: int) -> dict:
    return {"dataset": dataset, "model": MODEL, "noise": float(noise), "variant": variant_name(kind, p_gen, p_mem),
            "method": kind, "p_gen": float(p_gen), "p_mem": float(p_mem), "seed": int(seed)}


def run_dir(run: dict) -> str:
    return RUN_DIR.format(**{**run, "noise": noise_label(run["noise"])})


def data_table(run: dict) -> str:
    """The corrupted training set a run trains on (rule corrupt_data)."""
    return f"results/data/{run['dataset']}/noise{noise_label(run['noise'])}.parquet"


def fig07_run(config: dict) -> dict:
    """fig07 shows the tab1 run of the first dataset."""
    return table_runs(config, "tab1")[0]


def fig07_title(run: dict) -> str:
    return (f"Clean training examples wrong after dropping the memorization units\n"
            f"ResNet-9, {DATASET_TITLES.get(run['dataset'], run['dataset'])}, {run['noise']:.0%} noise, "
            f"example-tied dropout (p_gen = {run['p_gen']:g}, p_mem = {run['p_mem']:g})")


def table_runs(config: dict, table: str) -> list[dict]:
    """The runs behind tab1 / tab2 / tab3 (run dicts: path keys plus method, p_gen, p_mem)."""
    d = config["dropout"]
    first = d["datasets"][0]
    tied = ("example_tied", d["p_gen"], d["p_mem"])
    if table == "tab1":
        cells = [(ds, *tied) for ds in d["datasets"]]
    elif table == "tab2":
        cells = [(first, "example_tied", g, m) for m in d["grid"]["p_mem"] for g in d["grid"]["p_gen"]]
    elif table == "tab3":
        cells = [(first, "standard", d["p_gen"], 0.0), (first, "fixed_sparse", d["p_gen"], 0.0), (first, *tied)]
    else:
        raise ValueError(f"unknown table {table!r}")
    return [_run(ds, d["noise"], kind, g, m, s) for ds, kind, g, m in cells for s in d["seeds"]]


def dropout_runs(config: dict) -> list[dict]:
    """Every run of the study, once."""
    runs = [r for t in ("tab1", "tab2", "tab3") for r in table_runs(config, t)]
    return list({run_dir(r): r for r in runs}.values())


def train_settings(config: dict, seed: int) -> dict:
    """memloc.core.training.TrainConfig settings of a dropout run: the shared ones, the study's
    epochs, and no gradient accounting (nothing reads it; it costs ~40% of a run)."""
    epochs = config["dropout"]["epochs"] or config["train"]["epochs"]
    return {**config["train"], "epochs": epochs, "seed": seed, "gradient_accounting": False}


def model_dropout(variant: str, seed: int) -> dict:
    """ModelConfig.extra of a run: the dropout, its units chosen from the training seed."""
    return {"dropout": {**parse_variant(variant), "seed": seed}}


def our_setting(config: dict, dataset: str) -> str:
    """Dataset / model / scale of our runs, for the paper-vs-ours rows."""
    d = config["dropout"]
    n = config["train_subset"]
    width = config["model_settings"].get(MODEL, {}).get("width", 1.0)
    size = f"{n:,}-example subset" if n else "full training set"
    seeds = len(d["seeds"])
    return (f"{DATASET_TITLES.get(dataset, dataset)} ({size}), ResNet-9 width {width:g}, {d['noise']:.0%} noise, "
            f"{d['epochs'] or config['train']['epochs']} epochs, {seeds} seed{'s' if seeds > 1 else ''}")


# -- tables -----------------------------------------------------------------------------


def final_accuracy(metrics: pd.DataFrame) -> pd.DataFrame:
    """Last-epoch accuracy (percent) of every run and subset, averaged over seeds."""
    last = metrics[metrics["epoch"] == metrics.groupby(["variant", "dataset", "seed"])["epoch"].transform("max")]
    keys = ["dataset", "model", "noise", "variant", "method", "p_gen", "p_mem", "subset"]
    out = last.groupby(keys, as_index=False).agg(accuracy=("accuracy", "mean"), seeds=("seed", "nunique"))
    out["accuracy"] *= 100
    return out


def _accuracy(final: pd.DataFrame, run: dict, subset: str) -> float:
    same_run = (final["variant"] == run["variant"]) & (final["dataset"] == run["dataset"])
    rows = final[same_run & (final["subset"] == subset)]
    if rows.empty:
        raise ValueError(f"no {subset!r} accuracy of run {run} in the dropout metrics table")
    return float(rows["accuracy"].iloc[0])


def tab1(final: pd.DataFrame, runs: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long table, display table): clean / noisy / test accuracy before and after dropping."""
    long = [
        {"dataset": r["dataset"], "p_gen": r["p_gen"], "p_mem": r["p_mem"], "when": when, "subset": s,
         "accuracy": _accuracy(final, r, s + suffix)}
        for r in {r["dataset"]: r for r in runs}.values()
        for when, suffix in (("before", ""), ("after", "/drop")) for s in ("clean", "noisy", "test")
    ]
    long = pd.DataFrame(long)
    wide = long.pivot_table(index="dataset", columns=["when", "subset"], values="accuracy", sort=False)
    wide.columns = [f"{s} {w} dropping (%)" for w, s in wide.columns]
    wide = wide.reset_index()
    wide["dataset"] = wide["dataset"].map(lambda d: DATASET_TITLES.get(d, d))
    return long, wide


def tab2(final: pd.DataFrame, runs: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long, display): clean / noisy accuracy after dropping for each p_mem (rows) x p_gen."""
    cells = {(r["p_mem"], r["p_gen"]): r for r in runs}
    long = pd.DataFrame(
        [{"dataset": r["dataset"], "p_mem": pm, "p_gen": pg, "subset": s, "accuracy": _accuracy(final, r, s + "/drop")}
         for (pm, pg), r in cells.items() for s in ("clean", "noisy")]
    )
    acc = long.pivot_table(index=["p_mem", "p_gen"], columns="subset", values="accuracy")
    text = acc.apply(lambda row: f"{row['clean']:.1f}%, {row['noisy']:.1f}%", axis=1).unstack("p_gen")
    text.columns = [f"p_gen = {g:g}" for g in text.columns]
    wide = text.reset_index().rename(columns={"p_mem": "p_mem \\ clean, noisy after dropping"})
    return long, wide


def tab3(final: pd.DataFrame, runs: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long, display): clean / noisy training accuracy of the three methods (example-tied
    after dropping; the baselines have nothing to drop)."""
    rows = []
    for r in {r["method"]: r for r in runs}.values():
        suffix = "/drop" if r["method"] == "example_tied" else ""
        for s in ("clean", "noisy"):
            rows.append({"dataset": r["dataset"], "method": r["method"], "p_gen": r["p_gen"], "p_mem": r["p_mem"],
                         "subset": s, "accuracy": _accuracy(final, r, s + suffix)})
    long = pd.DataFrame(rows)
    wide = long.pivot_table(index=["method", "p_gen", "p_mem"], columns="subset", values="accuracy", sort=False)
    wide = wide.reset_index()
    wide.insert(0, "Method", [METHOD_TITLES[m].format(p_gen=g, p_mem=pm) for m, g, pm in
                              zip(wide["method"], wide["p_gen"], wide["p_mem"])])
    wide = wide.drop(columns=["method", "p_gen", "p_mem"]).rename(
        columns={"clean": "clean train accuracy (%)", "noisy": "noisy train accuracy (%)"})
    return long, wide


TABLES = {"tab1": tab1, "tab2": tab2, "tab3": tab3}


def write_table(table: str, metrics: str | os.PathLike, outputs: dict[str, str], runs: list[dict]) -> pd.DataFrame:
    """tab1 / tab2 / tab3 from the study's metrics table: outputs {parquet, csv, md}.

    The parquet holds the long table (one accuracy per row, percent), the CSV / Markdown
    the paper's layout."""
    final = final_accuracy(pd.read_parquet(metrics))
    long, wide = TABLES[table](final, runs)
    write_parquet(long, outputs["parquet"])
    save_table(wide, outputs["csv"], outputs["md"])
    return long


def paper_rows(tables: dict[str, str], out: str | os.PathLike, settings: dict[str, str]) -> pd.DataFrame:
    """Paper-vs-ours rows of tab1-tab3.  tables: {tab id: its long parquet}; settings:
    {dataset: our setting}.  A dataset the paper does not have (Fashion-MNIST) is set against
    the paper's CIFAR-10, its main setting; tab2 cells outside the paper's grid get no row."""
    rows = []
    t1 = pd.read_parquet(tables["tab1"])
    for (dataset, when, subset), acc in t1.set_index(["dataset", "when", "subset"])["accuracy"].items():
        ref = dataset if dataset in PAPER_TAB1 else "cifar10"
        paper = PAPER_TAB1[ref][when][("clean", "noisy", "test").index(subset)]
        rows.append(comparison_row("tab1", f"{subset} accuracy {when} dropping (%)", paper, acc,
                                   PAPER_SETTING.format(dataset=DATASET_TITLES[ref]) + ", p_gen 0.4, p_mem 0.2",
                                   settings[dataset]))
    t2 = pd.read_parquet(tables["tab2"])
    for (dataset, p_mem, p_gen, subset), acc in t2.set_index(["dataset", "p_mem", "p_gen", "subset"])["accuracy"].items():
        paper = PAPER_TAB2.get((round(p_mem, 2), round(p_gen, 2)))
        if paper is not None:
            rows.append(comparison_row("tab2", f"{subset} accuracy after dropping, p_gen {p_gen:g}, p_mem {p_mem:g} (%)",
                                       paper[("clean", "noisy").index(subset)], acc,
                                       PAPER_SETTING.format(dataset="CIFAR-10"), settings[dataset]))
    t3 = pd.read_parquet(tables["tab3"])
    for _, r in t3.iterrows():
        title = METHOD_TITLES[r["method"]].format(p_gen=r["p_gen"], p_mem=r["p_mem"])
        rows.append(comparison_row("tab3", f"{r['subset']} train accuracy, {title} (%)",
                                   PAPER_TAB3[r["method"]][("clean", "noisy").index(r["subset"])], r["accuracy"],
                                   PAPER_SETTING.format(dataset="CIFAR-10") + ", p = s = p_gen = 0.4, p_mem 0.2",
                                   settings[r["dataset"]]))
    return write_rows(rows, out)


# -- fig07 ------------------------------------------------------------------------------


def forgotten_examples(
    examples: str | os.PathLike, data_table: str | os.PathLike, out: str | os.PathLike,
    dataset: str, source: dict, max_images: int,
) -> pd.DataFrame:
    """fig07's table: clean training examples right before dropping and wrong after (last
    epoch), most confidently wrong first, with their pixels (uint8 bytes, C x H x W) so
    that the figure needs no dataset.  Columns: index, source_index, label, label_name,
    prediction, prediction_name, margin_drop, channels, height, width, image, forgotten
    (how many there are in all), clean (how many clean examples)."""
    ex = pd.read_parquet(examples)
    ex = ex[ex["epoch"] == ex["epoch"].max()].merge(pd.read_parquet(data_table), on="index", validate="1:1")
    clean = ex[~ex["is_noisy"]]
    lost = clean[clean["correct"] & ~clean["correct_drop"]].sort_values(["margin_drop", "index"])
    shown = lost.head(max_images)
    images = DataSource(**source).load(dataset, train=True).images[torch.tensor(shown["source_index"].to_numpy())]
    names = CLASS_NAMES.get(dataset, [str(c) for c in range(10)])
    table = pd.DataFrame({
        "index": shown["index"].to_numpy(),
        "source_index": shown["source_index"].to_numpy(),
        "label": shown["label"].to_numpy(),
        "label_name": [names[c] for c in shown["label"]],
        "prediction": shown["prediction_drop"].to_numpy(),
        "prediction_name": [names[c] for c in shown["prediction_drop"]],
        "margin_drop": shown["margin_drop"].to_numpy(),
        "channels": images.shape[1], "height": images.shape[2], "width": images.shape[3],
        "image": [img.numpy().tobytes() for img in images],
        "forgotten": len(lost), "clean": len(clean),
    })
    write_parquet(table, out)
    return table
