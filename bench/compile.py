"""Benchmark: training through torch.compile (config key `compile: true`) against eager.

The training's own loop (memloc.core.train.sgd.run_sgd, at the job's precision)
over real Fashion-MNIST images (28x28), ResNet-9 at `--width`; the two models alternate over
several rounds so that load from other processes affects both alike.  Prints img/s of each
(median over rounds), their ratio, the compilation's cost (the compiled model's first epoch
minus a steady one) and how many images of training pay it back.

    python bench/compile.py [--width 0.25] [--batch 512] [--steps 10] [--rounds 5] [--precision auto]
"""

import argparse
import statistics
import tempfile
import time

import torch
from settings import config, model_config, source_fields, train_config, use_compute

from memloc.core.data.run_data import TrainingSet
from memloc.core.data.source import DataSource
from memloc.core.device import precision_for, resolve_device
from memloc.core.models.build import build_model
from memloc.core.train.sgd import make_sgd, run_sgd


def arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default=None, help="auto / bf16 / fp16 / fp32 (default: config.yaml's)")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=10, help="batches per timed epoch")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--root", default=None, help="torchvision root of Fashion-MNIST (default: a temporary folder)")
    return ap.parse_args()


def timed_epoch(sgd, data: TrainingSet, device: torch.device) -> float:
    """Seconds of one epoch of the SGD loop over `data`."""
    start = time.perf_counter()
    run_sgd(sgd, data, torch.arange(len(data.labels)), [1], lambda epoch: None, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main():
    args = arguments()
    use_compute(precision=args.precision or config()["precision"])
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    split = DataSource(**source_fields(args.root or tempfile.mkdtemp())).load("fashion_mnist", train=True)
    n = args.steps * args.batch
    images, labels = split.images[:n].to(device), split.labels[:n].to(device)
    data = TrainingSet(images, labels, torch.zeros(n, dtype=torch.bool, device=device), labels)
    # a slowly rising lr: steps stay finite
    cfg = train_config(epochs=1000, peak_epoch=1, batch_size=args.batch, gradient_accounting=False)
    runs, first = {}, {}
    for name in ("eager", "compiled"):
        torch.manual_seed(0)
        model = build_model(model_config("resnet9", 10, 1, 28, width=args.width))
        model = model.to(device, memory_format=torch.channels_last)
        forward = torch.compile(model) if name == "compiled" else model
        runs[name] = make_sgd(forward, model.parameters(), cfg, n, device)
        first[name] = timed_epoch(runs[name], data, device)  # compiles; warms caches
    seconds = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            seconds[name].append(timed_epoch(run, data, device))
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
