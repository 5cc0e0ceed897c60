"""Gradient accounting (memloc.core.train.gradients) against brute force: the epoch statistics of a
real training run, and the per-batch statistics of hand-made batches."""

import math

import pytest
import torch
import torch.nn.functional as F
from schema_defaults import data_source, model_config, train_config
from torch.optim.optimizer import register_optimizer_step_pre_hook

from memloc.core.data.noise import make_corrupted_table
from memloc.core.data.run_data import RunData, training_set
from memloc.core.device import autocast_for
from memloc.core.models.build import build_model
from memloc.core.models.layer_rule import model_layers
from memloc.core.train.evaluation import prepare_batch
from memloc.core.train.gradients import BATCH_STATISTICS, EPOCH_STATISTICS, GradientAccountant
from memloc.core.train.run import train
from memloc.core.train.tables import run_tables


def _layer_vectors(model, grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per layer of `model`, its parameters' entries of `grads` (one per parameter) as one vector."""
    params = list(model.parameters())
    return [torch.cat([grads[k].flatten() for k, p in enumerate(params) if any(p is q for q in layer.parameters())])
            for layer in model_layers(model)]


def _group_gradients(model, losses: torch.Tensor, noisy: torch.Tensor) -> tuple[list, list, list]:
    """(clean, noisy, total) gradients of one batch, each group's from its own summed loss / |B|."""
    params, b = list(model.parameters()), len(losses)
    clean_g = torch.autograd.grad(losses[~noisy].sum() / b, params, retain_graph=True)
    noisy_g = torch.autograd.grad(losses[noisy].sum() / b, params, retain_graph=True)
    total_g = torch.autograd.grad(losses.mean(), params)
    return list(clean_g), list(noisy_g), list(total_g)


@pytest.fixture(scope="module")
def real_data(fashion_root):
    src = data_source(fashion_root)
    table = make_corrupted_table("fashion_mnist", src, 0.2, subset=200, seed=0)
    test = src.load("fashion_mnist", train=False)
    return training_set(table, src.load("fashion_mnist", train=True), "is_noisy"), test.images[:50], test.labels[:50]


def test_epoch_statistics_equal_brute_force_over_the_epochs_batches(real_data, tmp_path, use_compute):
    use_compute(precision="fp32")  # fp32 forwards for tight tolerances; bf16 accounts alike
    data, test_images, test_labels = real_data
    cpu = torch.device("cpu")
    model_cfg = model_config("resnet9", 10, 1, 28, width=0.125)
    cfg = train_config(epochs=2, peak_epoch=1, batch_size=48, seed=3)  # 5 batches an epoch, the last of 8
    steps = math.ceil(len(data.labels) / cfg.batch_size)
    # hook the optimizer: the parameters each step starts from are those of its batch's forward
    seen = []
    hook = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: seen.append([p.detach().clone() for g in opt.param_groups for p in g["params"]]))
    try:
        paths = train(model_cfg, cfg, RunData(data, test_images, test_labels), tmp_path, cpu, progress=False)
    finally:
        hook.remove()
    assert len(seen) == cfg.epochs * steps
    table = run_tables(paths)["gradients"].set_index(["epoch", "layer_index", "group"])

    model = build_model(model_cfg).to(memory_format=torch.channels_last).train()
    order = torch.Generator().manual_seed(cfg.seed)  # replays the run's data order
    for epoch in range(1, cfg.epochs + 1):
        perm = torch.randperm(len(data.labels), generator=order)
        sums = None
        for s in range(steps):
            rows = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
            with torch.no_grad():
                for p, value in zip(model.parameters(), seen[(epoch - 1) * steps + s]):
                    p.copy_(value)
            with autocast_for(cpu):  # the training's forward
                logits = model(prepare_batch(data.images[rows], cpu))
            losses = F.cross_entropy(logits.float(), data.labels[rows], reduction="none")
            batch = _group_gradients(model, losses, data.group[rows])
            sums = batch if sums is None else [[a + b for a, b in zip(x, y)] for x, y in zip(sums, batch)]
        clean, noisy, total = ([g / steps for g in grads] for grads in sums)  # the epoch's mean gradients
        for li, (c, n, t) in enumerate(zip(*(_layer_vectors(model, g) for g in (clean, noisy, total)))):
            # the two groups add up to the total, per layer, as vectors
            # (fp32: separate backward passes of one sum agree to ~1e-4 of the largest entry)
            assert torch.allclose(c + n, t, rtol=1e-4, atol=1e-4 * t.abs().max().item()), (epoch, li)
            root = math.sqrt(len(t))
            expected = {"clean": c.norm() / root, "noisy": n.norm() / root, "total": (c + n).norm() / root}
            for group, value in expected.items():
                row = table.loc[(epoch, li, group)]
                assert row["norm"] == pytest.approx(value.item(), rel=1e-4), (epoch, li, group)
                assert row["cosine"] == pytest.approx(F.cosine_similarity(c, n, dim=0).item(), abs=1e-4)
    assert {"batch_norm", "batch_cosine"} <= set(table.columns)  # the per-batch statistics, kept beside


def test_batch_statistics_and_one_group_batches():
    # double precision, a fixed model: 3 batches, the last without a noisy example
    torch.manual_seed(0)
    model = build_model(model_config("resnet9", 10, 1, 16, width=0.125)).double()
    batches = [(torch.randn(b, 1, 16, 16, dtype=torch.float64), torch.randint(0, 10, (b,)), noisy)
               for b, noisy in ((12, [0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]), (6, [1, 0, 0, 0, 0, 1]), (5, [0] * 5))]
    acct = GradientAccountant(model, torch.device("cpu"))
    expected = {name: torch.zeros(len(model_layers(model)), dtype=torch.float64) for name in BATCH_STATISTICS}
    epoch = [[torch.zeros_like(p) for p in model.parameters()] for _ in range(2)]
    two_group_batches = 0
    for x, y, noisy in batches:
        noisy = torch.tensor(noisy, dtype=torch.bool)
        clean_g, noisy_g, total_g = _group_gradients(model, F.cross_entropy(model(x), y, reduction="none"), noisy)
        epoch = [[a + b for a, b in zip(acc, g)] for acc, g in zip(epoch, (clean_g, noisy_g))]
        both = bool(noisy.any() and (~noisy).any())
        two_group_batches += both
        for li, (c, n) in enumerate(zip(_layer_vectors(model, clean_g), _layer_vectors(model, noisy_g))):
            root = math.sqrt(len(c))
            expected["batch_norm_a"][li] += c.norm() / root
            expected["batch_norm_b"][li] += n.norm() / root
            expected["batch_norm_total"][li] += (c + n).norm() / root
            if both:  # a one-group batch has no cosine: it is left out, not counted as 0
                expected["batch_cosine"][li] += F.cosine_similarity(c, n, dim=0)
        acct.backward(F.cross_entropy(model(x), y, reduction="none"), noisy)
        for p, t in zip(model.parameters(), total_g):  # the optimizer sees the ordinary mean-loss gradient
            assert torch.allclose(p.grad, t, atol=1e-12)
    stats = acct.epoch_statistics()
    for name in BATCH_STATISTICS:
        count = two_group_batches if name == "batch_cosine" else len(batches)
        assert torch.allclose(stats[name].double(), expected[name] / count, rtol=1e-5), name
    clean, noisy = ([g / len(batches) for g in grads] for grads in epoch)
    for li, (c, n) in enumerate(zip(_layer_vectors(model, clean), _layer_vectors(model, noisy))):
        root = math.sqrt(len(c))
        want = [c.norm() / root, n.norm() / root, (c + n).norm() / root, F.cosine_similarity(c, n, dim=0)]
        for name, value in zip(EPOCH_STATISTICS, want):  # rel 1e-6: sqrt(P_l) is fp32
            assert stats[name][li].item() == pytest.approx(value.item(), rel=1e-6, abs=1e-12), (li, name)
