import os

import pytest
import torch

FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.fixture(autouse=True, scope="session")
def _threads():
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def fashion_root(tmp_path_factory):
    """A torchvision root for Fashion-MNIST, staged from Debian's package (real data)."""
    if not os.path.isdir(FASHION):
        pytest.fail(f"{FASHION} missing: apt-get install dataset-fashion-mnist (.ci/run does)")
    return str(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def trained_run(fashion_root, tmp_path_factory):
    """A real run laid out as the train rule leaves it: 300 Fashion-MNIST examples (20% label
    noise), a width-0.125 ResNet-9 trained for 2 epochs; checkpoints of epochs 0-2."""
    from memloc.runs.jobs import train_run, write_corrupted_dataset

    run = tmp_path_factory.mktemp("run")
    source = {"root": fashion_root}
    table = run / "data.parquet"
    write_corrupted_dataset(table, "fashion_mnist", source, noise=0.2, subset=300, seed=0)
    outputs = {name: str(run / f"{name}.parquet") for name in ("metrics", "examples", "gradients")}
    outputs["checkpoints"] = str(run / "checkpoints.txt")
    train_settings = {"epochs": 2, "peak_epoch": 1, "batch_size": 64, "seed": 0, "eval_batch_size": 256}
    model = {"name": "resnet9", "width": 0.125}
    train_run(table, outputs, "fashion_mnist", source, 200, model, train_settings, device="cpu", threads=2)
    return {"data_table": str(table), "checkpoints": outputs["checkpoints"], "dataset": "fashion_mnist",
            "source": source, "test_subset": 200, "train": train_settings}
