"""Where and how jobs compute (memloc.core.device): no silent CPU fallback of a GPU job, the
precision rule, fp16 training with a loss scaler, loss-scaled gradient accounting, and
training through torch.compile."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from schema_defaults import data_source, model_config, train_config

from memloc.core.data.noise import make_corrupted_table
from memloc.core.data.run_data import RunData, TrainingSet, training_set
from memloc.core.device import (
    Compute,
    autocast_for,
    choose_precision,
    grad_scaler_for,
    job_label,
    precision_for,
    resolve_device,
)
from memloc.core.models.build import build_model
from memloc.core.train.checkpoints import load_checkpoint, resume_path
from memloc.core.train.evaluation import prepare_batch
from memloc.core.train.gradients import GradientAccountant
from memloc.core.train.run import train
from memloc.core.train.tables import run_tables

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
# a CUDA device this machine does not have: plain `cuda` without CUDA, else one past the last GPU
MISSING_CUDA = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"


@pytest.mark.parametrize(
    ("setting", "device_type", "bf16_native", "expected"),
    [
        ("auto", "cuda", True, "bf16"),  # Ampere and later
        ("auto", "cuda", False, "fp16"),  # V100, T4: fp16 with a loss scaler
        ("auto", "cpu", True, "bf16"),  # oneDNN with AVX-512 BF16 / AMX
        ("auto", "cpu", False, "fp32"),
        ("auto", "mps", False, "fp32"),
        ("fp32", "cuda", True, "fp32"),  # a setting overrides the rule
        ("fp16", "cuda", True, "fp16"),
        ("bf16", "cpu", False, "bf16"),
        ("fp16", "cpu", False, "fp16"),
    ],
)
def test_precision_rule(setting, device_type, bf16_native, expected):
    assert choose_precision(setting, device_type, bf16_native) == expected


def test_precision_setting_and_its_tools(use_compute):
    with pytest.raises(ValueError, match="config key precision"):
        choose_precision("fp8", "cuda", True)
    with pytest.raises(ValueError, match="config key precision"):
        Compute("fp8", False, True)
    use_compute(precision="fp16")
    assert precision_for(CPU) == "fp16" and precision_for(CPU, "fp32") == "fp32"
    assert isinstance(grad_scaler_for(CPU), torch.amp.GradScaler) and grad_scaler_for(CPU, "bf16") is None
    conv = torch.nn.Conv2d(1, 2, 3)
    with autocast_for(CPU):
        assert conv(torch.randn(1, 1, 5, 5)).dtype == torch.float16
    with autocast_for(CPU, "fp32"):
        assert conv(torch.randn(1, 1, 5, 5)).dtype == torch.float32


def test_a_cuda_device_that_is_not_there_is_an_error_naming_the_job():
    job = job_label("train", [("dataset", "fashion_mnist"), ("model", "resnet9"), ("seed", "0")])
    assert job == "rule train (dataset=fashion_mnist, model=resnet9, seed=0)"
    with pytest.raises(RuntimeError, match=rf"rule train \(dataset=fashion_mnist.*`device: {MISSING_CUDA}`"):
        resolve_device(MISSING_CUDA, job)
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == CPU and resolve_device(CPU) == CPU


@pytest.mark.slow  # a real Snakemake job / torch.compile: tens of seconds
def test_a_gpu_job_without_a_gpu_stops_before_training(tmp_path):
    # the real workflow: the train job of `device: cuda` on this machine fails at its start, its
    # log names the job and the setting, and it has written no checkpoint
    target = "results/runs/fashion_mnist/resnet9/noise0.1/seed0/checkpoints.txt"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(ROOT / "tests/config/test.yaml"), "--config", f"device={MISSING_CUDA}",
           "--cores", "1", target]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    log = (tmp_path / "logs/train/fashion_mnist_resnet9_noise0.1_seed0.log").read_text()
    assert "rule train (dataset=fashion_mnist, model=resnet9, variant=noise0.1, seed=0)" in log, log[-3000:]
    assert f"`device: {MISSING_CUDA}`" in log
    assert not (tmp_path / target).parent.joinpath("checkpoints").exists()


@pytest.fixture(scope="module")
def tiny(fashion_root):
    src = data_source(fashion_root)
    data = training_set(make_corrupted_table("fashion_mnist", src, 0.2, subset=200, seed=0),
                        src.load("fashion_mnist", train=True), "is_noisy")
    test = src.load("fashion_mnist", train=False)
    return model_config("resnet9", 10, 1, 28, width=0.125), data, test.images[:100], test.labels[:100]


def test_loss_scaled_gradient_accounting_equals_unscaled(tiny):
    # a power-of-two loss scale multiplies every gradient exactly: the accounting is unchanged,
    # p.grad keeps the scale (GradScaler.step divides it out)
    model_cfg, data, _, _ = tiny
    x, y, group = prepare_batch(data.images[:64], CPU), data.labels[:64], data.group[:64]
    results = []
    for scale in (1.0, 1024.0):
        torch.manual_seed(0)
        model = build_model(model_cfg)
        accountant = GradientAccountant(model, CPU)
        per_example = F.cross_entropy(model(x), y, reduction="none")
        loss = accountant.backward(per_example * scale, group, scale)
        results.append((loss, accountant.epoch_statistics(), [p.grad / scale for p in model.parameters()]))
    (loss1, stats1, grads1), (loss2, stats2, grads2) = results
    assert torch.equal(loss1, loss2)
    for name in stats1:
        torch.testing.assert_close(stats1[name], stats2[name], rtol=1e-6, atol=0, equal_nan=True)
    for g1, g2 in zip(grads1, grads2, strict=True):
        torch.testing.assert_close(g1, g2, rtol=1e-6, atol=0)
    # an overflowed batch (its step is skipped) is not accounted
    accountant.reset()
    accountant.backward(F.cross_entropy(model(x), y, reduction="none") * float("inf"), group, 1024.0)
    assert accountant.batches == 0 and all(not s.any() for s in accountant.sum_a)


def test_fp16_training_steps_through_a_loss_scaler(tiny, tmp_path, use_compute):
    use_compute(precision="fp16")
    model_cfg, data, ti, tl = tiny
    # 64 examples, 4 steps: fp16 convolutions are emulated on a CPU (~20x slower than fp32)
    data = TrainingSet(data.images[:64], data.labels[:64], data.group[:64], data.true_labels[:64])
    cfg = train_config(epochs=1, peak_epoch=0.5, batch_size=16, seed=1)
    paths = train(model_cfg, cfg, RunData(data, ti[:32], tl[:32]), tmp_path / "fp16", CPU, progress=False)
    state = load_checkpoint(resume_path(tmp_path / "fp16"))
    assert state["scaler"]["scale"] > 0 and state["scaler"]["_growth_tracker"] >= 0  # kept for resuming
    assert load_checkpoint(paths[0])["config"]["precision"] == "fp16"  # the checkpoints say which precision
    first, last = (load_checkpoint(p)["model"] for p in (paths[0], paths[-1]))
    assert not torch.equal(first["0.0.weight"], last["0.0.weight"])  # it trained
    tables = run_tables(paths)
    assert np.isfinite(tables["gradients"]["norm"]).all() and np.isfinite(tables["examples"]["loss"]).all()


@pytest.mark.slow  # a real Snakemake job / torch.compile: tens of seconds
def test_compiled_training_saves_the_plain_modules_state(tiny, tmp_path, use_compute):
    model_cfg, data, ti, tl = tiny
    cfg = train_config(epochs=1, peak_epoch=0.5, batch_size=50, seed=1)  # 4 equal batches: one compilation
    use_compute(precision="fp32", compile=False)
    eager = train(model_cfg, cfg, RunData(data, ti, tl), tmp_path / "eager", CPU, progress=False)
    use_compute(precision="fp32", compile=True)
    compiled = train(model_cfg, cfg, RunData(data, ti, tl), tmp_path / "compiled", CPU, progress=False)
    init, a, b = (load_checkpoint(p)["model"] for p in (eager[0], eager[-1], compiled[-1]))
    assert list(a) == list(b)  # no "_orig_mod." names: the checkpoints are those of the plain module
    # the same training up to the compiled kernels' rounding (gradients agree to ~1e-6 relative; a
    # few SGD steps through BatchNorm on batches of 50 amplify that to ~1e-3 in the weights)
    weights = [k for k in a if k.endswith("weight")]
    step_a, step_b = (torch.cat([(w[k] - init[k]).flatten() for k in weights]) for w in (a, b))
    assert F.cosine_similarity(step_a, step_b, dim=0) > 0.99 and step_b.norm() / step_a.norm() == pytest.approx(1, 0.05)
    assert step_a.norm() > 0  # it trained


def test_a_job_starts_with_its_log_threads_and_compute(tmp_path, monkeypatch):
    # a job's compute settings are a rule parameter (memloc.plan.compute), not the environment: a
    # change of precision reruns the jobs it affects; compile only where the job trains
    from schema_defaults import default_config

    from memloc.core import device as device_module
    from memloc.core.job import start
    from memloc.plan.compute import compute_settings

    monkeypatch.setattr(sys, "stderr", sys.stderr)  # start sends stderr to the log: restored after the test
    monkeypatch.setattr(device_module, "_compute", None)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # (this test process keeps its threads)
    config = {**default_config(), "device": "cpu", "precision": "fp32", "compile": True}
    wildcards = {"dataset": "fashion_mnist", "model": "resnet9", "variant": "noise0.1", "seed": "0"}
    compute = compute_settings(config, "train", wildcards)
    assert compute == {"device": "cpu", "precision": "fp32", "compile": True, "deterministic": True,
                       "job": "rule train (dataset=fashion_mnist, model=resnet9, variant=noise0.1, seed=0)"}
    assert not compute_settings(config, "rewind_layers", wildcards)["compile"]  # does not train
    assert start(tmp_path / "table.log") is None  # a table job: its log only
    assert device_module._compute is None
    assert start(tmp_path / "train.log", compute, threads=1) == CPU
    assert device_module.current() == Compute("fp32", True, True) and precision_for(CPU) == "fp32"
