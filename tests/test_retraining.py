"""Layer retraining on a real (tiny) trained run: what is frozen, where the layer starts,
and which examples it is trained on."""

import json
from dataclasses import asdict

import pytest
import torch
from schema_defaults import train_config
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from memloc.core.models.layer_rule import model_layers
from memloc.core.train.checkpoints import load_checkpoint, model_from_checkpoint
from memloc.core.train.config import TrainConfig
from memloc.core.train.evaluation import prepare_batch
from memloc.layers.jobs import partial_path, read_manifest, retrain_run
from memloc.layers.retraining import recalibrate_batchnorm, retrain_layer
from memloc.layers.rewinding import layer_state_keys

CPU = torch.device("cpu")
CFG = train_config(epochs=2, peak_epoch=1, peak_lr=0.1, batch_size=64, seed=0, eval_batch_size=256,
                   gradient_accounting=False)


@pytest.fixture(scope="module")
def run(trained_run):
    r = trained_run
    paths = read_manifest(r["checkpoints"])
    data = r["inputs"].load()
    return paths, load_checkpoint(paths[0])["model"], load_checkpoint(paths[-1])["model"], data


@pytest.mark.parametrize("li", [0, 4, 8])  # first conv, a middle conv, the final linear
def test_only_layer_l_trains_from_its_init_and_never_on_noisy_examples(run, li):
    paths, init, final, data = run
    trainset = data.train
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
        table = retrain_layer(model, li, init, data, CFG, CPU, recalibrate_bn=False)
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


def test_retraining_job_writes_every_layer_of_a_run_and_resumes(trained_run, tmp_path):
    """One job retrains a run's layers one after another: the rows of each layer are what
    retrain_layer gives on a fresh final model; a job that died after its first layer resumes
    there (the finished layer is not retrained) and writes the same table."""
    r = trained_run
    out = tmp_path / "retraining.parquet"
    settings = {k: v for k, v in asdict(CFG).items() if k != "group_names"} | {"batch_size": 128}
    table = retrain_run(r["inputs"], r["checkpoints"], out, ["layer1", "layer9"], settings, False, CPU)
    assert out.exists() and not partial_path(out).exists()
    assert list(table.columns[:2]) == ["layer_index", "layer"]
    assert list(table.drop_duplicates("layer")["layer"]) == ["layer1", "layer9"]
    assert set(table["layer_index"]) == {0, 8}
    assert sorted(table["epoch"].unique()) == [0, 1, 2]
    assert table["accuracy"].between(0, 1).all()
    # the rows of one layer = retrain_layer on a fresh copy of the final model
    paths = read_manifest(r["checkpoints"])
    cfg = TrainConfig(**settings, group_names=tuple(load_checkpoint(paths[-1])["config"]["train"]["group_names"]))
    alone = retrain_layer(model_from_checkpoint(paths[-1], CPU), 8, load_checkpoint(paths[0])["model"],
                          r["inputs"].load(), cfg, CPU, False)
    ninth = table[table["layer"] == "layer9"].drop(columns=["layer_index", "layer"]).reset_index(drop=True)
    assert ninth.equals(alone)

    # a job that dies before its table is written (here: the output path is a folder) keeps
    # its finished layers; keep layer1's rows (marked) and drop layer9's, as after a kill
    # between the two layers: the rerun retrains layer9 only
    died = tmp_path / "died.parquet"
    died.mkdir()
    with pytest.raises(OSError):
        retrain_run(r["inputs"], r["checkpoints"], died, ["layer1", "layer9"], settings, False, CPU)
    died.rmdir()
    saved = json.loads(partial_path(died).read_text())
    assert sorted(saved["layers"]) == ["0", "8"]
    saved["layers"] = {"0": [{**row, "accuracy": 0.125} for row in saved["layers"]["0"]]}
    partial_path(died).write_text(json.dumps(saved))
    resumed = retrain_run(r["inputs"], r["checkpoints"], died, ["layer1", "layer9"], settings, False, CPU)
    assert (resumed.loc[resumed["layer"] == "layer1", "accuracy"] == 0.125).all()  # not retrained
    assert resumed[resumed["layer"] == "layer9"].reset_index(drop=True).equals(
        table[table["layer"] == "layer9"].reset_index(drop=True))
    with pytest.raises(ValueError, match=r"no layers \['layer10'\]"):
        retrain_run(r["inputs"], r["checkpoints"], out, ["layer10"], settings, False, CPU)


def test_recalibration_replaces_running_stats_by_the_examples_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 3), nn.BatchNorm2d(2))
    images = torch.randint(0, 256, (20, 1, 8, 8), dtype=torch.uint8)
    rows = torch.tensor([3, 5, 7, 11, 13])
    model.eval()
    recalibrate_batchnorm(model, images, rows, batch_size=64, device=CPU)  # one batch: exact statistics
    assert not model.training and model[1].momentum == 0.1  # mode and momentum restored
    stats = [(bn.running_mean.clone(), bn.running_var.clone()) for bn in (model[1], model[4])]
    inputs = {}  # each BatchNorm's input in a train-mode pass over the rows (batch statistics)

    def keep_input(module, args, output) -> None:
        inputs[module] = args[0]

    hooks = [bn.register_forward_hook(keep_input) for bn in (model[1], model[4])]
    with torch.no_grad():
        model.train()(prepare_batch(images[rows], CPU))
    for hook in hooks:
        hook.remove()
    for bn, (mean, var) in zip((model[1], model[4]), stats):
        out = inputs[bn]
        assert torch.allclose(mean, out.mean((0, 2, 3)), atol=1e-5)
        assert torch.allclose(var, out.transpose(0, 1).flatten(1).var(1), atol=1e-4)


def test_recalibration_changes_the_measurements_not_the_training(run):
    paths, init, final, data = run
    out = {}
    for recalibrate in (False, True):
        model = model_from_checkpoint(paths[-1], CPU)
        table = retrain_layer(model, 4, init, data, CFG, CPU, recalibrate_bn=recalibrate)
        out[recalibrate] = (table, {k: p.detach().clone() for k, p in model.named_parameters()},
                            model_layers(model)[4].modules[0][1].running_mean.clone())
    (plain, params, stats), (recal, params_r, stats_r) = out[False], out[True]
    for key in params:  # train mode uses batch statistics: the running ones never reach a gradient
        assert torch.equal(params[key], params_r[key]), key
    assert not torch.equal(stats, stats_r)  # but the reset layer's running statistics were re-estimated
    assert plain[["epoch", "subset"]].equals(recal[["epoch", "subset"]])
    assert not plain["accuracy"].equals(recal["accuracy"])
