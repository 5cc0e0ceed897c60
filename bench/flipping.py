"""Benchmark: neuron flipping, the plain per-example loop vs memloc's batched implementation.

Both run on the same trained model and the same examples (N clean + N noisy training
examples of a run, drawn as the pipeline draws them) with the settings of the pipeline's
config (its `flipping` section: removals cap, noise copies and scale, population batch and
resampling, accuracy rows); the script checks that the two give the same removal counts
(and removed units), then prints the examples per second of each, their ratio, and the
ratio of their CPU times (steadier on a loaded machine: one thread each).  The reference
is `memloc.flipping.objective.flip_until_misclassified` (one example at a time, the whole
masked model per step, the noise-averaged population gradient recomputed at every step,
the model as given); the batched one is `memloc.flipping.batched.flip_examples`.  The
model is a run of the offline default: train it first
(`snakemake --cores 2 results/runs/fashion_mnist/resnet9/noise0.1/seed0/checkpoints.txt`).

    python bench/flipping.py [--config config.yaml] [--per-group 50] [--threads 1]
        [--resample-every K] [--accuracy-examples N] [--run ...] [--data ...]

With --row-cost it instead measures (memloc.flipping.budget) the saved-tensor bytes per row
of a masked forward + backward pass of the config's primary model at the preset's input
size (CIFAR-10 shapes for config/paper.yaml; the weights do not matter, so no run is
needed), and prints the rows per pass that a 24, 40 and 80 GB card would get:

    python bench/flipping.py --row-cost --config config/paper.yaml
"""

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from memloc.config import load_config
from memloc.core.data.builtin import DATASETS
from memloc.core.data.run_data import TrainingSet, training_set
from memloc.core.data.source import DataSource
from memloc.core.device import Compute, resolve_device, use
from memloc.core.models.build import ModelConfig, build_model
from memloc.core.train.checkpoints import model_from_checkpoint
from memloc.flipping.accuracy import accuracy_rows
from memloc.flipping.batched import flip_examples, folded_batchnorm
from memloc.flipping.budget import CUDA_SAFETY, GIB, budget_rows, row_cost
from memloc.flipping.jobs import select_examples
from memloc.flipping.objective import FlipConfig, FlippingProblem, flip_until_misclassified, results_frame
from memloc.flipping.plan import flip_settings
from memloc.flipping.units import candidate_units
from memloc.runs.plan import data_source, model_settings

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "config.yaml"), help="the flipping settings come from here")
    ap.add_argument("--run", default="results/runs/fashion_mnist/resnet9/noise0.1/seed0")
    ap.add_argument("--data", default="results/data/fashion_mnist/noise0.1.parquet")
    ap.add_argument("--dataset", default="fashion_mnist")
    ap.add_argument("--data-root", default="data")
    ap.add_argument("--per-group", type=int, default=50, help="clean and noisy examples each")
    ap.add_argument("--resample-every", type=int, help="override the config's resample_every")
    ap.add_argument("--accuracy-examples", type=int, help="override the config's accuracy_examples")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1, help="the pipeline runs flipping with one")
    ap.add_argument("--row-cost", action="store_true", help="measure the saved bytes per row instead (see above)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)  # as the workflow has it: validated (defaults filled in) and resolved
    use(Compute(config["precision"], config["compile"], config["deterministic"]))
    device = resolve_device(args.device)

    if args.row_cost:
        return report_row_cost(config, device)
    settings = flip_settings(config, 0)  # what the flip_shard jobs of seed 0 use
    if args.resample_every is not None:
        settings["resample_every"] = args.resample_every
    if args.accuracy_examples is not None:
        settings["accuracy_examples"] = args.accuracy_examples
    cfg = FlipConfig(**settings)

    manifest = Path(args.run) / "checkpoints.txt"
    if not manifest.exists():
        raise SystemExit(f"{manifest} missing: train the run first (snakemake --cores 2 {manifest})")
    model = model_from_checkpoint(manifest.read_text().split()[-1], device)
    for p in model.parameters():
        p.requires_grad_(False)
    table = pd.read_parquet(args.data)
    source = DataSource(**{**data_source(config), "root": args.data_root, "cache": None})
    data = training_set(table, source.load(args.dataset, train=True), "is_noisy")
    examples = select_examples(table, args.per_group, seed=0)["index"].tolist()
    eval_index = accuracy_rows(len(table), cfg.accuracy_examples, seed=0)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    start, cpu = time.perf_counter(), time.process_time()
    fast = results_frame(flip_examples(model, examples, data, cfg, device,
                                       eval_index=eval_index, progress=False))
    sync()
    t_fast, c_fast = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    ref = results_frame([flip_until_misclassified(model, i, data, cfg, device,
                                                  eval_index=eval_index) for i in examples])
    sync()
    t_ref, c_ref = time.perf_counter() - start, time.process_time() - cpu

    same_counts = (fast["removals"] == ref["removals"]).all()
    same_units = (fast["removed_units"].map(tuple) == ref["removed_units"].map(tuple)).all()
    if not same_counts:
        diff = fast["removals"] != ref["removals"]
        both = pd.DataFrame({"batched": fast[diff]["removals"], "reference": ref[diff]["removals"]})
        raise SystemExit(f"removal counts differ:\n{both}")
    n = len(examples)
    print(f"{n} examples ({args.per_group} clean + {args.per_group} noisy) of {args.run}, {device}, "
          f"{args.threads} threads")
    print(f"settings: {settings}, accuracy on {len(eval_index)} rows")
    print(f"mean removals {fast['removals'].mean():.2f} (max {fast['removals'].max()}); "
          f"counts agree: {same_counts}; units agree: {same_units}")
    print(f"reference (per example): {n / t_ref:8.2f} examples/s ({t_ref:.1f} s; CPU time {c_ref:.1f} s)")
    print(f"memloc (batched):        {n / t_fast:8.2f} examples/s ({t_fast:.1f} s; CPU time {c_fast:.1f} s)")
    print(f"ratio: {t_ref / t_fast:.1f}x (CPU time: {c_ref / c_fast:.1f}x; on a loaded machine the CPU-time ratio is "
          f"the steadier one)")


def report_row_cost(config: dict, device: torch.device) -> None:
    """Saved bytes per row of the primary model's masked pass (fp32, as flip_shard runs it),
    and the rows per pass on cards of 24, 40 and 80 GB (CUDA_SAFETY of it free)."""
    primary = config["primary"]
    name, channels, size = primary["model"], *DATASETS[primary["dataset"]][2:]
    model_cfg = ModelConfig.for_dataset(primary["dataset"], data_source(config), **model_settings(config, name))
    model = folded_batchnorm(build_model(model_cfg).to(device).eval().requires_grad_(False))
    units = candidate_units(model)
    cfg = FlipConfig(**flip_settings(config, 0))
    images = torch.randint(0, 256, (2, channels, size, size), dtype=torch.uint8)
    zeros = torch.zeros(2, dtype=torch.int64)
    start = time.perf_counter()
    cost = row_cost(FlippingProblem(model, units, TrainingSet(images, zeros, zeros.bool(), zeros), cfg, device,
                                    torch.float32))
    print(f"{name} on {primary['dataset']} ({channels}x{size}x{size}), {sum(u.size for u in units)} units, "
          f"fp32: {cost.per_row / 2**20:.3f} MiB saved per row, {cost.rest / 2**20:.1f} MiB fixed "
          f"(measured in {time.perf_counter() - start:.1f} s)")
    for card in (24, 40, 80):
        budget = int(card * 1e9 * CUDA_SAFETY)
        print(f"  {card} GB card ({budget / GIB:.1f} GiB budget): {budget_rows(cost, budget, cfg)} rows per pass "
              f"(max_rows {cfg.max_rows})")


if __name__ == "__main__":
    main()
