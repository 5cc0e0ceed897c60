"""Neuron flipping against a plain reference loop written here, on a tiny trained ResNet-9.

The reference takes its scores from autograd on the block activations and the Linear
weights directly (no masks) and zeroes units on its own copy of the model; memloc's
randomness (noise_generator, noisy_copies, population_indices) is the specification of
the objective's noise and population batches, so both draw the same.
"""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from memloc.core.blocks import ConvBN
from memloc.core.data import DataSource, make_corrupted_table, training_set
from memloc.core.evaluation import prepare_batch
from memloc.core.models import ModelConfig
from memloc.core.training import TrainConfig, model_from_checkpoint, train
from memloc.flipping.batched import flip_examples
from memloc.flipping.jobs import accuracy_rows, select_examples
from memloc.flipping.masks import candidate_units, flat_masks, full_masks, remove
from memloc.flipping.objective import (
    FlipConfig,
    flip_until_misclassified,
    noise_generator,
    noisy_copies,
    population_indices,
    results_frame,
)
from memloc.flipping.population import PopulationTerm

CPU = torch.device("cpu")
CFG = FlipConfig(max_removals=25, noise_copies=3, noise_std=0.2, population_batch=16, resample_every=0, seed=3,
                 examples_per_batch=3, max_rows=256)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The models here are tiny: a second thread only adds synchronization."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(fashion_root, tmp_path_factory):
    """A width-1/8 ResNet-9 trained 16 epochs on 200 Fashion-MNIST examples, 20% noise
    (fits ~80% of the clean and ~70% of the noisy examples)."""
    table = make_corrupted_table("fashion_mnist", DataSource(fashion_root), 0.2, subset=200, seed=0)
    data = training_set(table, DataSource(fashion_root).load("fashion_mnist", train=True))
    cfg = TrainConfig(epochs=16, peak_epoch=8, batch_size=32, seed=0, gradient_accounting=False)
    ckpts = train(ModelConfig("resnet9", 10, 1, 28, width=0.125), cfg, data, data.images[:10], data.labels[:10],
                  tmp_path_factory.mktemp("flip_run"), CPU, progress=False)
    model = model_from_checkpoint(ckpts[-1], CPU).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return table, data, model


def reference_flip(model, index, data, cfg):
    """The algorithm of Sec. 6.1 as a plain loop; returns ([(layer, unit)], prediction, accuracies)."""
    net = copy.deepcopy(model).double().eval()
    blocks = [m for m in net.modules() if isinstance(m, ConvBN)]
    linear = [m for m in net.modules() if isinstance(m, nn.Linear)]
    names = [f"layer{i + 1}" for i in range(len(blocks) + len(linear))]
    zeroed = [set() for _ in blocks]
    seen = [[] for _ in blocks]  # activations of every forward pass since the last reset

    def hook(i):
        def zero_channels(module, inputs, out):
            out = out.clone()
            out[:, sorted(zeroed[i])] = 0
            if out.requires_grad:
                out.retain_grad()
                seen[i].append(out)
            return out

        return zero_channels

    for i, b in enumerate(blocks):
        b.register_forward_hook(hook(i))
    net.requires_grad_(True)  # so that block outputs carry gradients
    x = prepare_batch(data.images[index : index + 1], CPU).double()
    y = data.labels[index : index + 1]
    gen = noise_generator(cfg.seed, index)
    removed = []
    step = 0
    while True:
        with torch.no_grad():
            pred = int(net(x).argmax())
        if pred != int(y) or step == cfg.max_removals:
            break
        for s in seen:
            s.clear()
        noisy = noisy_copies(x, cfg.noise_copies, cfg.noise_std, gen)
        loss_example = F.cross_entropy(net(noisy).mean(0, keepdim=True), y)
        idx = population_indices(cfg.seed, step, len(data.labels), cfg)
        loss_population = F.cross_entropy(net(prepare_batch(data.images[idx], CPU).double()), data.labels[idx])
        for lin in linear:
            lin.weight.grad = None
        (loss_example - loss_population).backward()
        scores, units = [], []
        for i in range(len(blocks)):  # zeroing channel c changes J by about -sum(a * dJ/da) over c
            s = -sum((a * a.grad).sum((0, 2, 3)) for a in seen[i])
            s[sorted(zeroed[i])] = float("-inf")
            scores.append(s)
            units += [(names[i], c) for c in range(len(s))]
        for j, lin in enumerate(linear):  # zeroing weight w changes J by about -w * dJ/dw
            w = lin.weight
            s = (-w * w.grad).flatten().detach().clone()
            s[w.detach().flatten() == 0] = float("-inf")
            scores.append(s)
            units += [(names[len(blocks) + j], k) for k in range(len(s))]
        best = int(torch.cat(scores).argmax())
        layer, unit = units[best]
        k = names.index(layer)
        if k < len(blocks):
            zeroed[k].add(unit)
        else:
            with torch.no_grad():
                linear[k - len(blocks)].weight.view(-1)[unit] = 0
        removed.append((layer, unit))
        step += 1
    with torch.no_grad():
        correct = net(prepare_batch(data.images, CPU).double()).argmax(1) == data.labels
    others = torch.arange(len(correct)) != index
    acc = {"clean": correct[others & ~data.group].double().mean().item(),
           "noisy": correct[others & data.group].double().mean().item()}
    return removed, pred, acc


@pytest.fixture(scope="module", params=[0, 2], ids=["one-population-batch", "resampled-every-2"])
def flipped(trained, request):
    """6 clean + 6 noisy examples, flipped by the reference, the plain loop and the batched
    one; the population batch fixed for the whole search (the head-Jacobian path of the
    batched search) or redrawn every 2 steps (its plain path)."""
    table, data, model = trained
    examples = select_examples(table, 6, seed=1)["index"].tolist()
    double = copy.deepcopy(model).double()
    cfg = FlipConfig(**{**CFG.__dict__, "resample_every": request.param})
    args = (data.images, data.labels, data.group, cfg, CPU)
    batched = results_frame(flip_examples(double, examples, *args, progress=False))
    plain = results_frame([flip_until_misclassified(double, i, *args) for i in examples])
    reference = {i: reference_flip(model, i, data, cfg) for i in examples}
    return examples, batched, plain, reference


def test_candidates_are_block_channels_and_linear_weights(trained):
    _, _, model = trained
    units = candidate_units(model)
    assert [u.layer for u in units] == [f"layer{i}" for i in range(1, 10)]
    assert [u.kind for u in units] == ["channel"] * 8 + ["weight"]
    assert units[-1].shape == (10, 16) and units[0].shape == (8,)
    assert [u.offset for u in units] == list(np.cumsum([0] + [u.size for u in units[:-1]]))


def test_removal_sequences_equal_the_reference_loop(flipped):
    examples, batched, plain, reference = flipped
    for impl in (batched, plain):
        assert impl["index"].tolist() == examples
        for row in impl.itertuples():
            removed, pred, acc = reference[row.index]
            assert list(zip(row.removed_layers, row.removed_units)) == removed, row.index
            assert row.removals == len(removed)
            assert row.flipped_to == (pred if not row.censored else -1)
            assert row.accuracy_clean == pytest.approx(acc["clean"])
            assert row.accuracy_noisy == pytest.approx(acc["noisy"])
    assert (batched["removals"] > 1).sum() >= 2  # the comparison covers multi-step searches
    assert batched["removed_layers"].explode().nunique() >= 3  # ... and units of several layers
    pd.testing.assert_frame_equal(batched, plain)


def _prediction_after(model, data, index, removals) -> int:
    """Prediction of the model with the given (layer, unit) removals, zeroed by hand."""
    net = copy.deepcopy(model).double()
    blocks = {f"layer{i + 1}": b for i, b in enumerate(m for m in net.modules() if isinstance(m, ConvBN))}
    for layer, unit in removals:
        if layer in blocks:
            blocks[layer].register_forward_hook(lambda m, i, out, c=unit: out.index_fill(1, torch.tensor([c]), 0))
        else:
            with torch.no_grad():
                net[-2].weight.view(-1)[unit] = 0
    with torch.no_grad():
        return int(net(prepare_batch(data.images[index : index + 1], CPU).double()).argmax())


def test_search_stops_at_the_first_flip(trained, flipped):
    _, data, model = trained
    _, batched, _, _ = flipped
    done = batched[~batched["censored"] & batched["initially_correct"]]
    assert len(done) >= 8
    for row in done.itertuples():
        removals = list(zip(row.removed_layers, row.removed_units))
        label = int(data.labels[row.index])
        before = [_prediction_after(model, data, row.index, removals[:k]) for k in range(len(removals))]
        assert before == [label] * len(removals)  # still right after 0 .. r-1 removals
        after = _prediction_after(model, data, row.index, removals)
        assert after == row.flipped_to != label  # wrong after r


def test_a_search_that_hits_the_maximum_is_censored(trained, flipped):
    _, data, model = trained
    _, batched, _, _ = flipped
    long = batched[batched["removals"] >= 2].iloc[0]
    cut = int(long["removals"]) - 1
    cfg = FlipConfig(**{**CFG.__dict__, "max_removals": cut})
    [res] = flip_examples(copy.deepcopy(model).double(), [int(long["index"])], data.images, data.labels, data.group,
                          cfg, CPU, progress=False)
    assert res.censored and res.removals == cut and res.flipped_to == -1 and res.initially_correct
    assert res.removed_units == list(long["removed_units"][:cut])
    # max_removals = 0: every correctly classified example is censored at 0
    cfg0 = FlipConfig(**{**CFG.__dict__, "max_removals": 0})
    zero = results_frame(flip_examples(model, batched["index"].tolist(), data.images, data.labels, data.group, cfg0,
                                       CPU, progress=False))
    assert (zero["removals"] == 0).all()
    assert (zero["censored"] == batched["initially_correct"]).all()


@pytest.mark.parametrize("smooth", [False, True])
def test_head_states_use_the_trunk_jacobian_and_agree_with_the_masked_model(trained, smooth):
    """States whose removals lie in the last block and the Linear take the shared-trunk path
    (features + Jacobian computed once); their gradients equal the masked model's."""
    _, data, model = trained
    double = copy.deepcopy(model).double().eval()
    units = candidate_units(double)
    cfg = FlipConfig(**{**CFG.__dict__, "resample_every": 0, "smooth_population": smooth})
    term = PopulationTerm(double, units, data.images, data.labels, cfg, CPU, torch.float64)
    assert term.head is not None
    assert [units[i].layer for i in term.head.trunk_units] == [f"layer{i}" for i in range(1, 8)]
    rng = np.random.default_rng(0)
    block, linear = units[term.head.block_unit], units[term.head.linear_unit]
    states = [frozenset()]
    for _ in range(5):  # random removals among the block's channels and the Linear's weights
        picks = rng.choice(block.size + linear.size, size=rng.integers(1, 4), replace=False)
        states.append(frozenset(int(block.offset + p) for p in picks))
    masks = full_masks(units, len(states), CPU, torch.float64)
    for k, state in enumerate(states):
        for f in state:
            remove(masks, units, k, f)
    via_head = term.gradients(3, states, masks)
    assert term._jacobian and not term.memo.keys() - {(0, s) for s in states}  # all took the head path
    direct = term._full_gradients(3, masks)
    kept = flat_masks(masks) == 1  # (a removed unit's own gradient is never used: it scores -inf)
    torch.testing.assert_close(via_head[kept], direct[kept], rtol=1e-9, atol=1e-12)
    trunk_state = frozenset({units[0].offset + 1})  # a removal in the trunk: the masked model itself
    assert not trunk_state <= term.head_flats
    one = full_masks(units, 1, CPU, torch.float64)
    remove(one, units, 0, units[0].offset + 1)
    torch.testing.assert_close(term.gradients(5, [trunk_state], one), term._full_gradients(5, one))


def test_population_batch_is_resampled_as_configured():
    n = 1000
    every_step = FlipConfig(population_batch=32, resample_every=1, seed=5)
    batches = [population_indices(5, t, n, every_step) for t in range(6)]
    assert all(len(b) == 32 and len(set(b.tolist())) == 32 for b in batches)
    assert all(not torch.equal(batches[t], batches[t + 1]) for t in range(5))
    assert not torch.equal(batches[0], torch.arange(32))  # a random batch, not the first rows
    assert len(set(torch.cat(batches).tolist())) > 150  # drawn from the whole training set
    every_third = FlipConfig(population_batch=32, resample_every=3, seed=5)
    b = [population_indices(5, t, n, every_third) for t in range(6)]
    assert torch.equal(b[0], b[1]) and torch.equal(b[1], b[2]) and torch.equal(b[3], b[5])
    assert not torch.equal(b[2], b[3])
    assert not torch.equal(population_indices(6, 0, n, every_step), batches[0])  # seeded per run
    once = FlipConfig(population_batch=32, resample_every=0, seed=5)  # one batch for the whole search
    assert all(torch.equal(population_indices(5, t, n, once), batches[0]) for t in range(50))


def test_sharded_equals_unsharded(trained):
    table, data, model = trained
    chosen = select_examples(table, 5, seed=2, shards=3)
    cfg = FlipConfig(**{**CFG.__dict__, "examples_per_batch": 12})
    evaluate = accuracy_rows(len(table), 100, seed=0)
    args = (data.images, data.labels, data.group)
    whole = results_frame(flip_examples(model, chosen["index"].tolist(), *args, cfg, CPU, evaluate, progress=False))
    parts = []
    for shard, part in chosen.groupby("shard"):
        small = FlipConfig(**{**CFG.__dict__, "examples_per_batch": 1 + int(shard)})
        parts.append(results_frame(flip_examples(model, part["index"].tolist(), *args, small, CPU, evaluate,
                                                 progress=False)))
    sharded = pd.concat(parts).set_index("index").loc[whole["index"]].reset_index()
    pd.testing.assert_frame_equal(sharded, whole)


def test_example_selection_is_seeded_and_balanced(trained):
    table, _, _ = trained
    a = select_examples(table, 10, seed=4, shards=3)
    assert a.equals(select_examples(table, 10, seed=4, shards=3))
    assert not a["index"].equals(select_examples(table, 10, seed=5, shards=3)["index"])
    assert a["is_noisy"].sum() == 10 and (~a["is_noisy"]).sum() == 10 and a["index"].is_unique
    assert (table.set_index("index").loc[a["index"], "is_noisy"].to_numpy() == a["is_noisy"].to_numpy()).all()
    assert sorted(a.groupby("shard").size()) == [6, 7, 7]
    assert (a.groupby("shard")["is_noisy"].sum() >= 3).all()
    few = select_examples(table, 1000, seed=4)  # more than a group has: all of it
    assert few["is_noisy"].sum() == table["is_noisy"].sum() and len(few) == len(table)
    rows = accuracy_rows(200, 50, seed=0)
    assert len(rows) == 50 and rows.unique().numel() == 50 and torch.equal(rows, rows.sort().values)
    assert torch.equal(accuracy_rows(200, None, seed=0), torch.arange(200))
