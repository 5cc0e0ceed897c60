"""Benchmark: neuron flipping, the plain per-example loop vs memloc's batched implementation.

Both run on the same trained model and the same examples (N clean + N noisy training
examples of a run, drawn as the pipeline draws them) with the same settings; the script
checks that the two give the same removal counts (and removed units), then prints the
examples per second of each and their ratio.  The reference is
`memloc.flipping.flip_until_misclassified` (one example at a time, the whole masked model
per step); the batched one is `memloc.flipping.flip_examples`.

    python bench/flipping.py [--run results/runs/fashion_mnist/resnet9/noise0.1/seed0]
        [--data results/data/fashion_mnist/noise0.1.parquet] [--per-group 50]
        [--population-batch 64] [--accuracy-examples 500] [--threads 2]
"""

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from memloc.data import DataSource, training_set
from memloc.evaluation import resolve_device
from memloc.flipping import FlipConfig, flip_examples, flip_until_misclassified, results_frame
from memloc.flipping_jobs import accuracy_rows, select_examples
from memloc.training import model_from_checkpoint


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="results/runs/fashion_mnist/resnet9/noise0.1/seed0")
    ap.add_argument("--data", default="results/data/fashion_mnist/noise0.1.parquet")
    ap.add_argument("--dataset", default="fashion_mnist")
    ap.add_argument("--data-root", default="data")
    ap.add_argument("--per-group", type=int, default=50, help="clean and noisy examples each")
    ap.add_argument("--max-removals", type=int, default=50)
    ap.add_argument("--population-batch", type=int, default=64)
    ap.add_argument("--accuracy-examples", type=int, default=500, help="training rows of the post-removal accuracy")
    ap.add_argument("--examples-per-batch", type=int, default=32)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)

    manifest = Path(args.run) / "checkpoints.txt"
    if not manifest.exists():
        raise SystemExit(f"{manifest} missing: train the run first (snakemake {manifest})")
    model = model_from_checkpoint(manifest.read_text().split()[-1], device)
    for p in model.parameters():
        p.requires_grad_(False)
    table = pd.read_parquet(args.data)
    data = training_set(table, DataSource(args.data_root).load(args.dataset, train=True))
    examples = select_examples(table, args.per_group, seed=0)["index"].tolist()
    cfg = FlipConfig(max_removals=args.max_removals, population_batch=args.population_batch,
                     examples_per_batch=args.examples_per_batch)
    eval_index = accuracy_rows(len(table), args.accuracy_examples, seed=0)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    start = time.perf_counter()
    fast = results_frame(flip_examples(model, examples, data.images, data.labels, data.group, cfg, device,
                                       eval_index=eval_index, progress=False))
    sync()
    t_fast = time.perf_counter() - start
    start = time.perf_counter()
    ref = results_frame([flip_until_misclassified(model, i, data.images, data.labels, data.group, cfg, device,
                                                  eval_index=eval_index) for i in examples])
    sync()
    t_ref = time.perf_counter() - start

    same_counts = (fast["removals"] == ref["removals"]).all()
    same_units = (fast["removed_units"].map(tuple) == ref["removed_units"].map(tuple)).all()
    if not same_counts:
        diff = fast["removals"] != ref["removals"]
        raise SystemExit(f"removal counts differ:\n{pd.DataFrame({'batched': fast[diff]['removals'], 'reference': ref[diff]['removals']})}")
    n = len(examples)
    print(f"{n} examples ({args.per_group} clean + {args.per_group} noisy), {device}, {args.threads} threads; "
          f"mean removals {fast['removals'].mean():.2f}; counts agree: {same_counts}; units agree: {same_units}")
    print(f"reference (per example): {n / t_ref:8.2f} examples/s ({t_ref:.1f} s)")
    print(f"memloc (batched):        {n / t_fast:8.2f} examples/s ({t_fast:.1f} s)")
    print(f"ratio: {t_ref / t_fast:.1f}x")


if __name__ == "__main__":
    main()
