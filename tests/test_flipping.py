"""Neuron flipping against a plain reference loop written here, on a tiny trained ResNet-9.

The reference takes its scores from autograd on the block activations and the Linear
weights directly (no masks) and zeroes units on its own copy of the model; both terms of
its objective and its flip test go through the noise-averaged classifier F̄.  memloc's
randomness (noisy_copies, population_indices) is the specification of the objective's
noise and population batches, so both draw the same.
"""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from schema_defaults import data_source, flip_config, model_config, train_config
from torch import nn

from memloc.core.data.noise import make_corrupted_table
from memloc.core.data.run_data import RunData, training_set
from memloc.core.models.blocks import ConvBN
from memloc.core.train.checkpoints import model_from_checkpoint
from memloc.core.train.evaluation import prepare_batch
from memloc.core.train.run import train
from memloc.flipping.accuracy import accuracy_rows
from memloc.flipping.batched import flip_examples, folded_batchnorm
from memloc.flipping.jobs import select_examples
from memloc.flipping.masks import full_masks, mask_gradients, remove
from memloc.flipping.objective import (
    FlippingProblem,
    flip_until_misclassified,
    input_noise,
    noisy_copies,
    population_indices,
    population_rows,
    results_frame,
)
from memloc.flipping.population import PopulationTerm
from memloc.flipping.units import candidate_units

CPU = torch.device("cpu")
# noise at 20% of the input's norm (the default is the authors' 1%), so that F̄ and its
# noise matter here: a wrong seed or scale shows as different removals
CFG = flip_config(max_removals=25, noise_copies=3, noise_scale=0.2, population_batch=16, resample_every=0, seed=3,
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
    table = make_corrupted_table("fashion_mnist", data_source(fashion_root), 0.2, subset=200, seed=0)
    data = training_set(table, data_source(fashion_root).load("fashion_mnist", train=True), "is_noisy")
    cfg = train_config(epochs=16, peak_epoch=8, batch_size=32, seed=0, gradient_accounting=False)
    run_data = RunData(data, data.images[:10], data.labels[:10])
    ckpts = train(model_config("resnet9", 10, 1, 28, width=0.125), cfg, run_data, tmp_path_factory.mktemp("flip_run"),
                  CPU, progress=False)
    model = model_from_checkpoint(ckpts[-1], CPU).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return table, data, model


def smoothed(net, x, index, step, cfg):
    """F̄'s logits [E, K]: the mean of the logits over the noisy copies of x [E, ...] (rows index)."""
    noisy = noisy_copies(x, index, step, cfg)
    return net(noisy).view(len(x), cfg.noise_copies, -1).mean(1)


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
    removed = []
    step = 0
    while True:
        for s in seen:
            s.clear()
        for lin in linear:
            lin.weight.grad = None
        logits = smoothed(net, x, [index], step, cfg)  # F̄ decides the flip and gives J's first term
        pred = int(logits.argmax())
        if pred != int(y) or step == cfg.max_removals:
            break
        idx = population_indices(cfg.seed, step, len(data.labels), cfg)
        px = prepare_batch(data.images[idx], CPU).double()
        loss_population = F.cross_entropy(smoothed(net, px, idx.tolist(), step, cfg), data.labels[idx])
        (F.cross_entropy(logits, y) - loss_population).backward()
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
    with torch.no_grad():  # post-removal accuracy: the clean inputs
        correct = net(prepare_batch(data.images, CPU).double()).argmax(1) == data.labels
    others = torch.arange(len(correct)) != index
    acc = {"clean": correct[others & ~data.group].double().mean().item(),
           "noisy": correct[others & data.group].double().mean().item()}
    return removed, pred, acc


@pytest.fixture(scope="module", params=[0, 2], ids=["one-population-batch", "resampled-every-2"])
def flipped(trained, request):
    """6 clean + 6 noisy examples, flipped by the reference, the plain loop and the batched
    one; the population batch fixed for the whole search or redrawn every 2 steps (its
    noisy copies are drawn afresh at every step either way)."""
    table, data, model = trained
    examples = select_examples(table, 6, seed=1)["index"].tolist()
    double = copy.deepcopy(model).double()
    cfg = flip_config(**{**CFG.__dict__, "resample_every": request.param})
    args = (data, cfg, CPU)
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


def _prediction_after(model, data, index, removals, cfg) -> int:
    """F̄'s prediction with the given (layer, unit) removals, zeroed by hand, on the noisy
    copies of step len(removals) (the step at which the search tests it)."""
    net = copy.deepcopy(model).double()
    blocks = {f"layer{i + 1}": b for i, b in enumerate(m for m in net.modules() if isinstance(m, ConvBN))}
    for layer, unit in removals:
        if layer in blocks:
            blocks[layer].register_forward_hook(lambda m, i, out, c=unit: out.index_fill(1, torch.tensor([c]), 0))
        else:
            with torch.no_grad():
                net[-2].weight.view(-1)[unit] = 0
    with torch.no_grad():
        x = prepare_batch(data.images[index : index + 1], CPU).double()
        return int(smoothed(net, x, [index], len(removals), cfg).argmax())


def test_search_stops_at_the_first_flip(trained, flipped):
    """The search stops when F̄ (not the clean input) first predicts another class."""
    _, data, model = trained
    _, batched, _, _ = flipped
    done = batched[~batched["censored"] & batched["initially_correct"]]
    assert len(done) >= 8
    for row in done.itertuples():
        removals = list(zip(row.removed_layers, row.removed_units))
        label = int(data.labels[row.index])
        before = [_prediction_after(model, data, row.index, removals[:k], CFG) for k in range(len(removals))]
        assert before == [label] * len(removals)  # still right after 0 .. r-1 removals
        after = _prediction_after(model, data, row.index, removals, CFG)
        assert after == row.flipped_to != label  # wrong after r
    wrong = batched[~batched["initially_correct"]]  # F̄ wrong before any removal: nothing removed
    assert (wrong["removals"] == 0).all()
    assert (wrong["flipped_to"].to_numpy() != data.labels[wrong["index"].to_numpy()].numpy()).all()


def test_a_search_that_hits_the_maximum_is_censored(trained, flipped):
    _, data, model = trained
    _, batched, _, _ = flipped
    long = batched[batched["removals"] >= 2].iloc[0]
    cut = int(long["removals"]) - 1
    cfg = flip_config(**{**CFG.__dict__, "max_removals": cut})
    [res] = flip_examples(copy.deepcopy(model).double(), [int(long["index"])], data, cfg, CPU, progress=False)
    assert res.censored and res.removals == cut and res.flipped_to == -1 and res.initially_correct
    assert res.removed_units == list(long["removed_units"][:cut])
    # max_removals = 0: every correctly classified example is censored at 0
    cfg0 = flip_config(**{**CFG.__dict__, "max_removals": 0})
    zero = results_frame(flip_examples(model, batched["index"].tolist(), data, cfg0,
                                       CPU, progress=False))
    assert (zero["removals"] == 0).all()
    assert (zero["censored"] == batched["initially_correct"]).all()


def test_population_states_equal_the_masked_model(trained):
    """Each state's population gradient (the unmasked prefix shared, the masked suffix per
    state, the prefix's masks by a backward pass through the shared graph) equals the
    masked model's own on the step's noisy population rows; states are computed once."""
    _, data, model = trained
    double = copy.deepcopy(model).double().eval()
    units = candidate_units(double)
    term = PopulationTerm(FlippingProblem(double, units, data, CFG, CPU, torch.float64))
    rng = np.random.default_rng(0)
    n = term.candidates
    linear, block = units[-1], units[-2]
    states = [frozenset(), frozenset({units[0].offset + 1}), frozenset({linear.offset + 3}),
              frozenset({block.offset, linear.offset + 7})]
    states += [frozenset(int(f) for f in rng.choice(n, size=k, replace=False)) for k in (1, 2, 3, 3)]
    starts = {term.first_stage(s) for s in states}
    assert {0, len(term.stages)} <= starts and len(starts) >= 4  # the whole model, no prefix, and between
    masks = full_masks(units, len(states), CPU, torch.float64)
    for k, state in enumerate(states):
        for f in state:
            remove(masks, units, k, f)
    got = term.gradients(3, states, masks)
    px, py = population_rows(data.images, data.labels, 3, CFG, CPU, torch.float64)
    K, R = CFG.noise_copies, len(px)
    x = px.repeat(len(states), 1, 1, 1).contiguous(memory_format=torch.channels_last)
    direct, _ = mask_gradients(double, units, masks, x, py.repeat(len(states)), R, K)
    torch.testing.assert_close(got, direct, rtol=1e-9, atol=1e-12)
    assert set(term.memo) == {(3, s) for s in states}
    again = term.gradients(3, states[::-1], [m.flip(0) for m in masks])  # memoized, in any order
    torch.testing.assert_close(again, got.flip(0), rtol=0, atol=0)
    other_step = term.gradients(4, states[:1], [m[:1] for m in masks])  # step 4: other noise, other gradient
    assert not torch.allclose(other_step[0], got[0])


def test_noise_is_seeded_by_seed_step_and_row(trained):
    """The noise of training row r at step t comes from (seed, t, r) alone: the population
    term draws for a row exactly what the example term draws for it, whatever else is asked
    for with it; each copy's noise norm is noise_scale times the input's norm."""
    _, data, _ = trained
    cfg = flip_config(**{**CFG.__dict__, "population_batch": 40})
    K, step = cfg.noise_copies, 4
    idx = population_indices(cfg.seed, step, len(data.labels), cfg)
    px, _ = population_rows(data.images, data.labels, step, cfg, CPU, torch.float64)
    for j in (0, 7, 39):  # a population row's copies are those of the row flipped as an example
        r = int(idx[j])
        alone = noisy_copies(prepare_batch(data.images[r : r + 1], CPU).double(), [r], step, cfg)
        torch.testing.assert_close(px[j * K : (j + 1) * K], alone, rtol=0, atol=0)
    x = prepare_batch(data.images[idx], CPU).double()
    norms = (px.view(len(idx), K, -1) - x.view(len(idx), 1, -1)).norm(dim=2)  # [rows, copies]
    torch.testing.assert_close(norms, cfg.noise_scale * x.flatten(1).norm(dim=1)[:, None].expand(-1, K))
    shape = (1, 4, 4)
    a = input_noise(3, 4, [10, 11], 2, shape)
    assert torch.equal(a, input_noise(3, 4, [10, 11], 2, shape))
    assert torch.equal(a[1], input_noise(3, 4, [11], 2, shape)[0])  # independent of the rows asked with it
    assert not torch.equal(a[0], a[1]) and not torch.equal(a[0, 0], a[0, 1])  # rows and copies differ
    assert not torch.equal(a, input_noise(3, 5, [10, 11], 2, shape))  # a new draw at every step
    assert not torch.equal(a, input_noise(4, 4, [10, 11], 2, shape))  # seeded by the run
    quiet = flip_config(**{**cfg.__dict__, "noise_scale": 0.0})
    torch.testing.assert_close(population_rows(data.images, data.labels, step, quiet, CPU, torch.float64)[0],
                               x.repeat_interleave(quiet.noise_copies, 0), rtol=0, atol=0)


def test_folded_batchnorm_is_the_same_function(trained):
    """The batched search runs a copy with BatchNorm folded into the convolutions: the same
    logits and block outputs (what channel masks scale), the given model untouched."""
    _, data, model = trained
    double = copy.deepcopy(model).double().eval()
    before = {k: v.clone() for k, v in double.state_dict().items()}
    folded = folded_batchnorm(double)
    x = prepare_batch(data.images[:50], CPU).double()
    with torch.no_grad():
        torch.testing.assert_close(folded(x), double(x), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(folded[:2](x), double[:2](x), rtol=1e-10, atol=1e-10)
    assert all(torch.equal(v, double.state_dict()[k]) for k, v in before.items())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    units = [[(u.layer, u.shape) for u in candidate_units(net)] for net in (folded, double)]
    assert units[0] == units[1]


def test_population_batch_is_resampled_as_configured():
    n = 1000
    every_step = flip_config(population_batch=32, resample_every=1, seed=5)
    batches = [population_indices(5, t, n, every_step) for t in range(6)]
    assert all(len(b) == 32 and len(set(b.tolist())) == 32 for b in batches)
    assert all(not torch.equal(batches[t], batches[t + 1]) for t in range(5))
    assert not torch.equal(batches[0], torch.arange(32))  # a random batch, not the first rows
    assert len(set(torch.cat(batches).tolist())) > 150  # drawn from the whole training set
    every_third = flip_config(population_batch=32, resample_every=3, seed=5)
    b = [population_indices(5, t, n, every_third) for t in range(6)]
    assert torch.equal(b[0], b[1]) and torch.equal(b[1], b[2]) and torch.equal(b[3], b[5])
    assert not torch.equal(b[2], b[3])
    assert not torch.equal(population_indices(6, 0, n, every_step), batches[0])  # seeded per run
    once = flip_config(population_batch=32, resample_every=0, seed=5)  # one batch for the whole search
    assert all(torch.equal(population_indices(5, t, n, once), batches[0]) for t in range(50))


def test_sharded_equals_unsharded(trained):
    """The same results whichever examples are searched together: every random draw (the
    examples' and the population's noise, the population batch) depends on (seed, step, row)."""
    table, data, model = trained
    chosen = select_examples(table, 5, seed=2, shards=3)
    cfg = flip_config(**{**CFG.__dict__, "examples_per_batch": 12})
    evaluate = accuracy_rows(len(table), 100, seed=0)
    args = (data,)
    whole = results_frame(flip_examples(model, chosen["index"].tolist(), *args, cfg, CPU, evaluate, progress=False))
    parts = []
    for shard, part in chosen.groupby("shard"):
        small = flip_config(**{**CFG.__dict__, "examples_per_batch": 1 + int(shard)})
        parts.append(results_frame(flip_examples(model, part["index"].tolist(), *args, small, CPU, evaluate,
                                                 progress=False)))
    sharded = pd.concat(parts).set_index("index").loc[whole["index"]].reset_index()
    pd.testing.assert_frame_equal(sharded, whole)
    assert (whole["removals"] > 1).any()  # covers a search of several steps


def test_example_selection_is_seeded_and_balanced(trained):
    table, _, _ = trained
    a = select_examples(table, 10, seed=4, shards=3)
    assert a.equals(select_examples(table, 10, seed=4, shards=3))
    assert not a["index"].equals(select_examples(table, 10, seed=5, shards=3)["index"])
    assert a["is_noisy"].sum() == 10 and (~a["is_noisy"]).sum() == 10 and a["index"].is_unique
    assert (table.set_index("index").loc[a["index"], "is_noisy"].to_numpy() == a["is_noisy"].to_numpy()).all()
    assert sorted(a.groupby("shard").size()) == [6, 7, 7]
    assert (a.groupby("shard")["is_noisy"].sum() >= 3).all()
    for shards in (2, 4):  # an even number of shards: the alternating rows must not split by group
        b = select_examples(table, 10, seed=4, shards=shards)
        counts = pd.crosstab(b["shard"], b["is_noisy"])
        assert counts.shape == (shards, 2) and counts.to_numpy().min() >= 10 // shards, counts
    with pytest.raises(ValueError, match=r"examples_per_group \(1000\) is larger than the \d+ clean examples"):
        select_examples(table, 1000, seed=4)  # more than a group has: no silent cap
    rows = accuracy_rows(200, 50, seed=0)
    assert len(rows) == 50 and rows.unique().numel() == 50 and torch.equal(rows, rows.sort().values)
    assert torch.equal(accuracy_rows(200, None, seed=0), torch.arange(200))


def test_parameter_candidates_score_weight_times_gradient_and_flip(trained):
    """The authors' candidate set (memloc.flipping.parameters): one candidate per conv filter
    and per element of every other parameter, scored -w * dJ/dw (summed over a filter); the
    search zeroes until F̄ leaves the label, on its own copy of the model."""
    from memloc.flipping.parameters import first_order_rise, flip_parameters_until_misclassified, parameter_candidates

    table, data, model = trained
    net = copy.deepcopy(model)
    for p in net.parameters():
        p.requires_grad_(True)
    cands = parameter_candidates(net)
    assert sum(cands.sizes()) == sum(p.shape[0] if p.ndim == 4 else p.numel() for p in net.parameters())
    assert set(cands.layers) == {f"layer{i}" for i in range(1, 10)}
    x = prepare_batch(data.images[:4], CPU)
    F.cross_entropy(net(x), data.labels[:4]).backward()
    score = first_order_rise(cands)
    first = next(p for p in net.parameters())  # the first conv's weight [out, in, k, k]
    assert first.ndim == 4
    torch.testing.assert_close(score[: first.shape[0]], -(first * first.grad).sum((1, 2, 3)))
    before = [p.detach().clone() for p in model.parameters()]
    for i in select_examples(table, 2, seed=1)["index"].tolist():
        r = flip_parameters_until_misclassified(net, i, data, CFG, CPU, torch.arange(len(data.labels)))
        assert r.removals == len(r.removed_layers) == len(r.removed_units)
        assert r.censored or r.flipped_to != int(data.labels[i])
        assert 0.0 <= r.accuracy_train <= 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the search edits a copy
