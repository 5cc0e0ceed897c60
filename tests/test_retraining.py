"""Layer retraining on a real (tiny) trained run: what is frozen, where the layer starts,
and which examples it is trained on."""

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from memloc.core.data import load_run_data
from memloc.core.evaluation import prepare_batch
from memloc.core.models import model_layers
from memloc.core.training import TrainConfig, load_checkpoint, model_from_checkpoint
from memloc.layers.jobs import read_manifest, retrain_run_layer
from memloc.layers.retraining import retrain_layer
from memloc.layers.rewinding import layer_state_keys

CPU = torch.device("cpu")
CFG = TrainConfig(epochs=2, peak_epoch=1, peak_lr=0.1, batch_size=64, seed=0, eval_batch_size=256,
                  gradient_accounting=False)


@pytest.fixture(scope="module")
def run(trained_run):
    r = trained_run
    paths = read_manifest(r["checkpoints"])
    data = load_run_data(r["data_table"], r["dataset"], r["source"], r["test_subset"])
    return paths, load_checkpoint(paths[0])["model"], load_checkpoint(paths[-1])["model"], data


@pytest.mark.parametrize("li", [0, 4, 8])  # first conv, a middle conv, the final linear
def test_only_layer_l_trains_from_its_init_and_never_on_noisy_examples(run, li):
    paths, init, final, (trainset, test_images, test_labels) = run
    model = model_from_checkpoint(paths[-1], CPU)
    layer = model_layers(model)[li]
    keys = set(layer_state_keys(model, layer))
    params = dict(model.named_parameters())

    # Before the first optimizer step: layer l holds its epoch-0 values and is all the optimizer has.
    at_first_step = {}

    def before_step(optimizer, args, kwargs):
        if not at_first_step:
            at_first_step["optimized"] = {id(p) for g in optimizer.param_groups for p in g["params"]}
            at_first_step["values"] = {k: p.detach().clone() for k, p in params.items() if k in keys}

    # Every example that goes through the model in training mode: never a noisy one.
    noisy = prepare_batch(trainset.images[trainset.group], CPU).flatten(1)
    clean = prepare_batch(trainset.images[~trainset.group], CPU).flatten(1)
    same = lambda a, b: (a[:, None] == b[None]).all(2)  # noqa: E731  [len(a), len(b)] exact equality
    assert not same(noisy, clean).any()  # no noisy image has a clean duplicate
    trained_on = []

    def record(module, inputs):
        if module.training:
            x = inputs[0].flatten(1)
            trained_on.append(same(x, clean).any(1).sum().item())
            assert not same(x, noisy).any(), "a noisy example reached the retraining batches"

    bn = model_layers(model)[1 if li == 0 else 0].modules[0][1]  # the BatchNorm of a frozen ConvBN layer
    frozen_bn_mean = bn.running_mean.clone()
    step_hook = register_optimizer_step_pre_hook(before_step)
    input_hook = model.register_forward_pre_hook(record)
    try:
        table = retrain_layer(model, li, init, trainset, test_images, test_labels, CFG, CPU, progress=False)
    finally:
        step_hook.remove()
        input_hook.remove()

    assert at_first_step["optimized"] == {id(p) for p in layer.parameters()}
    for key, value in at_first_step["values"].items():
        assert torch.equal(value, init[key]), key
    for key, p in params.items():
        if key in keys:
            assert not torch.equal(p, init[key]), key  # layer l did train
        else:
            assert torch.equal(p, final[key]), key  # bitwise frozen
    assert not torch.equal(bn.running_mean, frozen_bn_mean)  # BN running stats of frozen layers update
    assert sum(trained_on) == CFG.epochs * int((~trainset.group).sum())  # every clean example, each epoch
    assert sorted(table["epoch"].unique()) == [0, 1, 2]
    assert {"clean", "noisy", "test", "train"} == set(table["subset"])


def test_retraining_job_writes_one_layer_table(trained_run, tmp_path):
    r = trained_run
    out = tmp_path / "layer9.parquet"
    settings = {"epochs": 2, "peak_epoch": 1, "peak_lr": 0.1, "batch_size": 128, "seed": 0, "eval_batch_size": 256}
    table = retrain_run_layer(r["data_table"], r["checkpoints"], out, r["dataset"], r["source"], r["test_subset"],
                              "layer9", settings, device="cpu", threads=2, progress=False)
    assert out.exists() and set(table["layer"]) == {"layer9"} and set(table["layer_index"]) == {8}
    assert sorted(table["epoch"].unique()) == [0, 1, 2]
    assert table["accuracy"].between(0, 1).all()
    with pytest.raises(ValueError, match="no layer 'layer10'"):
        retrain_run_layer(r["data_table"], r["checkpoints"], out, r["dataset"], r["source"], r["test_subset"],
                          "layer10", settings, device="cpu", progress=False)
