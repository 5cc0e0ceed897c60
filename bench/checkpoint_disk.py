"""Estimate: disk used by the training checkpoints of a configuration (default: config/paper.yaml),
with slim checkpoints (memloc.core.train.run: the optimizer, scheduler and RNG states for the
latest epoch only) against a full checkpoint every epoch (before).

Counts the trainings the workflow plans (memloc's own planning functions): the runs, the
example-tied dropout runs, second-split detection's first trainings and the hold-out C-score
models.  Per training, (epochs + 1) checkpoints of the model's state (fp32 parameters and
buffers, sized on the meta device: nothing is allocated) plus the per-example records (bool +
2 float32 per example, twice with example-tied dropout); SGD's state is one momentum buffer
per parameter, plus the RNG states.

    python bench/checkpoint_disk.py [--config config/paper.yaml]
"""

import argparse
from collections import defaultdict
from pathlib import Path

import torch

from memloc.atypical.plan import atypical_runs, holdout_parts
from memloc.config import load_config
from memloc.core.models.build import ModelConfig, build_model
from memloc.dropout import plan as dropout_plan
from memloc.flipping import plan as flipping_study
from memloc.layers.plan import retraining_runs, rewinding_runs
from memloc.runs.plan import data_source, gradient_runs, model_settings, unique_runs

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"cifar10": 50_000, "mnist": 60_000, "fashion_mnist": 60_000, "svhn": 73_257}
RECORD_BYTES = 1 + 4 + 4  # correct, loss, margin per example and epoch
RNG_BYTES = 5_056 + 16  # torch's CPU generator state + the data order's (CUDA's: a few KB more per GPU)


def state_bytes(config: dict, model: str, dataset: str) -> tuple[int, int]:
    """(bytes of the model's state_dict, bytes of its parameters = SGD's momentum)."""
    cfg = ModelConfig.for_dataset(dataset, data_source(config), **model_settings(config, model))
    with torch.device("meta"):
        net = build_model(cfg)
    state = sum(t.numel() * t.element_size() for t in net.state_dict().values())
    return state, sum(p.numel() * p.element_size() for p in net.parameters())


def trainings(config: dict) -> dict[str, list[tuple[str, str, int, int, int]]]:
    """{kind: [(model, dataset, epochs, training examples, record sets)]}."""
    e = config["train"]["epochs"]
    n = lambda d: config["train_subset"] or SIZES[d]  # noqa: E731
    flip_runs = flipping_study.flip_runs(config)
    runs = unique_runs(gradient_runs(config) + rewinding_runs(config) + retraining_runs(config) + flip_runs
                       + atypical_runs(config))
    out = defaultdict(list)
    out["train"] = [(r["model"], r["dataset"], e, n(r["dataset"]), 1) for r in runs]
    out["train_dropout"] = [(r["model"], r["dataset"], dropout_plan.run_epochs(config, r["dropout"]),
                             n(r["dataset"]), 2) for r in dropout_plan.dropout_runs(config)]
    first = config["detection"]["second_split"]["epochs_first"] or e
    out["second_split"] = [(r["model"], r["dataset"], first, n(r["dataset"]) // 2, 1) for r in flip_runs]
    holdout = config["atypical"]["holdout"]
    model = config["primary"]["model"]
    for d in config["atypical"]["datasets"]:
        out["holdout_model"] += [(model, d, e, int(n(d) * holdout["fraction"]), 1)] * len(holdout_parts(config, d))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "config" / "paper.yaml"))
    args = ap.parse_args()
    config = load_config(args.config)
    sizes: dict[tuple[str, str], tuple[int, int]] = {}
    totals = {"before": 0.0, "after": 0.0}
    print(f"{'training':14s} {'jobs':>5s} {'GB before':>10s} {'GB after':>9s}   (full every epoch / slim + resume.pt)")
    for kind, jobs in trainings(config).items():
        before = after = 0
        for model, dataset, epochs, examples, record_sets in jobs:
            if (model, dataset) not in sizes:
                sizes[model, dataset] = state_bytes(config, model, dataset)
            state, momentum = sizes[model, dataset]
            epoch_file = state + examples * RECORD_BYTES * record_sets
            before += (epochs + 1) * (epoch_file + momentum + RNG_BYTES)
            after += (epochs + 1) * epoch_file + momentum + RNG_BYTES
        totals["before"] += before / 1e9
        totals["after"] += after / 1e9
        print(f"{kind:14s} {len(jobs):5d} {before / 1e9:10.1f} {after / 1e9:9.1f}")
    print(f"{'total':14s} {'':5s} {totals['before']:10.1f} {totals['after']:9.1f}")
    for (m, d), (state, momentum) in sorted(sizes.items()):
        print(f"  {m}/{d}: state {state / 1e6:.1f} MB, momentum {momentum / 1e6:.1f} MB per checkpoint")


if __name__ == "__main__":
    main()
