"""Which scale brings out the neuron-level claims?  Targeted runs of the default config
(Fashion-MNIST, ResNet-9, 10% noise, seed 0) at other training-set sizes, widths and epochs:
training, neuron flipping + detection (fig05, auc), the tab1 example-tied dropout run, and a
two-model hold-out (complementary halves, noise-free labels) that says which clean training
examples a model that never saw them gets wrong ("clean but not generalized"); some settings
make only part of it (PARTIAL: flipping alone, or the layer experiments).

    python3 bench/fidelity_grid.py run [SETTING ...]   # snakemake per setting, in results/fidelity/<setting>/
    python3 bench/fidelity_grid.py summarize           # docs/fidelity/grid.{csv,md} + grid.png, baselines.{csv,md}

The BASELINES settings train only tab3's standard-dropout model (p = 0.4 after every stage, as
the authors' ResNet9_dropout), the one baseline that does not memorize at the default scale:
its final clean / noisy / test accuracy against the width and the epochs.

Each setting is a folder with its merged config.yaml; the run is the real workflow (this
checkout's Snakefile, `--directory` the setting's folder), restricted to the tables below, so
a rerun resumes and an unchanged setting is not recomputed.  Claims are judged with the
claims table's own criteria (memloc.report.claims) on the tables the setting produced.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
RUNS = Path(os.environ.get("MEMLOC_FIDELITY_RUNS", ROOT / "results" / "fidelity"))
OUT = ROOT / "docs" / "fidelity"

# name -> overlay of config.yaml (train.epochs applies to the tied dropout run too)
SETTINGS = {
    "n2000_w0.25_e20": {},
    "n5000_w0.25_e20": {"train_subset": 5000},
    "n10000_w0.25_e20": {"train_subset": 10000},
    "n2000_w1_e20": {"model_settings": {"resnet9": {"width": 1.0}}},
    # training-time augmentation (random crops of the 4-pixel padded image + flips, as the authors'
    # neuron-flipping script trains its models), training only; fig01's window scaled with the epochs
    "n2000_w0.25_e40_aug": {"train": {"epochs": 40, "peak_epoch": 12, "augment": {"crop_padding": 4, "hflip": True}},
                            "figures": {"fig01": {"epochs": [12, 16]}}},
    # the whole training split (60,000 images), training and flipping only (threads 2)
    "n60000_w0.25_e20": {"train_subset": None, "threads": 2},
    # that training (crops + flips) at the paper's width and 50 epochs (peak at 30%, as the
    # default's), training and flipping only (threads 2: the training runs alone)
    "n2000_w1_e50_aug": {"model_settings": {"resnet9": {"width": 1.0}}, "threads": 2,
                         "train": {"epochs": 50, "peak_epoch": 15, "augment": {"crop_padding": 4, "hflip": True}},
                         "figures": {"fig01": {"epochs": [15, 20]}}},
    # the layer claims (rewinding, retraining) at config/size5000.yaml's size and epochs, width 0.5:
    # the one lever of "retraining restores" measured (at 2,000 images), tried at 5,000
    "n5000_w0.5_e30": {"train_subset": 5000, "model_settings": {"resnet9": {"width": 0.5}},
                       "train": {"epochs": 30, "peak_epoch": 9}, "figures": {"fig01": {"epochs": [9, 12]}}},
}
# settings that make only some of TABLES (the rest of their row stays empty)
PARTIAL = {"n2000_w1_e20": ["flipping"], "n2000_w1_e50_aug": ["flipping", "metrics"],
           "n2000_w0.25_e40_aug": ["metrics"], "n60000_w0.25_e20": ["flipping", "metrics"],
           "n5000_w0.5_e30": ["rewinding", "retraining", "metrics"]}
# What every setting runs: one seed, one noise rate, the tab1 dropout cell, two hold-out halves.
COMMON = {
    "noise_rates": [0.1], "seeds": [0],
    "flipping": {"seeds": [0], "accuracy_examples": 2000},
    "dropout": {"grid": {"p_gen": [0.4], "p_mem": [0.2]}},
    "figures": {"fig11": {"noise_rates": [0.1], "seeds": [0]}},
    "atypical": {"holdout": {"models": 2, "fraction": 0.5, "seed": 0}},
}
# name -> overlay: tab3's standard-dropout run alone (threads 2: one job at a time)
BASELINES = {
    "standard_w0.25_e20": {},
    "standard_w0.5_e20": {"model_settings": {"resnet9": {"width": 0.5}}},
    "standard_w1_e20": {"model_settings": {"resnet9": {"width": 1.0}}},
    "standard_w1_e50": {"model_settings": {"resnet9": {"width": 1.0}}, "train": {"epochs": 50, "peak_epoch": 15}},
    "standard_w0.25_e50": {"train": {"epochs": 50, "peak_epoch": 15}},
    "standard_w0.5_e50": {"model_settings": {"resnet9": {"width": 0.5}}, "train": {"epochs": 50, "peak_epoch": 15}},
    "standard_w0.25_e100": {"train": {"epochs": 100, "peak_epoch": 30}},
    "standard_w0.25_e200": {"train": {"epochs": 200, "peak_epoch": 60}},
}
RUN_EXAMPLES = "results/runs/fashion_mnist/resnet9/noise0.1/seed{seed}/examples.parquet"
BASELINE_RUN = "results/dropout/runs/fashion_mnist/resnet9/noise0.1/standard_p0.4/seed0"
TABLES = ["flipping", "detection_scores", "tab1", "tab3", "metrics"]
TARGETS = [f"results/tables/{t}.parquet" for t in TABLES] + [
    f"results/cscores/fashion_mnist/holdout{k}.parquet" for k in range(2)]


def merged(base: dict, overlay: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in overlay.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def run(names: list[str]) -> None:
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    unknown = [n for n in names if n not in SETTINGS and n not in BASELINES]
    if unknown:
        sys.exit(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join([*SETTINGS, *BASELINES])}")
    for name in names or list(SETTINGS):
        folder = RUNS / name
        folder.mkdir(parents=True, exist_ok=True)
        if name in BASELINES:
            config = merged(merged(base, COMMON), {"threads": 2, **BASELINES[name]})
            targets = [f"{BASELINE_RUN}/metrics.parquet"]
        else:
            config = merged(merged(base, COMMON), SETTINGS[name])
            targets = [f"results/tables/{t}.parquet" for t in PARTIAL[name]] if name in PARTIAL else TARGETS
        (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        run_workflow(folder, targets)


def run_workflow(folder: Path, targets: list[str], *options: str) -> None:
    """This checkout's Snakefile in `folder` (its config.yaml), on 2 cores, for `targets`."""
    cmd = ["snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(folder), "--cores", "2",
           "--rerun-incomplete", *options, "--", *targets]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def clean_heldout_error(folder: Path) -> float:
    """Share of the clean training examples (of the noisy set) that the hold-out model not
    trained on them misclassifies."""
    parts = pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("results/cscores/*/holdout*.parquet"))])
    data = pd.read_parquet(folder / "results/data/fashion_mnist/noise0.1.parquet")
    held = parts[~parts["in_subset"]].groupby("index")["correct"].mean()
    clean = data.loc[~data["is_noisy"], "index"]
    return float(1.0 - held.reindex(clean).mean())


def flip_and_learning_scores(folder: Path, flipping: pd.DataFrame) -> pd.DataFrame:
    """One row per (flipped example, flipping seed): seed, index, is_noisy, initially_correct, flip
    (minus the removals, 0 where the model got it wrong already) and learning (learning time, from
    the seed's run records), as the auc table scores them (memloc.flipping.detection)."""
    from memloc.flipping.detection import learning_time

    rows = []
    for seed, f in flipping[flipping["noise"] == 0.1].groupby("seed"):
        lt = learning_time(pd.read_parquet(folder / RUN_EXAMPLES.format(seed=seed)))
        rows.append(pd.DataFrame({"seed": seed, "index": f["index"].to_numpy(), "is_noisy": f["is_noisy"].to_numpy(),
                                  "initially_correct": f["initially_correct"].to_numpy(),
                                  "flip": -f["removals"].to_numpy(dtype=float),
                                  "learning": lt.reindex(f["index"]).to_numpy(dtype=float)}))
    return pd.concat(rows, ignore_index=True)


def summarize() -> pd.DataFrame:
    from memloc.report.claims import CLAIMS, evaluate_claim
    from memloc.report.criteria import Setting
    from memloc.report.example_criteria import flipped_scores, initially_correct_examples, roc_auc

    rows = []
    for name in SETTINGS:
        folder = RUNS / name
        tables = {n: folder / f"results/tables/{n}.parquet" for n in PARTIAL.get(name, TABLES)}
        if not all(p.exists() for p in tables.values()):
            continue  # not run (or not finished)
        t = {n: pd.read_parquet(p) for n, p in tables.items()}
        window = tuple(yaml.safe_load((folder / "config.yaml").read_text())["figures"]["fig01"]["epochs"])
        s = Setting("fashion_mnist", "resnet9", 0.1, window, ("clean", "noisy"))
        row = {"setting": name}
        if "flipping" in t:
            ex = initially_correct_examples(t, s)
            noisy, clean = ex.loc[ex.is_noisy, "removals"].mean(), ex.loc[~ex.is_noisy, "removals"].mean()
            row.update({"removals_noisy": noisy, "removals_clean": clean, "ratio": noisy / clean})
            if "detection_scores" in t:
                sc = flipped_scores(t, s)
            else:  # a training + flipping setting: the same two scores from the run's per-example records
                sc = flip_and_learning_scores(folder, t["flipping"])
            row["auc_flip_count"] = roc_auc(sc.is_noisy.to_numpy(), sc.flip.to_numpy())
            row["auc_learning_time"] = roc_auc(sc.is_noisy.to_numpy(), sc.learning.to_numpy())
        if "metrics" in t:  # the run's final training and test accuracy, %
            m = t["metrics"][(t["metrics"]["noise"] == 0.1) & (t["metrics"]["seed"] == 0)]
            final = m[m["epoch"] == m["epoch"].max()].set_index("subset")["accuracy"]
            row.update({f"final_{k}": 100 * final[k] for k in ("clean", "noisy", "test")})
        if name not in PARTIAL:
            row["clean_heldout_error"] = clean_heldout_error(folder)
        for _, r in t.get("tab1", pd.DataFrame(columns=["subset", "when", "accuracy"])).iterrows():
            row[f"tied_{r['subset']}_{r['when']}"] = r["accuracy"]
        tab3 = t.get("tab3", pd.DataFrame(columns=["method", "subset", "accuracy"]))
        for _, r in tab3[tab3["method"] != "example_tied"].iterrows():
            row[f"{r['method']}_{r['subset']}"] = r["accuracy"]
        for claim in CLAIMS:
            if set(claim.needs) <= set(t):
                row[claim.name] = evaluate_claim(claim, t, s, 1000)["verdict"]
        rows.append(row)
    df = pd.DataFrame(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    df.to_csv(OUT / "grid.csv", index=False)
    (OUT / "grid.md").write_text(df.to_markdown(index=False, floatfmt=".3g") + "\n")
    plot(df)
    print(df.to_string())
    return df


def summarize_baselines() -> pd.DataFrame:
    """docs/fidelity/baselines.{csv,md}: the standard-dropout run's final accuracy (%, dropout
    off, as tab3) per BASELINES setting, with its SGD steps and its training job's CPU time."""
    rows, curves = [], {}
    for name in BASELINES:
        folder = RUNS / name
        metrics = folder / BASELINE_RUN / "metrics.parquet"
        if not metrics.exists():
            continue
        config = yaml.safe_load((folder / "config.yaml").read_text())
        m = pd.read_parquet(metrics)
        final = m[m["epoch"] == m["epoch"].max()].set_index("subset")["accuracy"]
        width = config["model_settings"]["resnet9"]["width"]
        curves[name] = (width, m[m["subset"] == "noisy"].sort_values("epoch"))
        bench = pd.read_csv(next((folder / "benchmarks/train_dropout").glob("*standard*.tsv")), sep="\t")
        n, epochs = config["train_subset"], config["train"]["epochs"]
        rows.append({"setting": name, "width": width, "epochs": epochs,
                     "sgd_steps": epochs * -(-n // config["train"]["batch_size"]),
                     **{k: 100 * final[k] for k in ("clean", "noisy", "test")},
                     "cpu_s": float(bench["cpu_time"].iloc[0])})
    df = pd.DataFrame(rows)
    df.to_csv(OUT / "baselines.csv", index=False)
    fmt = ("", "g", "g", "g", ".1f", ".1f", ".1f", ".0f")  # one per column
    (OUT / "baselines.md").write_text(df.to_markdown(index=False, floatfmt=fmt) + "\n")
    plot_baselines(curves)
    print(df.to_string())
    return df


def plot_baselines(curves: dict[str, tuple[float, pd.DataFrame]]) -> None:
    """docs/fidelity/baselines.png: the standard-dropout run's noisy training accuracy per epoch
    (dropout off), one line per BASELINES setting (name -> (width, its noisy metrics rows)):
    colour = width, x = epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {0.25: "tab:blue", 0.5: "tab:orange", 1.0: "tab:red"}
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, (width, noisy) in curves.items():
        ax.plot(noisy["epoch"], 100 * noisy["accuracy"], color=colours.get(width, "gray"), lw=1.2, label=name)
    ax.axhline(90, color="black", ls="--", lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("noisy training accuracy, %")
    ax.set_title("tab3's standard dropout (p = 0.4): noisy examples memorized (claim: >= 90%)", fontsize=8)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(OUT / "baselines.png", dpi=110)


def plot(df: pd.DataFrame) -> None:
    """docs/fidelity/grid.png: each failing neuron-level statistic per setting, with the
    criterion's threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("ratio", "removals noisy / clean (claim: <= 0.5)", 0.5),
              ("auc_flip_count", "AUC of the flip count (claim: >= 0.75)", 0.75),
              ("tied_clean_after", "tied dropout: clean % after dropping (claim: loses <= 15 of ~100)", 85),
              ("clean_heldout_error", "clean examples a held-out model gets wrong", None)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6))
    for ax, (col, title, threshold) in zip(axes, panels):
        ax.bar(range(len(df)), df[col], color="tab:blue")
        ax.set_xticks(range(len(df)), df["setting"], rotation=60, ha="right", fontsize=7)
        ax.set_title(title, fontsize=8)
        if threshold is not None:
            ax.axhline(threshold, color="black", ls="--", lw=1)
        for i in df.index[df[col].isna()]:  # a partial setting did not measure this
            ax.text(i, 0, "not run", rotation=90, ha="center", va="bottom", fontsize=7, color="gray")
    fig.tight_layout()
    fig.savefig(OUT / "grid.png", dpi=110)


if __name__ == "__main__":
    if sys.argv[1:2] == ["run"]:
        run(sys.argv[2:])
    elif sys.argv[1:2] == ["summarize"]:
        summarize()
        summarize_baselines()
    else:
        sys.exit(__doc__)
