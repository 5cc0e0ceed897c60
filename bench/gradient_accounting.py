"""Benchmark: training time with gradient accounting / plain training time.

Same model, data and batches; the two modes alternate over several rounds so that load
from other processes affects both alike; prints the median ratio.  Accounting costs a
second backward pass (partly cheaper than the first: no recomputation of the forward),
two `_foreach_add_` of the parameters per batch into the epoch-gradient buffers, three
fused per-batch norms, and the epoch statistics once per round ("epoch").

    python bench/gradient_accounting.py [--width 0.25] [--batch 128] [--steps 10] [--rounds 5]
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from settings import model_config, train_config, use_compute

from memloc.core.device import resolve_device
from memloc.core.models.build import build_model
from memloc.core.train.evaluation import prepare_batch
from memloc.core.train.gradients import GradientAccountant
from memloc.core.train.sgd import make_optimizer


def time_steps(model, opt, batches, accountant=None) -> float:
    """Seconds for one "epoch" of `batches`; with an accountant also its epoch statistics
    (the norms of the accumulated epoch gradients, the epoch's one host copy)."""
    start = time.perf_counter()
    if accountant is not None:
        accountant.reset()
    for x, y, g in batches:
        per_example = F.cross_entropy(model(x), y, reduction="none")
        opt.zero_grad(set_to_none=True)
        if accountant is None:
            per_example.mean().backward()
        else:
            accountant.backward(per_example, g)
        opt.step()
    if accountant is not None:
        accountant.epoch_statistics()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet9")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    use_compute()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    width = {"width": args.width} if args.model == "resnet9" else {}
    model = build_model(model_config(args.model, 10, args.channels, args.size, **width))
    model = model.to(device, memory_format=torch.channels_last)
    opt = make_optimizer(model.parameters(), train_config(peak_lr=0.01, epochs=2, peak_epoch=1))
    accountant = GradientAccountant(model, device)
    images = torch.randint(0, 256, (args.steps * args.batch, args.channels, args.size, args.size), dtype=torch.uint8)
    batches = [
        (prepare_batch(images[i * args.batch : (i + 1) * args.batch], device),
         torch.randint(0, 10, (args.batch,), device=device),
         torch.rand(args.batch, device=device) < 0.1)
        for i in range(args.steps)
    ]
    time_steps(model, opt, batches[:2])  # warm-up
    time_steps(model, opt, batches[:2], accountant)
    ratios, plain_s, acct_s = [], [], []
    for _ in range(args.rounds):
        plain = time_steps(model, opt, batches)
        acct = time_steps(model, opt, batches, accountant)
        plain_s.append(plain)
        acct_s.append(acct)
        ratios.append(acct / plain)
    imgs = args.steps * args.batch
    print(f"device {device}, {args.model} width {args.width}, batch {args.batch}, "
          f"{args.steps} steps x {args.rounds} rounds")
    print(f"plain training:       {imgs / statistics.median(plain_s):8.1f} img/s")
    print(f"gradient accounting:  {imgs / statistics.median(acct_s):8.1f} img/s")
    print(f"ratio accounting/plain (median over rounds): {statistics.median(ratios):.3f}  (target <= 1.7)")


if __name__ == "__main__":
    main()
