"""Benchmark: training time of ResNet-9 with example-tied dropout / without it.

Same data and batches; the two models alternate over several rounds so that load from
other processes affects both alike; prints the median ratio.  The extra work is the masks
(a counter-based hash of [batch, units] per layer, on the device) and one multiply per layer.

    python bench/dropout.py [--width 0.25] [--batch 128] [--steps 10] [--rounds 5] [--placement stages]
"""

import argparse
import statistics
import time

import settings
import torch
import torch.nn.functional as F
from settings import model_fields, train_config, use_compute

from memloc.core.device import resolve_device
from memloc.core.example_index import forward_with_index
from memloc.core.models.build import ModelConfig
from memloc.core.train.evaluation import prepare_batch
from memloc.core.train.sgd import make_optimizer
from memloc.dropout import plan as dropout_plan
from memloc.dropout.model import DropoutModelConfig
from memloc.dropout.tied import PLACEMENTS


def time_steps(model, opt, batches) -> float:
    start = time.perf_counter()
    for x, y, idx in batches:
        loss = F.cross_entropy(forward_with_index(model, x, idx), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--placement", default="stages", choices=PLACEMENTS)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    use_compute()
    device = resolve_device(args.device)
    models = {}
    fields = model_fields("resnet9", 10, args.channels, args.size, width=args.width)
    dropout = {**dropout_plan.model_settings(settings.config(), "resnet9", "tied_pgen0.4_pmem0.2", 0)["dropout"],
               "placement": args.placement}
    configs = {"plain": ModelConfig(**fields), "example-tied": DropoutModelConfig(**fields, dropout=dropout)}
    for name, cfg in configs.items():
        torch.manual_seed(0)
        model = cfg.build().to(device, memory_format=torch.channels_last)
        models[name] = (model, make_optimizer(model.parameters(), train_config(peak_lr=0.01, epochs=2, peak_epoch=1)))
    images = torch.randint(0, 256, (args.steps * args.batch, args.channels, args.size, args.size), dtype=torch.uint8)
    batches = [
        (prepare_batch(images[i * args.batch : (i + 1) * args.batch], device),
         torch.randint(0, 10, (args.batch,), device=device),
         torch.randperm(60000, device=device)[: args.batch])
        for i in range(args.steps)
    ]
    for model, opt in models.values():
        time_steps(model, opt, batches[:2])  # warm-up
    seconds = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, (model, opt) in models.items():
            seconds[name].append(time_steps(model, opt, batches))
    ratios = [t / p for t, p in zip(seconds["example-tied"], seconds["plain"])]
    imgs = args.steps * args.batch
    print(f"device {device}, resnet9 width {args.width}, {args.placement} placement, batch {args.batch}, "
          f"{args.steps} steps x {args.rounds} rounds")
    for name, s in seconds.items():
        print(f"{name:14s} {imgs / statistics.median(s):8.1f} img/s")
    print(f"ratio example-tied/plain (median over rounds): {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
