"""Why does tab3's standard-dropout baseline not memorize here?  Its final model is evaluated
with dropout off (model.eval(), as the paper and the authors' code), but its BatchNorm layers
carry running statistics gathered with dropout on: each nn.Dropout sits before the next conv +
BN, and rescaling by 1/(1 - p) raises the variance BN saw in training above what it sees at
evaluation ("variance shift", Li et al., CVPR 2019).  This measures the final checkpoint of a
setting's standard-dropout run three ways, on the same weights:

* eval          what tab3 reports: dropout off, BN's running statistics from training;
* recalibrated  dropout off, BN's statistics re-estimated on the training set with dropout
                off (a cumulative average over one pass, no weight changes);
* train mode    dropout on, BN on the batch's own statistics (what the loss saw), mean over
                `--draws` dropout draws of the per-example accuracy.

    python3 bench/dropout_bn_shift.py results/fidelity/standard_w1_e50 [...]   # docs/fidelity/baselines_bn.{csv,md}

A folder is a BASELINES setting of bench/fidelity_grid.py (its config.yaml and results/).
"""

import argparse
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from memloc.config import load_config
from memloc.core.data.run_data import normalize, training_set
from memloc.core.data.source import DataSource
from memloc.core.example_index import forward_with_index
from memloc.core.train.checkpoints import model_from_checkpoint
from memloc.dropout.model import DropoutModelConfig
from memloc.runs.plan import data_source

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "fidelity"
RUN = "results/dropout/runs/fashion_mnist/resnet9/noise0.1/standard_p0.4/seed0"
BATCH = 500


def correct(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """[n] float: 1 where the model's prediction is the label, batch by batch."""
    out = []
    with torch.no_grad():
        for s in range(0, len(images), BATCH):
            x = normalize(images[s : s + BATCH])
            out.append((forward_with_index(model, x, index[s : s + BATCH]).argmax(1) == labels[s : s + BATCH]).float())
    return torch.cat(out)


def recalibrate_batch_norm(model: nn.Module, images: torch.Tensor, index: torch.Tensor) -> None:
    """BN's running statistics re-estimated with dropout off: one pass over `images`, the
    cumulative average (momentum None) of the batch statistics."""
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
            m.train()
    with torch.no_grad():
        for s in range(0, len(images), BATCH):
            forward_with_index(model, normalize(images[s : s + BATCH]), index[s : s + BATCH])
    model.eval()


def measure(folder: Path, draws: int) -> list[dict]:
    config = load_config(str(folder / "config.yaml"))
    table = pd.read_parquet(folder / "results/data/fashion_mnist/noise0.1.parquet")
    source = DataSource(**{**data_source(config), "root": str(folder / "data"), "cache": None})
    train = training_set(table, source.load("fashion_mnist", train=True), "is_noisy")
    test = source.load("fashion_mnist", train=False)
    last = (folder / RUN / "checkpoints.txt").read_text().split()[-1]
    model = model_from_checkpoint(folder / last, torch.device("cpu"), DropoutModelConfig)
    idx = torch.tensor(table["index"].to_numpy())  # the table's row order, as train's tensors
    noisy = train.group
    test_idx = torch.arange(len(test.labels))

    def row(how: str, per_example: torch.Tensor, test_acc: float) -> dict:
        return {"setting": folder.name, "evaluation": how, "clean": 100 * per_example[~noisy].mean().item(),
                "noisy": 100 * per_example[noisy].mean().item(), "test": 100 * test_acc}

    model.eval()
    rows = [row("eval", correct(model, train.images, train.labels, idx),
                correct(model, test.images, test.labels, test_idx).mean().item())]
    model.train()  # dropout on, BN on the batch's statistics (nothing is updated: no optimizer step)
    torch.manual_seed(0)
    on = torch.stack([correct(model, train.images, train.labels, idx) for _ in range(draws)]).mean(0)
    rows.append(row("train mode", on, float("nan")))
    recalibrate_batch_norm(model, train.images, idx)
    rows.append(row("recalibrated", correct(model, train.images, train.labels, idx),
                    correct(model, test.images, test.labels, test_idx).mean().item()))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", type=Path, nargs="+")
    ap.add_argument("--draws", type=int, default=5, help="dropout draws averaged in train mode")
    args = ap.parse_args()
    torch.set_num_threads(2)
    df = pd.DataFrame([r for f in args.folders for r in measure(f, args.draws)])
    OUT.mkdir(parents=True, exist_ok=True)
    df.to_csv(OUT / "baselines_bn.csv", index=False)
    (OUT / "baselines_bn.md").write_text(df.to_markdown(index=False, floatfmt=".1f") + "\n")
    print(df.to_string())


if __name__ == "__main__":
    main()
