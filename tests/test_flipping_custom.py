"""Neuron flipping on a model memloc has never seen (issue #13), and its row budget (#14).

The model is a small CNN written here, not a ResNet: conv-BN-ReLU blocks in an
nn.Sequential `features`, a bare conv whose ReLU is functional (F.relu in forward), a
hidden Linear + ReLU module and a final Linear, trained briefly on 200 real Fashion-MNIST
examples.  `seq` is the same function as one nn.Sequential with that ReLU as a module, so
the search runs stage by stage on it; the searches on both must agree (ReLU(m z) = m ReLU(z)).
"""

import copy

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from schema_defaults import data_source, flip_config
from torch import nn

from memloc.core.data.noise import make_corrupted_table
from memloc.core.data.run_data import training_set
from memloc.core.train.evaluation import prepare_batch
from memloc.flipping.batched import flip_examples, folded_batchnorm
from memloc.flipping.budget import GIB, SavedBytes, budget_rows, memory_budget, row_budget, row_cost
from memloc.flipping.jobs import select_examples
from memloc.flipping.masks import flat_masks, full_masks, mask_gradients, masked_logits, model_stages, remove
from memloc.flipping.objective import FlippingProblem, flip_until_misclassified, noisy_copies, results_frame
from memloc.flipping.population import PopulationTerm
from memloc.flipping.units import candidate_units, check_units

CPU = torch.device("cpu")
# 20% input noise (the authors' 1% hardly matters on this model), 8 population rows
CFG = flip_config(seed=3, max_removals=20, noise_copies=3, noise_scale=0.2, population_batch=8, examples_per_batch=4,
                 max_rows=4096, resample_every=0)


class SmallCNN(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, padding=1),  # bare: no BN, its ReLU is applied functionally
        )
        self.pool = nn.AdaptiveAvgPool2d(3)
        self.hidden = nn.Linear(72, 16)
        self.act = nn.ReLU()
        self.head = nn.Linear(16, classes)

    def forward(self, x):
        h = self.pool(F.relu(self.features(x))).flatten(1)
        return self.head(self.act(self.hidden(h)))


def sequential(net: SmallCNN) -> nn.Sequential:
    """The same function (the same modules) as one nn.Sequential, the functional ReLU a module."""
    return nn.Sequential(*net.features, nn.ReLU(), net.pool, nn.Flatten(), net.hidden, net.act, net.head)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """One thread: the model is tiny, and float64 sums then come out the same in every pass."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(fashion_root):
    """SmallCNN trained 60 epochs (SGD) on 200 Fashion-MNIST examples with 20% label noise
    (fits ~97% of the clean and ~60% of the noisy ones), in float64 from here on (the
    comparisons below are of removal sequences)."""
    table = make_corrupted_table("fashion_mnist", data_source(fashion_root), 0.2, subset=200, seed=0)
    data = training_set(table, data_source(fashion_root).load("fashion_mnist", train=True), "is_noisy")
    torch.manual_seed(0)
    net = SmallCNN()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    x = prepare_batch(data.images, CPU)
    for _ in range(60):
        for idx in torch.randperm(len(x)).split(25):
            opt.zero_grad()
            F.cross_entropy(net(x[idx]), data.labels[idx]).backward()
            opt.step()
    net = net.double().eval().requires_grad_(False)
    return table, data, net


def test_units_are_derived_from_the_module_tree(trained):
    _, _, net = trained
    units = candidate_units(net)
    # conv-BN-ReLU: after the ReLU; the bare conv: its output; the hidden Linear: after its
    # ReLU module; the final Linear: its weights (the paper's single weights)
    assert [u.name for u in units] == ["features.2", "features.6", "features.8", "act", "head"]
    assert [u.kind for u in units] == ["channel", "channel", "channel", "feature", "weight"]
    assert [u.shape for u in units] == [(6,), (8,), (8,), (16,), (10, 16)]
    assert [u.offset for u in units] == [0, 6, 14, 22, 38]
    assert [u.module for u in units] == [net.features[2], net.features[6], net.features[8], net.act, net.head]
    seq = sequential(net)
    seq_units = candidate_units(seq)
    assert [u.name for u in seq_units] == ["2", "6", "9", "13", "14"]  # the functional ReLU is module 9 here
    assert [(u.kind, u.shape) for u in seq_units] == [(u.kind, u.shape) for u in units]
    stages, where = model_stages(seq, seq_units)
    assert len(stages) == 9 and where == [0, 2, 4, 7, 8]  # norms and activations join the stage before them
    assert model_stages(net, units)[1] == [0] * 5  # a custom forward: the whole model is one stage


def test_flip_modules_override(trained):
    _, _, net = trained
    named = copy.deepcopy(net)
    named.memloc_flip_modules = ["features.4", "hidden", "features.1"]  # conv block, Linear block, a BN itself
    units = candidate_units(named)
    assert [(u.name, u.kind, u.shape) for u in units] == [
        ("features.6", "channel", (8,)), ("act", "feature", (16,)), ("features.1", "channel", (6,))]
    named.memloc_flip_modules = ["features", "head"]  # a container: masked on its output, the last conv's channels
    assert [(u.name, u.kind, u.shape) for u in candidate_units(named)] == [
        ("features", "channel", (8,)), ("head", "weight", (10, 16))]
    named.memloc_flip_modules = ["features.9"]
    with pytest.raises(ValueError, match=r"memloc_flip_modules.*'features.9'"):
        candidate_units(named)


def test_a_module_run_twice_is_refused():
    class SharedReLU(nn.Module):  # one ReLU module after both convs, as torchvision's ResNets do
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1, self.relu = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU()
            self.conv2, self.fc = nn.Conv2d(4, 4, 3), nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(self.relu(self.conv2(self.relu(self.bn1(self.conv1(x))))).mean((2, 3)))

    model = SharedReLU().eval()
    units = candidate_units(model)
    assert units[0].name == "relu"
    with pytest.raises(ValueError, match="'relu'.*runs 2 times"):
        check_units(model, units, torch.randn(1, 1, 8, 8))
    model.memloc_flip_modules = ["bn1", "conv2", "fc"]  # the override fixes it
    check_units(model, candidate_units(model), torch.randn(1, 1, 8, 8))


def test_a_functional_relu_is_masked_like_a_relu_module(trained):
    """The bare conv's mask scales its output before F.relu; in `seq` it scales the ReLU
    module's output: the same logits and mask gradients, removed units or not."""
    _, data, net = trained
    seq = sequential(net)
    units, seq_units = candidate_units(net), candidate_units(seq)
    masks = full_masks(units, 2, CPU, torch.float64)
    for f in (15, 17, 25, 40):  # two channels of the bare conv, a hidden feature, a weight
        remove(masks, units, 1, f)
    x = prepare_batch(data.images[:6], CPU).double()
    y = data.labels[:2]
    torch.testing.assert_close(masked_logits(net, units, masks, x, 3), masked_logits(seq, seq_units, masks, x, 3))
    g, p = mask_gradients(net, units, masks, x, y, 3, 3)
    g_seq, p_seq = mask_gradients(seq, seq_units, masks, x, y, 3, 3)
    kept = flat_masks(masks) == 1  # a removed unit's score is never used (-inf): at m = 0 the two differ
    torch.testing.assert_close(g[kept], g_seq[kept], rtol=1e-10, atol=1e-12)
    assert torch.equal(p, p_seq) and g[kept].abs().sum() > 0


def test_folding_is_exact_where_it_applies(trained):
    _, data, net = trained
    folded = folded_batchnorm(net)
    assert isinstance(folded.features[1], nn.Identity) and isinstance(folded.features[5], nn.Identity)
    assert isinstance(net.features[1], nn.BatchNorm2d)  # the given model untouched
    x = prepare_batch(data.images[:20], CPU).double()
    torch.testing.assert_close(folded(x), net(x), rtol=1e-10, atol=1e-10)
    named = copy.deepcopy(net)
    named.memloc_flip_modules = ["features.1", "features.5"]  # the BNs' outputs: folded, masked on the Identity
    folded_named = folded_batchnorm(named)
    assert isinstance(folded_named.features[1], nn.Identity) and isinstance(folded_named.features[5], nn.Identity)
    torch.testing.assert_close(folded_named(x), net(x), rtol=1e-10, atol=1e-10)


@pytest.fixture(scope="module")
def flipped(trained):
    """4 clean + 4 noisy examples flipped on `net` and `seq` by the batched search and the
    one-example reference loop."""
    table, data, net = trained
    examples = select_examples(table, 4, seed=1)["index"].tolist()
    args = (data, CFG, CPU)
    out = {}
    for name, model in (("net", net), ("seq", sequential(net))):
        out[name] = (results_frame(flip_examples(model, examples, *args, progress=False)),
                     results_frame([flip_until_misclassified(model, i, *args) for i in examples]))
    return examples, out


def test_batched_search_equals_the_reference_loop(flipped):
    examples, out = flipped
    for batched, plain in out.values():
        assert batched["index"].tolist() == examples
        pd.testing.assert_frame_equal(batched, plain)
    batched = out["net"][0]
    assert (batched["removals"] > 1).sum() >= 2  # multi-step searches ...
    assert batched["removed_layers"].explode().nunique() >= 2  # ... removing units of several layers


def test_functional_and_module_relu_give_the_same_search(trained, flipped):
    """The same units removed in the same order (their layers may be named and grouped
    differently: model_layers of each model)."""
    _, _, model = trained
    _, out = flipped

    def flat(frame, units):  # (layer, index within the layer) -> flat candidate index
        first = {}
        for u in units:
            first.setdefault(u.layer, u.offset)
        return [[first[layer] + k for layer, k in zip(*row)] for row in zip(frame["removed_layers"],
                                                                          frame["removed_units"])]

    net, seq = out["net"][0], out["seq"][0]
    assert flat(net, candidate_units(model)) == flat(seq, candidate_units(sequential(model)))
    same = [c for c in net.columns if c not in ("removed_layers", "removed_units")]
    pd.testing.assert_frame_equal(net[same], seq[same])


# -- the row budget (#14) --------------------------------------------------------------


def test_row_cost_is_measured_at_the_jobs_precision(trained):
    _, data, net = trained
    units = candidate_units(net)
    cost64 = row_cost(FlippingProblem(net, units, data, CFG, CPU, torch.float64))
    net32 = copy.deepcopy(net).float()
    cost32 = row_cost(FlippingProblem(net32, candidate_units(net32), data, CFG, CPU, torch.float32))
    assert 1.6 * cost32.per_row < cost64.per_row <= 2 * cost32.per_row  # max-pool indices stay int64
    assert cost64.per_row > 28 * 28 * 8  # at least the input row, saved by the first conv


def test_saved_bytes_at_the_derived_rows_stay_within_the_cap(trained):
    """With a cap, the rows per pass are those whose saved tensors fit it, measured on the
    largest pass of the example term and on a call of the population term (its shared
    unmasked pass over stages 0-7 and a chunk of states that run the whole model)."""
    _, data, net = trained
    seq = sequential(net)
    units = candidate_units(seq)
    cost = row_cost(FlippingProblem(seq, units, data, CFG, CPU, torch.float64))
    K, P = CFG.noise_copies, CFG.population_batch
    cap = cost.rest + (5 * P * K + 0.5) * cost.per_row  # room for 4 population states beside the shared pass
    cfg = flip_config(**{**CFG.__dict__, "memory_gb": cap / GIB})
    rows = row_budget(FlippingProblem(seq, units, data, cfg, CPU, torch.float64))
    assert rows == 4 * P * K < cfg.max_rows
    owners = rows // K
    noisy = noisy_copies(prepare_batch(data.images[:owners], CPU).double(), list(range(owners)), 0, cfg)
    with SavedBytes() as example_pass:
        mask_gradients(seq, units, full_masks(units, owners, CPU, torch.float64), noisy, data.labels[:owners], K, K)
    assert 0.7 * cap < example_pass.total <= cap
    term = PopulationTerm(FlippingProblem(seq, units, data, flip_config(**{**cfg.__dict__, "max_rows": rows}), CPU,
                                          torch.float64))
    states = [frozenset({f}) for f in (0, 2, 3, 5, 40)]  # 4 from stage 0 (one chunk), 1 from the last stage
    assert [term.first_stage(st) for st in states] == [0, 0, 0, 0, 8]
    masks = full_masks(units, len(states), CPU, torch.float64)
    for k, st in enumerate(states):
        remove(masks, units, k, next(iter(st)))
    with SavedBytes() as population_pass:
        term.gradients(0, states, masks)
    assert 0.7 * cap < population_pass.total <= cap
    with pytest.raises(ValueError, match="flipping.memory_gb"):
        budget_rows(cost, int(cost.rest + 1.5 * P * K * cost.per_row), cfg)
    assert memory_budget(None, CPU) is None  # CPU, no cap set: max_rows alone bounds a pass
    assert row_budget(FlippingProblem(seq, units, data, CFG, CPU, torch.float64)) == CFG.max_rows


def test_results_do_not_depend_on_the_row_budget(trained):
    """A cap that chunks every pass (2 examples per pass of the example term, 1 state per
    chunk of the population term) gives the uncapped search's results."""
    table, data, net = trained
    examples = select_examples(table, 3, seed=2)["index"].tolist()
    cfg = flip_config(**{**CFG.__dict__, "population_batch": 2})
    K, P = cfg.noise_copies, cfg.population_batch
    for model in (net, sequential(net)):
        folded = folded_batchnorm(model)
        cost = row_cost(FlippingProblem(folded, candidate_units(folded), data, cfg, CPU, torch.float64))
        capped = flip_config(**{**cfg.__dict__, "memory_gb": (cost.rest + (2 * P * K + 1.5) * cost.per_row) / GIB})
        assert budget_rows(cost, memory_budget(capped.memory_gb, CPU), capped) == P * K + 1  # 2 owners of 3 rows
        args = (examples, data)
        small = results_frame(flip_examples(model, *args, capped, CPU, progress=False))
        whole = results_frame(flip_examples(model, *args, cfg, CPU, progress=False))
        pd.testing.assert_frame_equal(small, whole)
        assert (whole["removals"] > 1).any()
