"""Layer rewinding on a real (tiny) trained run: exactness, locality, and the cached
forward stages against plain evaluation."""

import pandas as pd
import pytest
import torch

from memloc.core.data import load_run_data
from memloc.core.evaluation import evaluate_examples
from memloc.core.models import model_layers
from memloc.core.training import load_checkpoint, model_from_checkpoint
from memloc.layers.jobs import read_manifest, rewind_run
from memloc.layers.rewinding import layer_state_keys, rewind_layer

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def rewound(trained_run, tmp_path_factory):
    r = trained_run
    out = tmp_path_factory.mktemp("rewind") / "rewinding.parquet"
    rewind_run(r["data_table"], r["checkpoints"], out, r["dataset"], r["source"], r["test_subset"],
               batch_size=r["train"]["eval_batch_size"], device="cpu", threads=2, progress=False)
    return pd.read_parquet(out)


@pytest.fixture(scope="module")
def data(trained_run):
    r = trained_run
    return load_run_data(r["data_table"], r["dataset"], r["source"], r["test_subset"])


def accuracies(model, data) -> dict[str, float]:
    trainset, test_images, test_labels = data
    bs = 256
    train = evaluate_examples(model, trainset.images, trainset.labels, CPU, bs).correct.float()
    test = evaluate_examples(model, test_images, test_labels, CPU, bs).correct.float()
    return {"clean": train[~trainset.group].mean().item(), "noisy": train[trainset.group].mean().item(),
            "test": test.mean().item()}


def test_table_has_every_layer_epoch_and_subset(rewound):
    per_layer = rewound[rewound["layer_index"] >= 0]
    assert per_layer["layer"].nunique() == 9
    assert sorted(per_layer["epoch"].unique()) == [0, 1, 2]
    assert set(per_layer["subset"]) == {"clean", "noisy", "test"}
    assert len(per_layer) == 9 * 3 * 3
    curve = rewound[rewound["layer"] == "all"]
    assert sorted(curve["epoch"].unique()) == [0, 1, 2] and {"clean", "noisy", "train", "test"} <= set(curve["subset"])


def test_rewinding_to_the_final_epoch_reproduces_the_final_model_exactly(rewound, trained_run, data):
    final = load_checkpoint(read_manifest(trained_run["checkpoints"])[-1])
    expected = accuracies(model_from_checkpoint(read_manifest(trained_run["checkpoints"])[-1], CPU), data)
    for subset in ("clean", "noisy", "test"):
        assert expected[subset] == final["measured"]["accuracy"][subset]  # as training measured it
        rows = rewound[(rewound["epoch"] == 2) & (rewound["subset"] == subset) & (rewound["layer_index"] >= 0)]
        assert len(rows) == 9
        assert (rows["accuracy"] == expected[subset]).all(), (subset, rows)


def test_rewind_layer_changes_that_layer_and_nothing_else(trained_run):
    paths = read_manifest(trained_run["checkpoints"])
    init = load_checkpoint(paths[0])["model"]
    final = load_checkpoint(paths[-1])["model"]
    layers_changed = 0
    for li in range(9):
        model = model_from_checkpoint(paths[-1], CPU)
        layer = model_layers(model)[li]
        keys = set(layer_state_keys(model, layer))
        assert any(k.endswith("running_var") for k in keys) == (li < 8)  # ConvBN layers carry BN buffers
        rewind_layer(model, layer, init)
        for key, value in model.state_dict().items():
            assert torch.equal(value, init[key] if key in keys else final[key]), (layer.name, key)
        layers_changed += any(not torch.equal(init[k], final[k]) for k in keys)
    assert layers_changed == 9  # training moved every layer, so each rewind was a real change


@pytest.mark.parametrize("epoch", [0, 1])
def test_cached_stages_match_plain_evaluation_of_the_rewound_model(rewound, trained_run, data, epoch):
    paths = read_manifest(trained_run["checkpoints"])
    state = load_checkpoint(paths[epoch])["model"]
    for li in range(9):
        model = model_from_checkpoint(paths[-1], CPU)
        layer = model_layers(model)[li]
        rewind_layer(model, layer, state)
        expected = accuracies(model, data)
        rows = rewound[(rewound["layer_index"] == li) & (rewound["epoch"] == epoch)].set_index("subset")["accuracy"]
        for subset, acc in expected.items():
            assert rows[subset] == pytest.approx(acc, abs=1e-9), (layer.name, subset)
