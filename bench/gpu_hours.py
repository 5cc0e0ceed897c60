"""Estimate: GPU hours of a configuration (default: config/paper.yaml), per rule.

    python bench/gpu_hours.py [--config config/paper.yaml] [--tflops 40] [--startup-s 60]
    python bench/gpu_hours.py --measure-cpu   # start-up and CPU throughput, measured here

Jobs: the dry run of the configuration (`snakemake -n` in an empty directory: the jobs that
would run, groups and all).  Per GPU job:

  work      memloc.plan.resources.forward_passes (the images its model sees, in forward-pass
            equivalents: a backward pass = 2 forwards; the formulas per rule are there) x the
            model's forward FLOPs per image (torch's FlopCounterMode on one image, here), at a
            sustained --tflops
  start-up  one process per job (a group job runs its members one process each): python +
            torch + memloc imports, CUDA start, data and checkpoint loading, --startup-s

Rewinding assumes the stage split of memloc.layers.rewinding (ResNet-9's children, ResNet-50's
stem / blocks / head, the ViT's embedding / each block / head): a layer's passes start at its
stage from the cached input of that stage, half a forward on average; the line below the
table says what the ViT would cost without (every pass from the input).

--tflops 40 is ~13% of an A100's dense bf16 peak, a conservative guess for these small models
with evaluation passes and Python overhead (the img/s it implies is printed); once a GPU has
been measured, scale the hours by (implied img/s) / (measured img/s).  --startup-s 60: the
CPU start-up measured here (--measure-cpu) plus CUDA's start and a shared file system.
"""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from settings import model_config
from torch.utils.flop_counter import FlopCounterMode

from memloc.atlas.plan import atlas_run
from memloc.config import load_config
from memloc.core.models.build import ModelConfig, build_model
from memloc.plan import resources
from memloc.plan.batches import run_rule
from memloc.runs.plan import data_source, model_settings

ROOT = Path(__file__).resolve().parents[1]


def dry_run_jobs(configfile: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job in the dry run of `configfile`, in an empty directory."""
    with tempfile.TemporaryDirectory() as workdir:
        cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--directory", workdir,
               "--configfile", str(Path(configfile).resolve()), "--workflow-profile", "none"]
        result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"the dry run failed:\n{result.stderr[-3000:]}")
    jobs = []
    for block in re.split(r"^\s*(?:local)?rule ", result.stdout, flags=re.M)[1:]:
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, flags=re.M)
        pairs = wildcards.group(1).split(", ") if wildcards else []
        jobs.append((block.split(":", 1)[0], dict(p.split("=", 1) for p in pairs)))
    return jobs


def forward_flops(config: dict, model: str, dataset: str) -> float:
    channels, size = resources.image_shape(dataset, config)
    cfg = ModelConfig.for_dataset(dataset, data_source(config), **model_settings(config, model))
    net = build_model(cfg).eval()
    with FlopCounterMode(display=False) as counter:  # not no_grad: its fused attention goes uncounted
        net(torch.zeros(1, channels, size, size))
    return counter.get_total_flops()


def estimate(config: dict, jobs: list[tuple[str, dict]], tflops: float, startup_s: float) -> None:
    flops: dict[tuple[str, str], float] = {}
    rows: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0])  # jobs, PFLOP, work h, requested h
    vit_rewind_h = 0.0
    for rule, wc in jobs:
        rule, runs = run_rule(rule)  # a batch job (runs_per_job): its one-run rule and runs
        if rule not in resources.GPU_RULES:
            continue
        if rule == "atlas_neighbours":  # no wildcards: the rule sizes itself by the atlas's run
            wc = atlas_run(config)
        key = (resources.job_model(rule, config, wc), resources.job_dataset(config, wc))
        if key not in flops:
            flops[key] = forward_flops(config, *key)
        pflop = runs * resources.forward_passes(rule, config, wc) * flops[key] / 1e15
        row = rows[rule]
        row[0] += 1
        row[1] += pflop
        row[2] += pflop * 1e15 / (tflops * 1e12) / 3600
        row[3] += resources.minutes(rule, {**config, "device": "cuda"}, {**wc, "runs": runs}) / 60
        if rule == "rewind_layers" and key[0] == "vit_small":
            vit_rewind_h += pflop * 1e15 / (tflops * 1e12) / 3600  # as much again without the stage split
    n_jobs = sum(r[0] for r in rows.values())
    print(f"{'rule':15s} {'jobs':>6s} {'PFLOP':>8s} {'work h':>8s} {'work/job':>9s} {'start-up h':>10s} "
          f"{'share':>6s} {'GPU h':>7s} {'asked h':>8s}   (at {tflops:g} TFLOP/s, {startup_s:g} s start-up per job)")
    total = [0.0, 0.0, 0.0]
    for rule, (n, pflop, work, asked) in sorted(rows.items(), key=lambda kv: -kv[1][2]):
        start = n * startup_s / 3600
        total = [total[0] + work, total[1] + start, total[2] + asked]
        print(f"{rule:15s} {n:6d} {pflop:8.0f} {work:8.1f} {work * 60 / n:7.1f} m {start:10.1f} "
              f"{start / (work + start):6.1%} {work + start:7.1f} {asked:8.0f}")
    work, start = total[0], total[1]
    print(f"{'total':15s} {n_jobs:6d} {'':8s} {work:8.1f} {work * 60 / n_jobs:7.1f} m {start:10.1f} "
          f"{start / (work + start):6.1%} {work + start:7.1f} {total[2]:8.0f}")
    print(f"start-up: {start:.1f} of {work + start:.1f} estimated GPU hours ({start / (work + start):.1%}); "
          f"work/job: the mean estimated work of a GPU process; share: start-up / (work + start-up)")
    print(f"ViT rewinding without the stage split (every pass from the input): +{vit_rewind_h:.1f} GPU h")
    print("forward GFLOP per image (FlopCounterMode; memloc.plan.resources' constants sizing the jobs):")
    for (m, d), f in sorted(flops.items()):
        const = resources.forward_gflop(config, m, d)
        flag = "" if abs(const * 1e9 / f - 1) <= 0.1 else "   <- constant more than 10% off"
        print(f"  {m}/{d}: {f / 1e9:.2f} ({const:.2f}); {tflops * 1e12 / (3 * f):,.0f} training img/s{flag}")


def _timed_startup(root: str) -> float:
    """Seconds for a fresh python to import torch and memloc's jobs and load Fashion-MNIST."""
    code = ("import memloc.runs.jobs; from memloc.core.data.source import DataSource; "
            f"d = DataSource({root!r}, False, True, {{}}, None); d.load('fashion_mnist', True); "
            "d.load('fashion_mnist', False)")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def measure_cpu() -> None:
    """The start-up of a job process and the training throughput of one CPU thread, here."""
    with tempfile.TemporaryDirectory() as root:
        _timed_startup(root)  # stages the files once
        startup = [_timed_startup(root) for _ in range(3)]
    print(f"start-up (python + torch + memloc imports, Fashion-MNIST train + test loaded): "
          f"median {statistics.median(startup):.1f} s of {', '.join(f'{s:.1f}' for s in startup)}")
    torch.set_num_threads(1)
    cfg = model_config("resnet9", 10, 1, 28, width=0.25)
    net, x = build_model(cfg), torch.randn(128, 1, 28, 28)
    y = torch.randint(0, 10, (128,))
    with FlopCounterMode(display=False) as counter:
        net(x[:1])
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    times = []
    for _ in range(6):
        start = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        times.append(time.perf_counter() - start)
    step = statistics.median(times[1:])
    gflops = 3 * counter.get_total_flops() * 128 / step / 1e9
    print(f"CPU, 1 thread, ResNet-9 width 0.25 on 28x28, batch 128: {128 / step:,.0f} img/s = {gflops:.1f} GFLOP/s "
          f"sustained (memloc.plan.resources.SUSTAINED_TFLOPS['cpu'] = {resources.SUSTAINED_TFLOPS['cpu'] * 1e3:g})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "config" / "paper.yaml"))
    ap.add_argument("--tflops", type=float, default=40.0, help="sustained throughput assumed (TFLOP/s)")
    ap.add_argument("--startup-s", type=float, default=60.0, help="seconds from process start to the first batch")
    ap.add_argument("--measure-cpu", action="store_true", help="measure start-up and CPU throughput here, and stop")
    args = ap.parse_args()
    if args.measure_cpu:
        return measure_cpu()
    config = load_config(args.config)  # as the workflow has it: validated (defaults filled in) and resolved
    estimate(config, dry_run_jobs(args.config), args.tflops, args.startup_s)


if __name__ == "__main__":
    main()
