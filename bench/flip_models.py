"""Does averaging over more models make the flip count a detector?  The paper averages each
example's flip count over 30 independently trained models (Sec. 6.1); the fidelity grid
flipped on one.  Here the default config at a training-set size (one noise rate, 10%) is
trained with 8 seeds (or --models N) and the same examples are flipped on every model; the flip
count's and learning time's ROC AUC (both averaged per example over the models, as the auc table
does) are measured for K = 1, 2, 4, 8, ... models, over the disjoint groups of K seeds (mean and spread), and
judged with the claims table's criterion (flip count >= 0.75 and >= learning time's - 0.05);
beside them the ratio of mean removals noisy / clean ("fewer units": <= 0.5) over the same models.

    python3 bench/flip_models.py run 2000 5000          # 8 models per size, in <runs>/n<size>_w0.25_e20_models/
    python3 bench/flip_models.py run 5000 --models 16   # 16 (a rerun adds the missing seeds)
    python3 bench/flip_models.py summarize       # docs/fidelity/models.{csv,md}

The runs go through the real workflow (this checkout's Snakefile), restricted to the flipping
table and the runs' per-example tables; <runs> as bench/fidelity_grid.py's
(MEMLOC_FIDELITY_RUNS).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import yaml
from fidelity_grid import COMMON, OUT, ROOT, RUN_EXAMPLES, RUNS, flip_and_learning_scores, merged, run_workflow

from memloc.report.criteria import Setting
from memloc.report.example_criteria import flip_count_detects

SETTING = Setting("fashion_mnist", "resnet9", 0.1, (6, 8), ("clean", "noisy"))


def folder(size: int):
    return RUNS / f"n{size}_w0.25_e20_models"


def run(sizes: list[int], models: int) -> None:
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    seeds = list(range(models))
    for size in sizes:
        config = merged(merged(base, COMMON), {"train_subset": size, "seeds": seeds, "flipping": {"seeds": seeds}})
        folder(size).mkdir(parents=True, exist_ok=True)
        (folder(size) / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        targets = ["results/tables/flipping.parquet", *(RUN_EXAMPLES.format(seed=s) for s in seeds)]
        # outputs judged by their files' times only: a seed-0 run copied in from bench/fidelity_grid.py's
        # setting of this size (same config) is reused, not retrained
        run_workflow(folder(size), targets, "--rerun-triggers", "mtime")


def measures(scores: pd.DataFrame, seeds: list[int]) -> tuple[float, float, float, bool]:
    """(flip count's AUC, learning time's AUC, ratio of mean removals noisy / clean, whether
    "flip count detects" holds by the claims table's criterion) of the models `seeds`: scores
    averaged per example over them, as the auc table and the claims table average over the
    flipping seeds (the ratio over the (example, model) pairs predicted as labelled before any
    removal)."""
    from memloc.flipping.detection import roc_auc

    of = scores[scores["seed"].isin(seeds)]
    mean = of.groupby("index").agg(is_noisy=("is_noisy", "first"), flip=("flip", "mean"), learning=("learning", "mean"))
    correct = of[of["initially_correct"]].groupby("index").agg(is_noisy=("is_noisy", "first"),
                                                               removals=("flip", "mean"))
    by_group = -correct.groupby("is_noisy")["removals"].mean()
    return (roc_auc(mean["is_noisy"], mean["flip"]), roc_auc(mean["is_noisy"], mean["learning"]),
            by_group[True] / by_group[False], bool(flip_count_detects.judge(mean.reset_index(), SETTING).holds))


def summarize() -> pd.DataFrame:
    rows = []
    for size in (2000, 5000, 10000):
        flips = folder(size) / "results/tables/flipping.parquet"
        if not flips.exists():
            continue
        scores = flip_and_learning_scores(folder(size), pd.read_parquet(flips))
        seeds = sorted(scores["seed"].unique())
        for k in [k for k in (1, 2, 4, 8, 16, 32) if k <= len(seeds)]:
            groups = [seeds[i : i + k] for i in range(0, len(seeds) - k + 1, k)]
            aucs = np.array([measures(scores, g) for g in groups])  # [groups, (flip, learning, ratio, holds)]
            flip, learning, ratio, _ = aucs.mean(0)
            holds = aucs[:, 3].astype(bool)
            sd = aucs.std(0, ddof=1) if len(groups) > 1 else np.full(4, np.nan)
            rows.append({"examples": size, "models": k, "groups": len(groups),
                         "auc_flip_count": flip, "auc_flip_count_sd": sd[0],
                         "auc_learning_time": learning, "auc_learning_time_sd": sd[1],
                         "difference": flip - learning, "criterion_holds": f"{int(holds.sum())} of {len(groups)}",
                         "ratio_removals": ratio})
    table = pd.DataFrame(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    table.to_csv(OUT / "models.csv", index=False)
    (OUT / "models.md").write_text(table.to_markdown(index=False, floatfmt=".3f") + "\n")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "summarize"])
    parser.add_argument("sizes", nargs="*", type=int, help="training-set sizes to run")
    parser.add_argument("--models", type=int, default=8, help="training seeds per size (default 8)")
    args = parser.parse_args()
    summarize() if args.command == "summarize" else run(args.sizes, args.models)
