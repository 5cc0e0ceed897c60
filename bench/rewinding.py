"""Benchmark: a whole rewinding job / the bare forward passes it needs.

The job (memloc.layers.jobs.rewind_run, in this process) reads the data table, the
dataset and every checkpoint, rewinds every layer to every epoch and writes its table.
The bare forward passes are the same stage calls on inputs already on the device, with
the weights already in place: per layer and batch, the final model's prefix up to the
layer once and each epoch's suffix from it -- no loading, no weight swaps, no
counting.  Job and bare passes alternate over rounds so that load from other processes
affects both alike; prints the median ratio (target <= 1.2).  Also prints the ratio of
plain full forward passes (one per layer x epoch, no cached prefix) to the job, i.e.
what the cached stages save.

The run is the offline default's shape: Fashion-MNIST (real images), 2,000 training and
1,000 test examples, ResNet-9 width 0.25 (or a small ViT: patch 4, dim 64, depth 6, whose
stages are the embedding, each block and the head); the checkpoints are the
initialization plus perturbed copies (timing does not depend on the values).  The job's
peak resident memory (ru_maxrss) is printed too.

    python bench/rewinding.py [--model resnet9|vit_small] [--epochs 4] [--width 0.25] [--rounds 3]
"""

import argparse
import dataclasses
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
from settings import model_config, source_fields, train_config, use_compute

from memloc.core.data.builtin import DATASETS
from memloc.core.data.inputs import RunInputs
from memloc.core.data.source import DataSource
from memloc.core.device import autocast_for, resolve_device
from memloc.core.models.build import ModelConfig, build_model
from memloc.core.models.layer_rule import model_layers
from memloc.core.train.checkpoints import save_atomic
from memloc.core.train.evaluation import prepare_batch
from memloc.layers.jobs import rewind_run
from memloc.layers.rewinding import first_stage, forward_stages
from memloc.runs.jobs import write_corrupted_dataset

FASHION = "/usr/share/datasets/fashion-mnist"


def fake_run(folder: Path, model_cfg: ModelConfig, epochs: int) -> Path:
    """Checkpoints 0..epochs as the train rule writes them, and their manifest."""
    torch.manual_seed(0)
    model = build_model(model_cfg)
    train_cfg = train_config(epochs=epochs, peak_epoch=1)
    config = {"model": dataclasses.asdict(model_cfg), "train": dataclasses.asdict(train_cfg), "precision": "fp32"}
    measured = {"accuracy": {"train": 0.5, "clean": 0.5, "noisy": 0.5, "test": 0.5}}
    paths = []
    for t in range(epochs + 1):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
        paths.append(folder / f"checkpoints/epoch_{t:03d}.pt")
        save_atomic({"epoch": t, "config": config, "model": model.state_dict(), "measured": measured}, paths[-1])
    manifest = folder / "checkpoints.txt"
    manifest.write_text("".join(f"{p}\n" for p in paths))
    return manifest


@torch.no_grad()
def bare_passes(model, images, device, batch_size, epochs: int, cached: bool = True) -> float:
    """Seconds for the forward passes alone: cached = the job's (per layer and batch, the
    prefix up to the layer once, a suffix per epoch); otherwise a full pass per layer x epoch."""
    model.eval()
    stages = forward_stages(model)
    starts = [first_stage(stages, layer) if cached else 0 for layer in model_layers(model)]
    batches = [prepare_batch(images[i : i + batch_size], device) for i in range(0, len(images), batch_size)]
    t0 = time.perf_counter()
    with autocast_for(device):
        for s in starts:
            for x in batches:
                for stage in stages[:s]:
                    x = stage(x)
                for _ in range(epochs + 1):
                    h = x
                    for stage in stages[s:]:
                        h = stage(h)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=4, help="training epochs (checkpoints 0..epochs)")
    ap.add_argument("--model", choices=["resnet9", "vit_small"], default="resnet9")
    ap.add_argument("--width", type=float, default=0.25, help="ResNet-9 width")
    ap.add_argument("--train-subset", type=int, default=2000)
    ap.add_argument("--test-subset", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    use_compute()
    device = resolve_device(args.device)
    _, classes, channels, size = DATASETS["fashion_mnist"]
    vit = {"patch_size": 4, "dim": 64, "depth": 6, "heads": 4, "mlp_dim": 128}
    model_cfg = model_config(args.model, classes, channels, size, **({"width": args.width} if args.model == "resnet9"
                                                                     else vit))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = source_fields(str(tmp / "data"))
        if not DataSource(**source).available("fashion_mnist"):
            raise SystemExit(f"Fashion-MNIST missing ({FASHION}): apt-get install dataset-fashion-mnist")
        table = tmp / "data.parquet"
        write_corrupted_dataset(table, "fashion_mnist", source, 0.1, args.train_subset, seed=0)
        manifest = fake_run(tmp, model_cfg, args.epochs)
        inputs = RunInputs(table, "fashion_mnist", source, args.test_subset, "is_noisy")
        data = inputs.load()
        images = torch.cat([data.train.images, data.test_images])
        model = build_model(model_cfg).to(device, memory_format=torch.channels_last)

        def job() -> float:
            t0 = time.perf_counter()
            rewind_run(inputs, manifest, tmp / "rewinding.parquet", None, args.batch, device)
            return time.perf_counter() - t0

        job()  # warm-up (dataset staging, allocator)
        bare_passes(model, images, device, args.batch, args.epochs)
        jobs, bares = [], []
        for _ in range(args.rounds):
            jobs.append(job())
            bares.append(bare_passes(model, images, device, args.batch, args.epochs))
        plain = bare_passes(model, images, device, args.batch, args.epochs, cached=False)
    ratios = [j / b for j, b in zip(jobs, bares)]
    layers = len(model_layers(model))
    name = f"ResNet-9 width {args.width}" if args.model == "resnet9" else f"ViT {vit}"
    print(f"device {device}, {name}, {len(images)} examples, {layers} layers x "
          f"{args.epochs + 1} epochs, batch {args.batch}, {args.rounds} rounds")
    print(f"whole rewinding job:           {statistics.median(jobs):7.2f} s")
    print(f"its bare forward passes:       {statistics.median(bares):7.2f} s")
    print(f"plain full passes (no cache):  {plain:7.2f} s")
    print(f"ratio job / bare forward passes (median over rounds): {statistics.median(ratios):.3f}  (target <= 1.2)")
    print(f"ratio plain full passes / job: {plain / statistics.median(jobs):.2f}  (what cached stages save)")
    print(f"peak resident memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
