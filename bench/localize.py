"""Benchmark: the localization methods' cost per example, batched vs the plain reference.

For every method of memloc.localize.methods, on the default config's model (ResNet-9 at the
config's width, the dataset's image shape) and its `localization` settings, ranks the units
of E examples with the batched path and with the reference (one example at a time), checks
that both give the same top units, and prints the seconds per example of each and their
ratio (CPU time, one thread: steadier on a loaded machine).  Both tracks' models: the plain
model (neuron flipping's candidate units) and the model with example-tied dropout (its tied
channels).  The model is freshly initialized unless --checkpoint / --tied-checkpoint give a
trained run's checkpoint.pt (the cost hardly depends on the weights, except neuron
flipping's, whose number of removals does: a trained model's is the one to report).

    python bench/localize.py [--config config.yaml] [--examples 8] [--threads 1]
        [--checkpoint results/runs/.../checkpoints/epoch_20.pt] [--tied-checkpoint ...] [--no-reference]
"""

import argparse
import time

import torch

from memloc.config import load_config
from memloc.core.data.builtin import DATASETS
from memloc.core.data.run_data import TrainingSet
from memloc.core.models.build import ModelConfig
from memloc.core.train.checkpoints import model_from_checkpoint
from memloc.core.train.evaluation import prepare_batch
from memloc.dropout.model import DropoutModelConfig
from memloc.flipping.units import candidate_units
from memloc.localize.context import Context, Examples, tied_units
from memloc.localize.methods import rank_units, top_units

CPU = torch.device("cpu")


def build(config: dict, tied: bool, checkpoint: str | None):
    if checkpoint:
        return model_from_checkpoint(checkpoint, CPU, DropoutModelConfig if tied else ModelConfig)
    p = config["primary"]
    channels, side = DATASETS[p["dataset"]][2:4]
    kw = dict(name=p["model"], num_classes=10, in_channels=channels, image_size=side,
              settings=config["model_settings"].get(p["model"], {}), factory=None, layers=None, flip_modules=None,
              dropout_after=None)
    if not tied:
        return ModelConfig(**kw).build()
    d = config["dropout"]
    dropout = dict(kind="example_tied", p_gen=d["p_gen"], p_mem=d["p_mem"], seed=0, placement=d["placement"],
                   drop_scale=d["drop_scale"])
    return DropoutModelConfig(**kw, dropout=dropout).build()


def cpu_seconds(fn, *args, **kw):
    t0 = time.process_time()
    out = fn(*args, **kw)
    return out, time.process_time() - t0


def bench(config: dict, tied: bool, checkpoint: str | None, examples: int, reference: bool) -> None:
    torch.manual_seed(0)
    model = build(config, tied, checkpoint).eval()
    n = 256
    channels, side = DATASETS[config["primary"]["dataset"]][2:4]
    images = torch.randint(0, 256, (n, channels, side, side), dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,))
    data = TrainingSet(images, labels, torch.arange(n) % 10 == 0, labels)
    units = tied_units(model) if tied else candidate_units(model)
    settings = config["localization"]
    ctx = Context(model, units, settings, 0, data, CPU, settings["max_rows"])
    rows = torch.arange(examples)
    x = prepare_batch(images[rows], CPU)
    with torch.no_grad():
        data.labels[rows] = ctx.run(x, rows).argmax(1)  # every example starts correct
    ex = Examples(x, data.labels[rows], rows)
    print(f"\n{'tied' if tied else 'plain'} model: {ctx.candidates} candidate units, {examples} examples")
    print(f"{'method':22s} {'batched s/ex':>12s} {'reference s/ex':>15s} {'ratio':>7s}  same top-8")
    for m in settings["methods"]:
        b, tb = cpu_seconds(rank_units, m, ctx, ex)
        if reference:
            r, tr = cpu_seconds(rank_units, m, ctx, ex, reference=True)
            same = torch.equal(top_units(b, 8), top_units(r, 8))
            print(f"{m:22s} {tb / examples:12.4f} {tr / examples:15.4f} {tr / max(tb, 1e-9):7.1f}  {same}")
        else:
            print(f"{m:22s} {tb / examples:12.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--examples", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--checkpoint")
    ap.add_argument("--tied-checkpoint")
    ap.add_argument("--no-reference", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    for tied, ckpt in ((False, args.checkpoint), (True, args.tied_checkpoint)):
        bench(config, tied, ckpt, args.examples, not args.no_reference)


if __name__ == "__main__":
    main()
