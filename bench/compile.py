"""Benchmark: training through torch.compile (config key `compile: true`) against eager.

The training's own loop (memloc.core.train.sgd: cross_entropy + sgd_epoch, at the job's precision)
over real Fashion-MNIST images (28x28), ResNet-9 at `--width`; the two models alternate over
several rounds so that load from other processes affects both alike.  Prints img/s of each
(median over rounds), their ratio, the compilation's cost (the compiled model's first epoch
minus a steady one) and how many images of training pay it back.

    python bench/compile.py [--width 0.25] [--batch 512] [--steps 10] [--rounds 5] [--precision auto]
"""

import argparse
import os
import statistics
import tempfile
import time

import torch

from memloc.core.data.source import DataSource
from memloc.core.device import precision_for, resolve_device
from memloc.core.models.build import ModelConfig, build_model
from memloc.core.train.config import TrainConfig
from memloc.core.train.sgd import cross_entropy, scheduled_sgd, sgd_epoch


def arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default=None, help="auto / bf16 / fp16 / fp32 (default: MEMLOC_PRECISION or auto)")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=10, help="batches per timed epoch")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--root", default=None, help="torchvision root of Fashion-MNIST (default: a temporary folder)")
    return ap.parse_args()


def timed_epoch(run, order: torch.Tensor, batch: int, device: torch.device) -> float:
    """Seconds of one sgd_epoch of `run` = (model, optimizer, scheduler, batch loss)."""
    start = time.perf_counter()
    sgd_epoch(*run[:3], order, batch, run[3])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main():
    args = arguments()
    if args.precision:
        os.environ["MEMLOC_PRECISION"] = args.precision
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = DataSource(args.root or tempfile.mkdtemp()).load("fashion_mnist", train=True)
    n = args.steps * args.batch
    images, labels = data.images[:n].to(device), data.labels[:n].to(device)
    order = torch.arange(n)
    cfg = TrainConfig(epochs=1000, peak_epoch=1, batch_size=args.batch)  # a slowly rising lr: steps stay finite
    runs, first = {}, {}
    for name in ("eager", "compiled"):
        torch.manual_seed(0)
        model = build_model(ModelConfig("resnet9", 10, 1, 28, width=args.width))
        model = model.to(device, memory_format=torch.channels_last)
        forward = torch.compile(model) if name == "compiled" else model
        opt, sched = scheduled_sgd(model.parameters(), cfg, n)
        runs[name] = (forward, opt, sched, cross_entropy(forward, images, labels, device))
        first[name] = timed_epoch(runs[name], order, args.batch, device)  # compiles; warms caches
    seconds = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            seconds[name].append(timed_epoch(run, order, args.batch, device))
    med = {name: statistics.median(s) for name, s in seconds.items()}
    rate = {name: n / t for name, t in med.items()}
    compile_s = first["compiled"] - med["compiled"]
    saved_per_img = 1 / rate["eager"] - 1 / rate["compiled"]
    print(f"device {device}, precision {precision_for(device)}, {torch.get_num_threads()} threads, resnet9 width "
          f"{args.width}, fashion_mnist 28x28, batch {args.batch}, {args.steps} steps x {args.rounds} rounds")
    for name in runs:
        print(f"{name:9s} {rate[name]:8.1f} img/s  (first epoch {first[name]:.1f} s)")
    print(f"ratio compiled/eager img/s (median over rounds): {rate['compiled'] / rate['eager']:.3f}")
    payback = f"{compile_s / saved_per_img:,.0f} images" if saved_per_img > 0 else "never (not faster)"
    print(f"compilation: {compile_s:.1f} s; paid back after {payback}")


if __name__ == "__main__":
    main()
