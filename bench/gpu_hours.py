"""Estimate: GPU hours per stage of a configuration (default: config/paper.yaml).

Counts the jobs the workflow plans (memloc's own planning functions), the images each job
passes through its model, and the model's forward FLOPs per image (torch's FlopCounterMode
on one image); converts FLOPs to hours at an assumed sustained throughput (--tflops).
A backward pass counts as two forwards.  Per job, in forward-pass equivalents:

  train          epochs x N x 5 (1 forward, 2 backward passes: gradient accounting)
                 + (epochs + 1) x (N + N_test) (per-example and test evaluation)
  train_dropout  epochs x N x 3 + (epochs + 1) x 2 (N + N_test) (with and without dropping)
  second_split   (epochs_first + epochs_second) x N/2 x 3 + evaluations of the split
  rewind_layers  layers x rewind epochs x (N + N_test) / 2  (each pass starts at the layer's stage)
  retrain_layer  epochs x (3 x clean N + N + N_test)
  flip_shard     per example: steps x (noise copies + population batch) x 3
                 + accuracy examples (steps: the paper's mean, ~10)

    python bench/gpu_hours.py [--config config/paper.yaml] [--tflops 40]

--tflops 40 is ~13% of an A100's dense bf16 peak, a conservative guess for these small
models with evaluation passes and Python overhead; divide the hours by (measured
img/s) / (the img/s printed for that throughput) once a GPU has been measured.
"""

import argparse
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from memloc.atypical.plan import atypical_runs
from memloc.config import load_config
from memloc.core.data import DATASETS
from memloc.core.models import ModelConfig, build_model
from memloc.dropout import plan as dropout_plan
from memloc.flipping import plan as flipping_study
from memloc.layers.plan import layer_names, layer_tables, retraining_runs, rewinding_runs
from memloc.runs.plan import gradient_runs, unique_runs

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"cifar10": (50_000, 10_000), "mnist": (60_000, 10_000), "fashion_mnist": (60_000, 10_000),
         "svhn": (73_257, 26_032)}
FLIP_STEPS = 10  # the paper's mean removals: 5.1 (noisy) and 15.7 (clean)


def forward_flops(config: dict, model: str, dataset: str) -> float:
    _, classes, channels, size = DATASETS[dataset]
    cfg = ModelConfig(name=model, num_classes=classes, in_channels=channels, image_size=size,
                      **config["model_settings"].get(model, {}))
    net = build_model(cfg).eval()
    with FlopCounterMode(display=False) as counter:  # not no_grad: its fused attention goes uncounted
        net(torch.zeros(1, channels, size, size))
    return counter.get_total_flops()


def sizes(config: dict, dataset: str) -> tuple[int, int]:
    n, n_test = SIZES[dataset]
    return config["train_subset"] or n, config["test_subset"] or n_test


def stage_passes(config: dict) -> dict[str, list[tuple[str, str, float]]]:
    """{stage: [(model, dataset, forward-pass equivalents of one job)]}."""
    e = config["train"]["epochs"]
    flip = config["flipping"]
    p = config["primary"]
    flip_runs = flipping_study.flip_runs(config)
    train_runs = unique_runs(gradient_runs(config) + rewinding_runs(config) + retraining_runs(config) + flip_runs
                             + atypical_runs(config))
    out: dict[str, list] = {s: [] for s in ("train", "train_dropout", "second_split", "rewind_layers",
                                             "retrain_layer", "flip_shard")}
    for r in train_runs:
        n, nt = sizes(config, r["dataset"])
        out["train"].append((r["model"], r["dataset"], e * n * 5 + (e + 1) * (n + nt)))
    for r in dropout_plan.dropout_runs(config):
        n, nt = sizes(config, r["dataset"])
        de = config["dropout"]["epochs"] or e
        out["train_dropout"].append((r["model"], r["dataset"], de * n * 3 + (de + 1) * 2 * (n + nt)))
    ss = config["detection"]["second_split"]
    for r in flip_runs:
        n, _ = sizes(config, r["dataset"])
        epochs = (ss["epochs_first"] or e) + (ss["epochs_second"] or e)
        out["second_split"].append((r["model"], r["dataset"], epochs * n / 2 * 4))
    rewind_epochs = len(config["rewinding"]["epochs"] or range(e + 1))
    for r in layer_tables(config, "rewinding")[1] + layer_tables(config, "atypical_rewinding")[1]:
        n, nt = sizes(config, r["dataset"])
        passes = len(layer_names(config, r["model"])) * rewind_epochs * (n + nt) / 2
        out["rewind_layers"].append((r["model"], r["dataset"], passes))
    re = config["retraining"]["epochs"]
    for r in layer_tables(config, "retraining")[1] + layer_tables(config, "atypical_retraining")[1]:  # one per layer
        n, nt = sizes(config, r["dataset"])
        out["retrain_layer"].append((r["model"], r["dataset"], re * (3 * (1 - r["noise"]) * n + n + nt)))
    n, _ = sizes(config, p["dataset"])
    per_example = FLIP_STEPS * (flip["noise_copies"] + flip["population_batch"]) * 3 + (flip["accuracy_examples"] or n)
    for _ in range(len(flip["seeds"]) * flip["shards"]):
        examples = 2 * flip["examples_per_group"] / flip["shards"]
        out["flip_shard"].append((p["model"], p["dataset"], examples * per_example))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "config" / "paper.yaml"))
    ap.add_argument("--tflops", type=float, default=40.0, help="sustained throughput assumed (TFLOP/s)")
    args = ap.parse_args()
    config = load_config(args.config)  # as the workflow has it: validated (defaults filled in) and resolved
    flops: dict[tuple[str, str], float] = {}
    total = 0.0
    print(f"{'stage':15s} {'jobs':>6s} {'PFLOP':>9s} {'GPU h':>8s}   (at {args.tflops:g} TFLOP/s)")
    for stage, jobs in stage_passes(config).items():
        pflop = 0.0
        for model, dataset, passes in jobs:
            key = (model, dataset)
            if key not in flops:
                flops[key] = forward_flops(config, model, dataset)
            pflop += passes * flops[key] / 1e15
        hours = pflop * 1e15 / (args.tflops * 1e12) / 3600
        total += hours
        print(f"{stage:15s} {len(jobs):6d} {pflop:9.0f} {hours:8.1f}")
    print(f"{'total':15s} {'':6s} {'':9s} {total:8.1f}")
    print("forward GFLOP per image:", ", ".join(f"{m}/{d} {f / 1e9:.2f}" for (m, d), f in sorted(flops.items())))
    for (m, d), f in sorted(flops.items()):
        print(f"  {m}/{d}: {args.tflops * 1e12 / (3 * f):,.0f} training img/s at {args.tflops:g} TFLOP/s")


if __name__ == "__main__":
    main()
