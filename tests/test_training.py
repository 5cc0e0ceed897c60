"""The learning-rate schedule, resuming, the shared SGD loop and a run's tables (gradient
accounting against brute force: tests/test_gradients.py)."""

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from schema_defaults import data_source, model_config, train_config

from memloc.core.data.noise import make_corrupted_table
from memloc.core.data.run_data import RunData, training_set
from memloc.core.device import autocast_for
from memloc.core.models.build import build_model
from memloc.core.models.layer_rule import model_layers
from memloc.core.train.augment import Augment
from memloc.core.train.checkpoints import list_checkpoints, load_checkpoint, model_from_checkpoint, resume_path
from memloc.core.train.evaluation import prepare_batch
from memloc.core.train.run import train
from memloc.core.train.sgd import make_optimizer, make_sgd, one_cycle, run_sgd
from memloc.core.train.tables import run_tables
from memloc.layers.jobs import checkpoint_index
from memloc.layers.rewinding import Examples, open_checkpoint, rewind_layer, rewound_layers


def test_one_cycle_is_linear_up_to_peak_then_down_to_zero():
    epochs, peak_epoch, steps = 10, 3, 4
    cfg = train_config(epochs=epochs, peak_epoch=peak_epoch, peak_lr=0.1)
    opt = make_optimizer([torch.nn.Parameter(torch.zeros(1))], cfg)
    sched = one_cycle(opt, cfg, steps)
    lrs = []
    for _ in range(epochs * steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    lrs = np.array(lrs)
    top = int(lrs.argmax())
    assert lrs[0] == 0.0 and lrs[top] == pytest.approx(0.1) and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert abs(top - peak_epoch * steps) <= 1  # the peak is at peak_epoch
    up, down = np.diff(lrs[: top + 1]), np.diff(lrs[top:])
    assert np.allclose(up, up[0]) and up[0] > 0  # linear rise
    assert np.allclose(down, down[0]) and down[0] < 0  # linear fall
    assert opt.param_groups[0]["momentum"] == 0.9  # momentum is not cycled
    with pytest.raises(ValueError, match="peak_epoch"):
        train_config(epochs=5, peak_epoch=6)


def test_a_schedule_too_short_to_warm_up_names_its_settings():
    # 2 epochs of one batch peaking after the first: OneCycleLR itself would divide by zero
    cfg = train_config(epochs=2, peak_epoch=1, batch_size=64)
    opt = make_optimizer([torch.nn.Parameter(torch.zeros(1))], cfg)
    with pytest.raises(ValueError, match=r"2 steps \(2 epochs x 1 batches of 64\) peaking at epoch 1"):
        one_cycle(opt, cfg, 1)
    one_cycle(opt, cfg, 2)  # 4 steps: a warm-up of 2


@pytest.fixture(scope="module")
def tiny_run(fashion_root):
    src = data_source(fashion_root)
    table = make_corrupted_table("fashion_mnist", src, 0.2, subset=200, seed=0)
    data = training_set(table, src.load("fashion_mnist", train=True), "is_noisy")
    test = src.load("fashion_mnist", train=False)
    model_cfg = model_config("resnet9", 10, 1, 28, width=0.125)
    cfg = train_config(epochs=3, peak_epoch=1, batch_size=64, seed=5)
    return model_cfg, cfg, RunData(data, test.images[:100], test.labels[:100])


def test_resume_after_interruption_equals_uninterrupted_run(tiny_run, tmp_path):
    model_cfg, cfg, data = tiny_run
    cpu = torch.device("cpu")
    straight = train(model_cfg, cfg, data, tmp_path / "straight", cpu, progress=False)
    partial = train(model_cfg, cfg, data, tmp_path / "resumed", cpu, stop_after_epoch=1, progress=False)
    assert sorted(list_checkpoints(tmp_path / "resumed")) == [0, 1]
    assert len(partial) == 2
    resumed = train(model_cfg, cfg, data, tmp_path / "resumed", cpu, progress=False)
    assert len(straight) == len(resumed) == 4
    _assert_same_run(straight, resumed)
    # slim checkpoints: every epoch keeps the model's state (weights and BatchNorm statistics) and
    # what was measured; the optimizer, scheduler and RNG states only in resume.pt, for the last epoch
    for path in resumed:
        ckpt = torch.load(path, weights_only=False)
        assert set(ckpt) == {"epoch", "config", "model", "measured", "gradients", "layer_names"}, path
        assert any("running_mean" in k for k in ckpt["model"])
    state = torch.load(resume_path(tmp_path / "resumed"), weights_only=False)
    assert state["epoch"] == 3 and set(state) >= {"optimizer", "scheduler", "rng", "config"}
    # a changed config does not silently continue old checkpoints
    with pytest.raises(ValueError, match="another config"):
        train(model_cfg, train_config(epochs=3, peak_epoch=1, batch_size=32, seed=5), data, tmp_path / "resumed", cpu,
              progress=False)


def test_augmented_run_resumes_bitwise_and_differs_from_plain(tiny_run, tmp_path):
    model_cfg, cfg, data = tiny_run
    cfg = dataclasses.replace(cfg, augment=Augment(crop_padding=2, hflip=True))
    cpu = torch.device("cpu")
    straight = train(model_cfg, cfg, data, tmp_path / "straight", cpu, progress=False)
    train(model_cfg, cfg, data, tmp_path / "resumed", cpu, stop_after_epoch=1, progress=False)
    _assert_same_run(straight, train(model_cfg, cfg, data, tmp_path / "resumed", cpu, progress=False))
    plain = train(model_cfg, dataclasses.replace(cfg, augment=Augment(0, False)), data, tmp_path / "plain", cpu,
                  progress=False)
    a, b = (torch.load(p[-1], weights_only=False)["model"] for p in (straight, plain))
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


def _assert_same_run(a_paths, b_paths):
    """Two runs' checkpoints, resume states and tables are bitwise equal."""
    a, b = (torch.load(paths[-1], weights_only=False) for paths in (a_paths, b_paths))
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    ra, rb = (torch.load(resume_path(paths[-1].parent), weights_only=False) for paths in (a_paths, b_paths))
    for va, vb in zip(ra["optimizer"]["state"].values(), rb["optimizer"]["state"].values(), strict=True):
        assert torch.equal(va["momentum_buffer"], vb["momentum_buffer"])
    assert ra["scheduler"] == rb["scheduler"] and ra["epoch"] == rb["epoch"]
    ta, tb = run_tables(a_paths), run_tables(b_paths)
    for name in ta:
        pd.testing.assert_frame_equal(ta[name], tb[name])


def test_resume_after_a_crash_between_checkpoint_and_resume_state(tiny_run, tmp_path):
    # epoch 2's checkpoint written, its resume state not: the run redoes epoch 2 from epoch 1's
    model_cfg, cfg, data = tiny_run
    cpu = torch.device("cpu")
    straight = train(model_cfg, cfg, data, tmp_path / "straight", cpu, progress=False)
    run = tmp_path / "crashed"
    train(model_cfg, cfg, data, run, cpu, stop_after_epoch=1, progress=False)
    shutil.copy(resume_path(run), tmp_path / "resume_1.pt")
    train(model_cfg, cfg, data, run, cpu, stop_after_epoch=2, progress=False)
    shutil.copy(tmp_path / "resume_1.pt", resume_path(run))
    _assert_same_run(straight, train(model_cfg, cfg, data, run, cpu, progress=False))
    # without any resume state the checkpoints are not silently restarted
    resume_path(run).unlink()
    with pytest.raises(ValueError, match="no resume state"):
        train(model_cfg, cfg, data, run, cpu, progress=False)


def test_the_sgd_loop_is_the_written_out_loop(tiny_run):
    # the one loop (training, retraining, fine-tuning) must stay bitwise the plain loop it replaced
    model_cfg, cfg, data = tiny_run
    data = data.train
    cpu = torch.device("cpu")
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(build_model(model_cfg).to(memory_format=torch.channels_last))
    shared, written = models
    init = {k: v.clone() for k, v in shared.state_dict().items()}
    sgd = make_sgd(shared, shared.parameters(), cfg, len(data.labels), cpu)
    sgd.order = torch.Generator().manual_seed(1)
    run_sgd(sgd, data, torch.arange(len(data.labels)), [1], lambda epoch: None, cpu)
    perm = torch.randperm(len(data.labels), generator=torch.Generator().manual_seed(1))
    opt = make_optimizer(written.parameters(), cfg)
    sched = one_cycle(opt, cfg, -(-len(perm) // cfg.batch_size))
    written.train()
    for s in range(-(-len(perm) // cfg.batch_size)):
        idx = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
        with autocast_for(cpu):
            logits = written(prepare_batch(data.images[idx], cpu))
        loss = F.cross_entropy(logits.float(), data.labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    for (name, a), b in zip(shared.state_dict().items(), written.state_dict().values()):
        assert torch.equal(a, b), name
    assert not torch.equal(shared.state_dict()["0.0.weight"], init["0.0.weight"])  # it did train


@pytest.fixture(scope="module")
def trained(tiny_run, tmp_path_factory) -> list:
    """The tiny run's checkpoint paths, epoch 0 first."""
    model_cfg, cfg, data = tiny_run
    return train(model_cfg, cfg, data, tmp_path_factory.mktemp("run"), torch.device("cpu"), progress=False)


def test_rewinding_reads_the_slim_checkpoints(tiny_run, trained):
    # the layer experiments' loaders (memloc.layers) take the slim checkpoints as they are
    _, cfg, run_data = tiny_run
    data, ti, tl = run_data.train, run_data.test_images, run_data.test_labels
    cpu = torch.device("cpu")
    by_epoch, curve, groups = checkpoint_index(trained)
    assert sorted(by_epoch) == [0, 1, 2, 3] and groups == ["clean", "noisy"] and len(curve) == 4 * 4
    model = model_from_checkpoint(trained[-1], cpu)
    for layer in model_layers(model):  # every layer rewound to epoch 1 = epoch 1's model
        rewind_layer(model, layer, open_checkpoint(trained[1])["model"])
    for key, value in load_checkpoint(trained[1])["model"].items():
        assert torch.equal(model.state_dict()[key], value), key
    model = model_from_checkpoint(trained[-1], cpu)
    subset = torch.cat([data.group.long(), torch.full((len(tl),), 2)])
    examples = Examples(torch.cat([data.images, ti]), torch.cat([data.labels, tl]), subset, [*cfg.group_names, "test"])
    rows = dict(rewound_layers(model, {1: trained[1]}, examples, cpu, progress=False))
    assert sorted(rows) == list(range(9)) and all(len(r) == 3 for r in rows.values())


def test_run_tables_have_every_epoch_and_example(tiny_run, trained):
    data = tiny_run[2].train
    tables = run_tables(trained)
    ex = tables["examples"]
    assert len(ex) == 200 * 4 and set(ex["epoch"]) == {0, 1, 2, 3}
    final = ex[ex["epoch"] == 3]
    acc = tables["metrics"].set_index(["epoch", "subset"])["accuracy"]
    assert acc[(3, "noisy")] == pytest.approx(final["correct"].to_numpy()[data.group.numpy()].mean())
    assert acc[(3, "clean")] == pytest.approx(final["correct"].to_numpy()[~data.group.numpy()].mean())
    assert ((final["margin"] > 0) == final["correct"]).all()  # margin > 0 iff correct
    g = tables["gradients"]
    assert set(g["group"]) == {"clean", "noisy", "total"} and g["layer"].nunique() == 9
    assert set(g["epoch"]) == {1, 2, 3} and {"batch_norm", "batch_cosine"} <= set(g.columns)

