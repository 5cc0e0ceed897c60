"""The localization benchmark (issue 23): every method finds the one unit that carries an
example's prediction in a hand-built network, random does not, the batched path of each
method equals its plain reference, neuron flipping's search on a tied model is
memloc.flipping's, and the ground truth read back from the hash is what training masked in."""

import pytest
import torch
from schema_defaults import default_config, flip_config
from torch import nn

from memloc.core.data.run_data import TrainingSet
from memloc.core.example_index import forward_with_index
from memloc.core.models.build import ModelConfig
from memloc.dropout.model import DropoutModelConfig
from memloc.dropout.tied import ExampleTiedDropout, tied_modules
from memloc.flipping.objective import flip_until_misclassified
from memloc.flipping.units import Unit, candidate_units
from memloc.localize.context import Context, Examples, tied_units
from memloc.localize.deletion import predictions_without
from memloc.localize.ground_truth import memorization_units, precision_recall
from memloc.localize.methods import METHODS, rank_units, top_units
from memloc.localize.neuron_flipping import greedy_removals

CPU = torch.device("cpu")
torch.manual_seed(0)


def settings(**changes) -> dict:
    s = default_config()["localization"]
    s["flipping"] = {**s["flipping"], "max_removals": 4, "population_batch": 4, "noise_copies": 2}
    s["slimming"] = {**s["slimming"], "steps": 20}
    s["hard_concrete"] = {**s["hard_concrete"], "steps": 20}
    return {**s, **changes}


def hand_built() -> nn.Sequential:
    """4 inputs -> 8 hidden ReLU features -> 3 classes.  Input 0 drives hidden feature 0 alone
    (2.0 for x = e0), which alone carries class 2 (weight 1.5); features 1-7 are 0.5 (their
    bias) for every input and each adds 0.1 to class 0: zeroing feature 0 flips e0 to class 0."""
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].weight[0, 0] = 2.0
        net[0].bias.fill_(0.5)
        net[0].bias[0] = 0.0
        net[2].weight.zero_()
        net[2].bias.zero_()
        net[2].weight[2, 0] = 1.5
        net[2].weight[0, 1:] = 0.2
        net[2].weight[1, 1:] = 0.1
    return net


def hand_built_context(seed: int = 0) -> tuple[Context, Examples]:
    net = hand_built()
    images = torch.cat([torch.eye(4)[:1], torch.rand(15, 4) * 0.2])  # float rows: used as they are
    labels = net(images).argmax(1)
    data = TrainingSet(images, labels, torch.zeros(16, dtype=torch.bool), labels)
    units = [Unit("hidden", net[1], "feature", (8,), 0, "1")]  # the hidden features only
    ctx = Context(net, units, settings(), seed, data, CPU, 4096)
    return ctx, Examples(images[:1], labels[:1], torch.tensor([0]))


def test_the_example_is_carried_by_one_unit():
    ctx, ex = hand_built_context()
    assert ex.y.item() == 2
    assert predictions_without(ctx, ex, torch.tensor([[0]])).item() == 0
    assert all(predictions_without(ctx, ex, torch.tensor([[j]])).item() == 2 for j in range(1, 8))


@pytest.mark.parametrize("method", [m for m in METHODS if m != "random"])
def test_each_method_ranks_the_carrying_unit_first(method):
    ctx, ex = hand_built_context()
    for reference in (False, True):
        assert top_units(rank_units(method, ctx, ex, reference), 1).item() == 0


def test_random_does_not_rank_it_first_on_average():
    firsts = [top_units(rank_units("random", *hand_built_context(seed)), 1).item() == 0 for seed in range(200)]
    assert sum(firsts) / len(firsts) < 0.3  # 1/8 expected


def small_model(tied: bool, width: float = 0.125) -> nn.Module:
    kw = dict(name="resnet9", num_classes=10, in_channels=1, image_size=16, settings={"width": width}, factory=None,
              layers=None, flip_modules=None, dropout_after=None)
    if tied:
        dropout = dict(kind="example_tied", p_gen=0.4, p_mem=0.2, seed=3, placement="stages", drop_scale="none")
        return DropoutModelConfig(**kw, dropout=dropout).build().eval()
    return ModelConfig(**kw).build().eval()


def small_context(tied: bool, width: float = 0.125, rows=(3, 7, 10, 21)) -> tuple[Context, Examples]:
    torch.manual_seed(1)
    model = small_model(tied, width)
    n = 40
    images = torch.randint(0, 256, (n, 1, 16, 16), dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,))
    data = TrainingSet(images, labels, torch.arange(n) % 5 == 0, labels)
    units = tied_units(model) if tied else candidate_units(model)
    ctx = Context(model, units, settings(), 0, data, CPU, 4096)
    rows = torch.tensor(rows)
    from memloc.core.train.evaluation import prepare_batch

    x = prepare_batch(images[rows], CPU)
    with torch.no_grad():  # the models' own predictions as labels: every example starts correct
        y = ctx.run(x, rows).argmax(1)
    data.labels[rows] = y
    return ctx, Examples(x, y, rows)


@pytest.mark.parametrize("tied", [False, True], ids=["plain", "tied"])
@pytest.mark.parametrize("method", list(METHODS))
def test_batched_equals_reference(method, tied):
    ctx, ex = small_context(tied, width=0.0625, rows=(3, 10))  # the plain references are slow
    batched, reference = rank_units(method, ctx, ex), rank_units(method, ctx, ex, reference=True)
    assert batched.shape == (len(ex), ctx.candidates)
    if method in ("flipping", "random"):  # rankings: the same order
        assert torch.equal(top_units(batched, 8), top_units(reference, 8))
    else:
        torch.testing.assert_close(batched, reference, rtol=1e-3, atol=1e-5)


def test_greedy_search_is_memloc_flipping_on_a_plain_model():
    ctx, ex = small_context(tied=False)
    cfg = flip_config(seed=0, max_removals=4, population_batch=4, noise_copies=2, noise_scale=0.01, max_rows=4096)
    mine = greedy_removals(ctx, ex, cfg)
    from memloc.localize.neuron_flipping import flat_index

    for e, row in enumerate(ex.index.tolist()):
        r = flip_until_misclassified(ctx.model, row, ctx.data, cfg, CPU, ex.index[:1])
        assert mine[e] == [flat_index(ctx, layer, u) for layer, u in zip(r.removed_layers, r.removed_units)]


def test_ground_truth_is_what_training_masked_in():
    """A training forward pass (train mode, with the examples' indices): the channels each tied
    layer lets through are the generalization units and exactly the units read back."""
    model = small_model(tied=True).train()
    units = tied_units(model)
    assert [u.module for u in units] == tied_modules(model)
    rows = torch.tensor([0, 5, 17, 123456])
    x = torch.randn(4, 1, 16, 16)
    seen = {}

    def capture(module, inputs, out):
        seen[id(module)] = (inputs[0].detach(), out.detach())

    handles = [m.register_forward_hook(capture) for m in tied_modules(model)]
    forward_with_index(model, x, rows)
    for h in handles:
        h.remove()
    truth = memorization_units(units, rows, CPU)
    for u in units:
        layer: ExampleTiedDropout = u.module
        inp, out = seen[id(layer)]
        alive = inp.abs().flatten(2).sum(2) > 0
        passed = out.abs().flatten(2).sum(2) > 0
        own = truth[:, u.offset : u.offset + u.size]
        gen = layer.generalization(CPU)
        assert torch.equal(passed, alive & (own | gen))
        assert (own.sum(1) == layer.k_mem).all() and not (own & gen).any()
    top = truth.float().topk(int(truth.sum(1).max()), dim=1).indices
    precision, recall = precision_recall(top, truth)
    assert torch.equal(precision, torch.ones(4)) and torch.equal(recall, torch.ones(4))


def test_bad_shard_config_names_the_key():
    from schema_defaults import resolved_config

    from memloc.config_checks import ConfigError, _check_shards

    for section in ("localization", "flipping"):
        config = resolved_config({section: {"examples_per_group": 2, "shards": 5}})
        with pytest.raises(ConfigError, match=rf"{section}\.shards \(5\) exceeds the 4 selected"):
            _check_shards(config, section)
        _check_shards(resolved_config({section: {"examples_per_group": 2, "shards": 4}}), section)
