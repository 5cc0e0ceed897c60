"""Layer rewinding on real (tiny) trained runs: exactness, locality, the cached forward
stages against plain evaluation (ResNet-9, ViT, ResNet-50, models of no known family),
resuming a job that died, and checkpoints that hold nothing but the model."""

import json

import pandas as pd
import pytest
import torch
from schema_defaults import model_config, model_settings
from torch import nn

import memloc.layers.jobs as layer_jobs
from memloc.core.models.build import build_model
from memloc.core.models.layer_rule import model_layers
from memloc.core.train.checkpoints import load_checkpoint, model_from_checkpoint, save_atomic
from memloc.core.train.evaluation import evaluate_examples, prepare_batch
from memloc.layers.jobs import partial_path, read_manifest, rewind_run
from memloc.layers.rewinding import (
    Examples,
    first_stage,
    forward_stages,
    layer_state_keys,
    rewind_layer,
    rewound_layers,
)

CPU = torch.device("cpu")


def rewind(run: dict, out) -> bytes:
    """rewind_run on `run` (a trained_run-like dict) to `out`; the table file's bytes."""
    rewind_run(run["inputs"], run["checkpoints"], out, None, run["train"]["eval_batch_size"], CPU)
    return out.read_bytes()


@pytest.fixture(scope="module")
def rewound_file(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("rewind") / "rewinding.parquet"
    rewind(trained_run, out)
    return out


@pytest.fixture(scope="module")
def rewound(rewound_file):
    return pd.read_parquet(rewound_file)


@pytest.fixture(scope="module")
def data(trained_run):
    data = trained_run["inputs"].load()
    return data.train, data.test_images, data.test_labels


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


def assert_matches_plain_evaluation(table: pd.DataFrame, run: dict, data, epoch: int) -> int:
    """Each layer's rows of `table` at `epoch` equal the accuracies of the final model with
    that layer rewound (rewind_layer) and evaluated whole (evaluate_examples); the layer count."""
    paths = read_manifest(run["checkpoints"])
    state = load_checkpoint(paths[epoch])["model"]
    n_layers = len(model_layers(model_from_checkpoint(paths[-1], CPU)))
    for li in range(n_layers):
        model = model_from_checkpoint(paths[-1], CPU)
        layer = model_layers(model)[li]
        rewind_layer(model, layer, state)
        expected = accuracies(model, data)
        rows = table[(table["layer_index"] == li) & (table["epoch"] == epoch)].set_index("subset")["accuracy"]
        for subset, acc in expected.items():
            assert rows[subset] == pytest.approx(acc, abs=1e-9), (layer.name, subset)
    return n_layers


@pytest.mark.parametrize("epoch", [0, 1])
def test_cached_stages_match_plain_evaluation_of_the_rewound_model(rewound, trained_run, data, epoch):
    assert assert_matches_plain_evaluation(rewound, trained_run, data, epoch) == 9


# -- a ViT run: its stages are the embedding, each encoder block and the head -------------


@pytest.fixture(scope="module")
def vit_run(trained_run, tmp_path_factory):
    """trained_run's data, a ViT (dim 32, depth 2, patch 4 on 28x28) trained for 2 epochs."""
    from memloc.runs.jobs import train_run

    run = tmp_path_factory.mktemp("vit_run")
    outputs = {name: str(run / f"{name}.parquet") for name in ("metrics", "examples", "gradients")}
    outputs["checkpoints"] = str(run / "checkpoints.txt")
    model = model_settings("vit_small", patch_size=4, dim=32, depth=2, heads=2, mlp_dim=64)
    r = trained_run
    train_run(r["inputs"], model, r["train"], outputs, CPU)
    return {**r, "checkpoints": outputs["checkpoints"]}


@pytest.fixture(scope="module")
def vit_rewound(vit_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("vit_rewind") / "rewinding.parquet"
    rewind(vit_run, out)
    return pd.read_parquet(out)


@pytest.mark.parametrize("epoch", [0, 1])
def test_vit_cached_stages_match_plain_evaluation(vit_run, vit_rewound, data, epoch):
    # layers embedding, block1, block2, head: stages 0-3 (test_stages_compose_to_the_forward_pass...)
    assert assert_matches_plain_evaluation(vit_rewound, vit_run, data, epoch) == 4


# -- stages of every model family, at the logits: cached prefix + suffix == whole forward --


class Unknown(nn.Module):
    """A model of no known family (not nn.Sequential): one forward stage, itself."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv2d(1, 4, 3, stride=2), nn.BatchNorm2d(4), nn.Linear(4, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def sequential_model():
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 8, 3, stride=2),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 10))


def perturbed(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Another state of `model`: every float tensor of its state_dict plus noise."""
    g = torch.Generator().manual_seed(seed)
    return {k: v + 0.1 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone()
            for k, v in model.state_dict().items()}


MODELS = {
    "vit": (lambda: build_model(model_config("vit_small", 10, 1, 16, patch_size=4, dim=32, depth=2, heads=2,
                                             mlp_dim=64)), 16, [0, 1, 2, 3]),
    "resnet50": (lambda: build_model(model_config("resnet50", 10, 1, 8)), 8, [0, 4, 5, 6, 7, 10]),
    "sequential": (sequential_model, 28, [0, 1, 3, 7]),
    "unknown": (Unknown, 28, [0, 0, 0]),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_stages_compose_to_the_forward_pass_and_rewound_suffixes_match(name):
    build, size, starts = MODELS[name]
    torch.manual_seed(0)
    model = build().eval()
    model.load_state_dict(perturbed(model, 0))  # no zero-initialised head (the ViT's): outputs that vary
    layers = model_layers(model)  # the default rule's for the models of no known family
    stages = forward_stages(model)
    assert [first_stage(stages, layer) for layer in layers] == starts
    x = prepare_batch(torch.randint(0, 256, (2, 1, size, size), dtype=torch.uint8), CPU)
    with torch.no_grad():
        acts = [x]
        for stage in stages:
            acts.append(stage(acts[-1]))
        assert torch.equal(acts[-1], model(x))  # the stages are the forward pass, op for op
        other = perturbed(model, 1)
        final = {k: v.clone() for k, v in model.state_dict().items()}
        assert not torch.equal(acts[-1][0], acts[-1][1])  # outputs that vary
        for layer, start in zip(layers, starts):
            rewind_layer(model, layer, other)
            h = acts[start]
            for stage in stages[start:]:
                h = stage(h)
            plain = model(x)
            assert torch.equal(h, plain), layer.name
            assert not torch.equal(plain, acts[-1]), layer.name  # the rewind changed the output
            rewind_layer(model, layer, final)


@pytest.mark.parametrize("name", ["sequential", "unknown"])
def test_models_of_no_known_family_are_rewound_like_plain_evaluation(name, data):
    """rewound_layers with in-memory states on a model the library knows nothing of."""
    trainset, test_images, test_labels = data
    build, _, _ = MODELS[name]
    torch.manual_seed(0)
    model = build()
    images, labels = torch.cat([trainset.images, test_images]), torch.cat([trainset.labels, test_labels])
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    states = {0: {k: v.clone() for k, v in model.state_dict().items()}}
    for step in range(30):  # a short training, so that the rewound layers matter
        loss = nn.functional.cross_entropy(model(prepare_batch(images, CPU)), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 9:
            states[1] = {k: v.clone() for k, v in model.state_dict().items()}
    states[2] = {k: v.clone() for k, v in model.state_dict().items()}
    subset = torch.cat([trainset.group.long(), torch.full((len(test_labels),), 2)])
    layers = model_layers(model)  # the default rule: the top-level children with parameters
    assert [x.name for x in layers] == (["0", "1", "3", "7"] if name == "sequential" else ["conv", "bn", "fc"])
    rows = rewound_layers(model, states, Examples(images, labels, subset, ["clean", "noisy", "test"]), CPU, 64,
                          progress=False)
    table = pd.DataFrame([row for _, layer_rows in rows for row in layer_rows])
    assert len(table) == len(layers) * 3 * 3
    for li, layer in enumerate(layers):
        for epoch, state in states.items():
            rewind_layer(model, layer, state)
            expected = accuracies(model, data)
            model.load_state_dict(states[2])
            rows = table[(table["layer_index"] == li) & (table["epoch"] == epoch)].set_index("subset")["accuracy"]
            for subset_name, acc in expected.items():
                assert rows[subset_name] == pytest.approx(acc, abs=1e-9), (layer.name, epoch, subset_name)
    assert table[table["epoch"] == 0]["accuracy"].mean() < table[table["epoch"] == 2]["accuracy"].mean()


# -- resuming, slim checkpoints -----------------------------------------------------------


Died = type("Died", (Exception,), {})  # what the job does after its first layer


def test_a_job_that_dies_resumes_per_layer_and_writes_the_same_table(trained_run, rewound_file, tmp_path,
                                                                      monkeypatch):
    out = tmp_path / "rewinding.parquet"
    save = layer_jobs._save_partial

    def save_then_die(*args):
        save(*args)
        raise Died  # the job dies right after its first layer's rows are safe

    monkeypatch.setattr(layer_jobs, "_save_partial", save_then_die)
    with pytest.raises(Died):
        rewind(trained_run, out)
    monkeypatch.undo()
    assert not out.exists()
    saved = json.loads(partial_path(out).read_text())
    assert list(saved["layers"]) == ["0"]
    # the rerun takes layer 0's rows from the partial file: a marked value there shows up in the table
    saved["layers"]["0"][0]["accuracy"] = 0.123
    partial_path(out).write_text(json.dumps(saved))
    rewind(trained_run, out)
    marked = pd.read_parquet(out)
    assert marked["accuracy"].iloc[0] == 0.123 and not partial_path(out).exists()
    # the same interruption, unmarked: the resumed job's table is the uninterrupted one, byte for byte
    monkeypatch.setattr(layer_jobs, "_save_partial", save_then_die)
    out.unlink()
    with pytest.raises(Died):
        rewind(trained_run, out)
    monkeypatch.undo()
    assert rewind(trained_run, out) == rewound_file.read_bytes()
    # a partial file of other inputs or settings is ignored
    partial_path(out).write_text(json.dumps({"key": {"epochs": [0]}, "layers": {"0": [{"accuracy": 0.123}]}}))
    assert rewind(trained_run, out) == rewound_file.read_bytes()


def test_rewinding_reads_nothing_but_the_model_state_of_checkpoints(trained_run, rewound_file, tmp_path):
    """Checkpoints stripped to model, config, epoch and measured accuracies (no optimizer,
    scheduler, RNG, gradients, per-example records) give the same table."""
    slim = []
    for path in read_manifest(trained_run["checkpoints"]):
        ckpt = load_checkpoint(path)
        ckpt = {"epoch": ckpt["epoch"], "config": ckpt["config"], "model": ckpt["model"],
                "measured": {"accuracy": ckpt["measured"]["accuracy"]}}
        slim.append(tmp_path / "checkpoints" / path.name)
        save_atomic(ckpt, slim[-1])
    manifest = tmp_path / "checkpoints.txt"
    manifest.write_text("".join(f"{p}\n" for p in slim))
    rewind({**trained_run, "checkpoints": manifest}, tmp_path / "rewinding.parquet")
    table = pd.read_parquet(tmp_path / "rewinding.parquet")
    pd.testing.assert_frame_equal(table, pd.read_parquet(rewound_file), check_exact=True)
