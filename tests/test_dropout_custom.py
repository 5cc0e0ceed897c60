"""Example-tied dropout on a model memloc has never seen (a small CNN defined here, not a
ResNet): dropout after named modules through forward hooks, the default placement, the
units of each layer, training with it, and tab1 / tab2 / fig07 from its run."""

import copy

import pytest
import torch
from schema_defaults import data_source, dropout_fields, dropout_model_config, resolved_config, train_config
from torch import nn

from memloc.core.data.noise import make_corrupted_table
from memloc.core.data.run_data import RunData, training_set
from memloc.core.example_index import forward_with_index, held_layer, index_mode
from memloc.core.models.layer_rule import model_layers
from memloc.core.train.run import train
from memloc.core.train.tables import run_tables
from memloc.dropout import plan, tables
from memloc.dropout.placement import add_dropout, default_after
from memloc.dropout.tied import FixedSparseDropout, dropout_layers, tied_modules

TIED = dropout_fields(kind="example_tied", p_gen=0.4, p_mem=0.2, seed=3)
SHAPE = (1, 28, 28)  # Fashion-MNIST


def conv_block(c_in, c_out, stride=1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class SmallCNN(nn.Module):
    """conv-BN-ReLU x 3, average pool, a hidden Linear, the classifier."""

    def __init__(self, num_classes=10, in_channels=1, width=8):
        super().__init__()
        self.features = nn.Sequential(conv_block(in_channels, width), conv_block(width, 2 * width, 2),
                                      conv_block(2 * width, 3 * width, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.hidden = nn.Linear(3 * width, 20)
        self.classifier = nn.Linear(20, num_classes)

    def forward(self, x):
        return self.classifier(torch.relu(self.hidden(self.pool(self.features(x)).flatten(1))))


def small_cnn(num_classes, in_channels, image_size, width=8):
    """The factory of model_definitions (memloc.core.models.factory)."""
    return SmallCNN(num_classes, in_channels, width)


AFTER = ["features.0", "features.2.1", "hidden"]  # a conv block, a BN inside one (before its ReLU), a Linear


def tied_cnn(after=AFTER, **dropout):
    torch.manual_seed(0)
    model = SmallCNN()
    if after is not None:
        model.memloc_dropout_after = after
    return add_dropout(model, {**TIED, **dropout}, SHAPE)


def forward_capture(model, x, index, mode="train", names=None):
    """{name: (its dropout layer, the named module's output before it, after it)} of one
    forward pass of `model` as it is (train / eval), example-tied layers in `mode`."""
    modules = dict(model.named_modules())
    names = names or [m.after for m in tied_modules(model)]
    before, after, hooks = {}, {}, []
    for name in names:  # hooks run in order: one put in front of the dropout's sees the raw output
        hooks.append(modules[name].register_forward_hook(
            lambda m, i, o, n=name: before.__setitem__(n, o.clone()), prepend=True))
        hooks.append(modules[name].register_forward_hook(lambda m, i, o, n=name: after.__setitem__(n, o)))
    with index_mode(model, mode), torch.no_grad():
        forward_with_index(model, x, index)
    for h in hooks:
        h.remove()
    return {n: (held_layer(modules[n]), before[n], after[n]) for n in names}


def units_first(t, dim):
    """[B, C, ...] with the units on dim 1, whatever their dim."""
    return t if dim == 1 else t.movedim(-1, 1)


def test_hooks_leave_the_model_its_modules_and_state_dict():
    torch.manual_seed(0)
    bare = SmallCNN()
    keys, names = list(bare.state_dict()), [n for n, _ in bare.named_modules()]
    model = tied_cnn()
    assert list(model.state_dict()) == keys and [n for n, _ in model.named_modules()] == names
    model.load_state_dict(bare.state_dict())  # a checkpoint of the model without dropout loads (strict)
    layers = tied_modules(model)
    assert [(m.after, m.layer, m.units, m.dim) for m in layers] == [
        ("features.0", 1, 8, 1), ("features.2.1", 2, 24, 1), ("hidden", 3, 20, -1)]
    assert layers[0].k_gen == 3 and layers[0].k_mem == 1  # round(0.4 * 8), round(0.2 * 5)
    with pytest.raises(RuntimeError, match="needs the example indices"):
        model(torch.randn(2, *SHAPE))  # train mode without forward_with_index
    out = forward_with_index(model, torch.randn(2, *SHAPE), torch.tensor([0, 1]))
    assert out.shape == (2, 10) and all(m.index is None for m in layers)  # indices only for the forward
    with pytest.raises(RuntimeError, match="needs the example indices"):
        copy.deepcopy(model)(torch.randn(2, *SHAPE))  # a deep copy keeps its dropout layers


@pytest.mark.parametrize("drop_scale", ["none", "mass"])
def test_modes_zero_exactly_the_right_units_after_the_named_modules(drop_scale):
    model = tied_cnn(drop_scale=drop_scale)
    x, index = torch.randn(6, *SHAPE), torch.tensor([3, 1, 4, 1000, 5, 9])
    model.eval()
    captured = forward_capture(model, x, index, "train")
    assert sorted(captured) == sorted(AFTER)
    for module, raw, out in captured.values():
        raw, out = units_first(raw, module.dim), units_first(out, module.dim)
        own = module.example_masks(index, "cpu").view(6, -1, *[1] * (out.ndim - 2)).expand_as(out)
        assert (out[~own] == 0).all() and torch.equal(out[own], raw[own])  # an example's own units, untouched
    for module, raw, out in forward_capture(model, x, index, "drop").values():
        raw, out = units_first(raw, module.dim), units_first(out, module.dim)
        gen = module.generalization("cpu")
        mem = module.example_masks(index, "cpu") & ~gen  # each example's memorization units ...
        assert mem.sum(1).eq(module.k_mem).all()
        for b in range(6):
            assert (out[b, mem[b]] == 0).all()  # ... are exactly zero after dropping
        assert (out[:, ~gen] == 0).all()  # (so is every memorization unit)
        scale = 1.0 if drop_scale == "none" else (module.k_gen + module.k_mem) / module.k_gen
        torch.testing.assert_close(out[:, gen], raw[:, gen] * scale)
    for module, raw, out in forward_capture(model, x, index, "all").values():
        raw, out = units_first(raw, module.dim), units_first(out, module.dim)
        gen = module.generalization("cpu")
        torch.testing.assert_close(out[:, gen], raw[:, gen])  # the generalization units kept
        torch.testing.assert_close(out[:, ~gen], raw[:, ~gen] * module.k_mem / (module.units - module.k_gen))
    assert {m.mode for m in tied_modules(model)} == {"train"}


def test_default_placement_is_after_each_layer_but_the_classifier():
    model = SmallCNN()
    layers = [layer.name for layer in model_layers(model)]
    assert layers == ["features.0", "features.1", "features.2", "hidden", "classifier"]  # the layer rule
    assert default_after(model) == layers[:-1]  # no dropout on the logits
    model = tied_cnn(after=None)
    assert [(m.after, m.units) for m in tied_modules(model)] == [
        ("features.0", 8), ("features.1", 16), ("features.2", 24), ("hidden", 20)]
    # top-level conv1, bn1 (torchvision's style): one dropout, after the norm
    flat = nn.Module()
    flat.conv1, flat.bn1 = nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6)
    flat.conv2, flat.fc = nn.Conv2d(6, 6, 3), nn.Linear(6, 10)
    assert [layer.name for layer in model_layers(flat)] == ["conv1", "bn1", "conv2", "fc"]
    assert default_after(flat) == ["bn1", "conv2"]


class Tokens(nn.Module):
    """Patches -> tokens [B, T, D] (no unit count to read off: found by the meta pass)."""

    def __init__(self, dim=12):
        super().__init__()
        self.proj = nn.Conv2d(1, dim, 7, stride=7)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class TokenNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.tokens, self.mix, self.head = Tokens(), nn.Linear(12, 12), nn.Linear(12, 10)

    def forward(self, x):
        return self.head(self.mix(self.tokens(x)).mean(1))


def test_units_of_token_outputs_are_their_last_dim_and_unknown_units_are_an_error():
    model = add_dropout(TokenNet(), TIED, SHAPE).eval()
    assert [(m.after, m.units, m.dim) for m in tied_modules(model)] == [("tokens", 12, -1), ("mix", 12, -1)]
    x, index = torch.randn(3, *SHAPE), torch.arange(3)
    for module, raw, out in forward_capture(model, x, index, "drop").values():
        gen = module.generalization("cpu")
        assert out.shape == (3, 16, 12) and (out[..., ~gen] == 0).all()
        torch.testing.assert_close(out[..., gen], raw[..., gen])
    with pytest.raises(ValueError, match="cannot tell the units of module 'tokens'"):
        add_dropout(TokenNet(), TIED)  # no input shape, and Tokens is no conv / norm / linear layer
    bad = SmallCNN()
    bad.memloc_dropout_after = ["features.9"]
    with pytest.raises(ValueError, match=r"dropout_after: SmallCNN has no module 'features.9'"):
        add_dropout(bad, TIED, SHAPE)


def test_baselines_after_named_modules():
    x, index = torch.randn(64, *SHAPE), torch.arange(64)
    standard = tied_cnn(kind="standard")
    assert [type(m) for m in dropout_layers(standard)] == [nn.Dropout] * 3 and not tied_modules(standard)
    for _, raw, out in forward_capture(standard.eval(), x, index, names=AFTER).values():
        assert torch.equal(out, raw)  # identity in evaluation
    for module, raw, out in forward_capture(standard.train(), x, index, names=AFTER).values():
        zero, live = out == 0, raw != 0  # in training: a fraction p of the elements zeroed, the others rescaled
        assert abs((zero & live).sum().item() / live.sum().item() - 0.4) < 0.05 and module.p == 0.4
        torch.testing.assert_close(out[~zero], raw[~zero] / 0.6)
    sparse = tied_cnn(kind="fixed_sparse")
    assert [m.layer for m in dropout_layers(sparse) if isinstance(m, FixedSparseDropout)] == [1, 2, 3]
    for train_mode in (True, False):  # one mask for every example, in training and evaluation
        for module, raw, out in forward_capture(sparse.train(train_mode), x, index, names=AFTER).values():
            mask = module.mask(raw.shape[1:], "cpu")  # [C, H, W] or [F]: 0 or 1 / (1 - s)
            assert torch.equal(out, raw * mask)
            assert (mask != 0).float().mean().item() == pytest.approx(0.6, abs=0.02)


STUDY = {"dropout": {"model": "small_cnn", "datasets": ["fashion_mnist"], "noise": 0.2, "seeds": [0],
                     "p_gen": 0.4, "p_mem": 0.2, "grid": {"p_gen": [0.4], "p_mem": [0.2]}, "fig07": {"cols": 4}}}


def test_training_a_custom_model_with_tied_dropout_gives_tab1_tab2_and_fig07(fashion_root, tmp_path):
    from memloc.report.figures import fig07

    source = data_source(fashion_root)  # 200 training examples, 20% noisy; 100 test examples
    table = make_corrupted_table("fashion_mnist", source, 0.2, subset=200, seed=0)
    data = training_set(table, source.load("fashion_mnist", train=True), "is_noisy")
    test = source.load("fashion_mnist", train=False)
    test_images, test_labels = test.images[:100], test.labels[:100]
    run = plan.fig07_run(STUDY)
    assert run["model"] == "small_cnn" and plan.table_runs(STUDY, "tab2") == [run]
    # the model as build_model makes it from model_definitions (a factory in this file)
    dropout = {**plan.parse_dropout(run["dropout"]), "seed": 0}
    model_cfg = dropout_model_config("small_cnn", 10, 1, 28, factory=f"{__file__}:small_cnn", settings={"width": 8},
                                     dropout_after=["features.0", "features.1", "features.2"], dropout=dropout)
    assert [m.after for m in tied_modules(model_cfg.build())] == ["features.0", "features.1", "features.2"]
    cfg = train_config(epochs=4, peak_epoch=1, batch_size=50, seed=0, gradient_accounting=False)
    checkpoints = train(model_cfg, cfg, RunData(data, test_images, test_labels), tmp_path / "run", torch.device("cpu"),
                        progress=False)
    run_table = run_tables(checkpoints)
    metrics, examples = run_table["metrics"], run_table["examples"]
    assert {"clean/drop", "noisy/drop", "test/drop"} <= set(metrics["subset"])
    last = examples[examples["epoch"] == 4]
    assert len(last) == 200 and {"correct_drop", "prediction_drop"} <= set(last.columns)

    # the study's metrics table as rule collect_dropout_metrics writes it
    columns = plan.metrics_columns(STUDY)[0]
    final = tables.final_accuracy(metrics.assign(**columns))
    long1, wide1 = tables.tab1(final, plan.table_runs(STUDY, "tab1"))
    long2, wide2 = tables.tab2(final, plan.table_runs(STUDY, "tab2"))
    acc = metrics[metrics["epoch"] == 4].set_index("subset")["accuracy"] * 100
    by = long1.set_index(["when", "subset"])["accuracy"]
    assert by["after", "noisy"] == pytest.approx(acc["noisy/drop"]) and by["before", "test"] == pytest.approx(
        acc["test"])
    assert len(long2) == 2 and wide2.shape == (1, 2)

    # fig07: the forgotten clean examples with their pixels, and the figure
    lost, n_clean = tables.forgotten_rows(examples, table)
    assert n_clean == (~table["is_noisy"]).sum()
    shown = lost.head(8)
    assert len(shown) > 0  # (4 of the 160 clean examples, on this seed)
    pixels = data.images[torch.tensor(shown["index"].to_numpy(), dtype=torch.long)]  # (rows = indices)
    fig_table = tables.fig07_table(shown, pixels, "fashion_mnist", len(lost), n_clean)
    fig_table.to_parquet(tmp_path / "fig07.parquet")
    selection = plan.fig07_selection(STUDY)
    assert "small_cnn, Fashion-MNIST" in selection["title"]
    fig07(str(tmp_path / "fig07.parquet"), [str(tmp_path / "fig07.png")], **selection)
    assert (tmp_path / "fig07.png").stat().st_size > 0
    # a dataset memloc has no class names for: the given ones (a declared dataset's), else the number
    rows = last.merge(table, on="index").head(3)
    pixels = data.images[torch.tensor(rows["index"].to_numpy(), dtype=torch.long)]
    named = tables.fig07_table(rows, pixels, "own_data", 0, n_clean, [f"class {c}" for c in range(10)])
    assert named["label_name"].tolist() == [f"class {c}" for c in rows["label"]]
    assert tables.fig07_table(rows, pixels, "own_data", 0, n_clean)["label_name"].tolist() == [
        str(c) for c in rows["label"]]


class Split(nn.Module):
    def forward(self, x):
        return x.chunk(2, dim=1)  # two tensors: no units to drop


class SplitNet(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv, self.split, self.head = nn.Conv2d(1, 8, 3), Split(), nn.Linear(4, num_classes)

    def forward(self, x):
        a, b = self.split(self.conv(x))
        return self.head((a + b).mean((2, 3)))


def split_net(num_classes, in_channels, image_size):
    return SplitNet(num_classes)


def test_the_config_check_builds_the_study_model_with_its_dropout():
    from memloc.config import ConfigError
    from memloc.config_checks import _check_dropout

    config = resolved_config({
        "train": {"peak_epoch": 2}, "primary": {"dataset": "fashion_mnist"},
        "model_definitions": {"split_net": {"factory": f"{__file__}:split_net", "dropout_after": ["conv"]}},
        "dropout": {"epochs": 4, "model": "split_net", "datasets": ["fashion_mnist"], "p_gen": 0.4, "p_mem": 0.2,
                    "placement": "stages"}})
    _check_dropout(config)  # after the conv: fine
    config["model_definitions"]["split_net"]["dropout_after"] = ["split"]
    with pytest.raises(ConfigError, match=r"dropout.model: 'split_net' with dropout layers: cannot tell the units of "
                                          r"module 'split' \(Split\) to put dropout after: its output is not one"):
        _check_dropout(config)
