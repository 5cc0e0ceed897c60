"""Does the candidate set decide fig05 and its claims?  Neuron flipping on one trained run with
three candidate sets, on the same examples and settings:

* channels   memloc's (the pipeline's): conv blocks' output channels after BN + ReLU, and the
             classifier's single weights (the flip_shard table of seed 0, recomputed here);
* no_classifier  the same without the classifier's weights (memloc.flipping.objective's
             reference loop over the other units);
* parameters the authors' released code: every conv filter, every BatchNorm scale and shift,
             every Linear weight and bias, scored by weight x gradient
             (memloc.flipping.parameters).

For each it writes the per-example results and one summary row: mean removals noisy / clean
and their ratio, the flip count's AUC beside learning time's (same examples), post-removal
accuracy, the layers holding 80% of each group's removals, the total variation between the
groups' layer distributions, and the verdicts of the claims table's flipping claims.

    python3 bench/flip_candidates.py results/fidelity/n2000_w0.25_e20 [--per-group 100] [--sets ...]

The folder is a setting of bench/fidelity_grid.py (its config.yaml and results/); the
summary is appended to docs/fidelity/candidates.csv (one row per folder and set, replaced on
a rerun) and docs/fidelity/candidates.md.
"""

import argparse
import time
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from memloc.config import load_config
from memloc.core.data.run_data import training_set
from memloc.core.data.source import DataSource
from memloc.core.device import Compute, use
from memloc.core.train.checkpoints import model_from_checkpoint
from memloc.flipping.accuracy import accuracy_rows
from memloc.flipping.batched import flip_examples
from memloc.flipping.jobs import select_examples
from memloc.flipping.objective import FlipConfig, flip_until_misclassified, results_frame
from memloc.flipping.parameters import flip_parameters_until_misclassified
from memloc.flipping.plan import flip_settings
from memloc.flipping.units import candidate_units
from memloc.report.claims import CLAIMS, evaluate_claim
from memloc.report.criteria import Setting
from memloc.report.example_criteria import layer_shares, layers_holding, removal_layer_examples, roc_auc
from memloc.runs.plan import data_source

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "fidelity"
RUN = {"dataset": "fashion_mnist", "model": "resnet9", "noise": 0.1, "seed": 0}
SETTING = Setting("fashion_mnist", "resnet9", 0.1, (0, 1), ("clean", "noisy"))
FLIP_CLAIMS = ("fewer units", "post-removal accuracy", "critical neurons scattered")


def flip(kind: str, model, examples, data, cfg, eval_index) -> pd.DataFrame:
    cpu = torch.device("cpu")
    if kind == "channels":
        return results_frame(flip_examples(model, examples, data, cfg, cpu, eval_index=eval_index, progress=True))
    if kind == "no_classifier":
        units = candidate_units(model)
        assert units[-1].kind == "weight", "the last candidates are the classifier's weights"
        return results_frame([flip_until_misclassified(model, i, data, cfg, cpu, eval_index, units[:-1])
                              for i in tqdm(examples, desc=kind)])
    return results_frame([flip_parameters_until_misclassified(model, i, data, cfg, cpu, eval_index)
                          for i in tqdm(examples, desc=kind)])


def summary(folder: Path, kind: str, flips: pd.DataFrame, seconds: float) -> dict:
    t = {"flipping": flips}
    ex = flips[flips["initially_correct"]]
    noisy, clean = ex.loc[ex.is_noisy, "removals"].mean(), ex.loc[~ex.is_noisy, "removals"].mean()
    scores = pd.read_parquet(folder / "results/tables/detection_scores.parquet")
    scores = scores[scores["seed"] == 0].set_index("index").loc[ex["index"]]
    layers = removal_layer_examples(t, SETTING)
    shares = {g: layer_shares(layers, g) for g in (True, False)}
    row = {"setting": folder.name, "candidates": kind, "examples": len(flips), "removals_noisy": noisy,
           "removals_clean": clean, "ratio": noisy / clean,
           "auc_flip_count": roc_auc(ex["is_noisy"].to_numpy(), -ex["removals"].to_numpy()),
           "auc_learning_time": roc_auc(ex["is_noisy"].to_numpy(), scores["learning time"].to_numpy()),
           "post_removal_noisy": ex.loc[ex.is_noisy & ~ex.censored, "accuracy_train"].mean(),
           "post_removal_clean": ex.loc[~ex.is_noisy & ~ex.censored, "accuracy_train"].mean(),
           "censored": int(ex["censored"].sum()),
           "layers80_noisy": layers_holding(shares[True]), "layers80_clean": layers_holding(shares[False]),
           "top_noisy": ", ".join(f"{k} {v:.0%}" for k, v in shares[True].nlargest(3).items()),
           "top_clean": ", ".join(f"{k} {v:.0%}" for k, v in shares[False].nlargest(3).items()),
           "tv": float(0.5 * (shares[True] - shares[False]).abs().sum()), "seconds_per_example": seconds}
    for claim in CLAIMS:
        if claim.name in FLIP_CLAIMS:
            row[claim.name] = evaluate_claim(claim, t, SETTING, 1000)["verdict"]
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--per-group", type=int, help="default: the setting's flipping.examples_per_group")
    ap.add_argument("--sets", nargs="+", default=["channels", "no_classifier", "parameters"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    config = load_config(str(args.folder / "config.yaml"))
    use(Compute("fp32", False, True))
    cfg = FlipConfig(**flip_settings(config, 0))
    run = args.folder / "results/runs/fashion_mnist/resnet9/noise0.1/seed0"
    model = model_from_checkpoint(args.folder / (run / "checkpoints.txt").read_text().split()[-1], torch.device("cpu"))
    table = pd.read_parquet(args.folder / "results/data/fashion_mnist/noise0.1.parquet")
    source = DataSource(**{**data_source(config), "root": "data", "cache": None})
    data = training_set(table, source.load("fashion_mnist", train=True), "is_noisy")
    per_group = args.per_group or config["flipping"]["examples_per_group"]
    chosen = select_examples(table, per_group, seed=config["flipping"]["selection_seed"])
    examples = chosen["index"].tolist()
    eval_index = accuracy_rows(len(table), cfg.accuracy_examples, seed=0)
    rows = []
    for kind in args.sets:
        for p in model.parameters():  # the parameter search differentiates the weights, the others the masks
            p.requires_grad_(kind == "parameters")
        saved = args.folder / f"flips_{kind}_{per_group}.parquet"  # a rerun summarizes what was flipped before
        if saved.exists():
            flips, seconds = pd.read_parquet(saved), float("nan")
        else:
            start = time.process_time()
            flips = flip(kind, model, examples, data, cfg, eval_index)
            seconds = (time.process_time() - start) / len(examples)
            flips = flips.merge(chosen[["index", "is_noisy"]], on="index").assign(**RUN)
            flips.to_parquet(saved)
        OUT.mkdir(parents=True, exist_ok=True)
        rows.append(summary(args.folder, kind, flips, seconds))
        print(pd.DataFrame(rows[-1:]).T.to_string(), flush=True)
    csv = OUT / "candidates.csv"
    old = pd.read_csv(csv) if csv.exists() else pd.DataFrame()
    new = pd.DataFrame(rows)
    if len(old):
        old = old[~(old["setting"].isin(new["setting"]) & old["candidates"].isin(new["candidates"]))]
    both = pd.concat([old, new], ignore_index=True)
    both.to_csv(csv, index=False)
    (OUT / "candidates.md").write_text(both.to_markdown(index=False, floatfmt=".3g") + "\n")


if __name__ == "__main__":
    main()
