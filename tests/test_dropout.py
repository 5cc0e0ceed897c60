"""Example-tied dropout: reproducible masks, the modes, the baselines, training with it."""

import subprocess
import sys
from dataclasses import asdict

import pandas as pd
import pytest
import torch
from schema_defaults import data_source, dropout_config, dropout_model_config, train_config
from torch import nn

from memloc.core.data.noise import make_corrupted_table
from memloc.core.data.run_data import RunData, training_set
from memloc.core.example_index import index_mode
from memloc.core.models.blocks import Residual
from memloc.core.models.layer_rule import model_layers
from memloc.core.train.run import train
from memloc.core.train.tables import run_tables
from memloc.dropout import plan, tables
from memloc.dropout.tied import DROP_SCALES, PLACEMENTS, ExampleTiedDropout, FixedSparseDropout, mix32, tied_modules
from memloc.report.paper_vs_ours import comparison_row, dropout_rows, join_rows, write_rows

TIED = {"dropout": {"kind": "example_tied", "p_gen": 0.4, "p_mem": 0.2, "seed": 3}}


TIED_7 = dropout_config(p_gen=0.4, p_mem=0.2, seed=7)


def tied_resnet9(width=1.0, extra=TIED):
    return dropout_model_config("resnet9", 10, 1, 28, width=width, dropout=extra["dropout"]).build()


def test_hash_matches_a_plain_python_lowbias32():
    def reference(x):
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        return x ^ (x >> 16)

    values = [0, 1, 2, 12345, 0x7FFFFFFF, 0x80000000, 0xDEADBEEF, 0xFFFFFFFF]
    assert mix32(torch.tensor(values)).tolist() == [reference(v) for v in values] == [mix32(v) for v in values]


def test_masks_are_fixed_per_example_across_batches_and_processes():
    layer = ExampleTiedDropout(64, TIED_7, layer=3)
    index = torch.tensor([5, 17, 123456789, 0])
    masks = layer.example_masks(index, "cpu")
    # the same example in another batch, another position, another epoch: the same units
    again = layer.example_masks(torch.tensor([0, 99, 5]), "cpu")
    assert torch.equal(again[0], masks[3]) and torch.equal(again[2], masks[0])
    # another process
    code = (
        "import torch; from memloc.dropout.tied import DropoutConfig, ExampleTiedDropout;"
        f"m = ExampleTiedDropout(64, DropoutConfig(**{asdict(TIED_7)!r}), layer=3);"
        "m = m.example_masks(torch.tensor([5, 17, 123456789, 0]), 'cpu');"
        "print(''.join('1' if v else '0' for v in m.flatten().tolist()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "".join("1" if v else "0" for v in masks.flatten().tolist())
    # examples, layers and seeds own different units; the generalization units are shared
    gen = layer.generalization("cpu")
    assert (masks[:, gen]).all()
    assert len({tuple(m.tolist()) for m in masks}) == 4
    other_layer = ExampleTiedDropout(64, TIED_7, layer=4)
    assert not torch.equal(other_layer.example_masks(index, "cpu"), masks)


@pytest.mark.parametrize("p_gen,p_mem", [(0.4, 0.2), (0.1, 0.1), (0.6, 0.2), (0.3, 0.5)])
def test_fraction_of_units_on_per_layer(p_gen, p_mem):
    model = tied_resnet9(extra={"dropout": {"p_gen": p_gen, "p_mem": p_mem}})
    expected = p_gen + p_mem * (1 - p_gen)
    index = torch.arange(1000)
    for layer in tied_modules(model):  # 64 to 256 units
        on = layer.example_masks(index, "cpu").sum(1).float()
        assert (on == on[0]).all()  # exactly the same count for every example
        assert abs(on[0].item() / layer.units - expected) <= 1.0 / layer.units
        assert layer.generalization("cpu").sum() == round(p_gen * layer.units)
        # every memorization unit is owned by about a p_mem fraction of the examples
        mem = ~layer.generalization("cpu")
        owners = layer.example_masks(index, "cpu")[:, mem].float().mean(0)
        assert owners.min() > p_mem * 0.6 and owners.max() < p_mem * 1.4


# the layers (numbered as model_layers) a dropout follows; 4 and 7 end residual bodies
PLACED = {"stages": [1, 2, 4, 5, 7, 8], "blocks": list(range(1, 9))}


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_placement_and_none_after_the_linear(placement):
    model = tied_resnet9(width=0.25, extra={"dropout": {**TIED["dropout"], "placement": placement}})
    assert [m.layer for m in tied_modules(model)] == PLACED[placement]
    assert [layer.name for layer in model_layers(model)] == [f"layer{i}" for i in range(1, 10)]
    top = list(model)
    assert isinstance(top[-2], nn.Linear)  # ... Linear, Scale: the logits are never dropped
    for i, m in enumerate(top):
        if isinstance(m, Residual):  # a residual block's dropout follows the skip addition
            assert isinstance(top[i + 1], ExampleTiedDropout)
            inside = [d.layer for d in tied_modules(m)]
            assert inside == ([] if placement == "stages" else [top[i + 1].layer - 1])
    # stages: before the max-pool, not after it
    assert isinstance(top[top.index(next(m for m in top if isinstance(m, nn.MaxPool2d))) - 1], ExampleTiedDropout)
    with pytest.raises(RuntimeError, match="needs the example indices"):
        model(torch.randn(2, 1, 28, 28))
    with pytest.raises(ValueError, match="unknown dropout placement"):
        tied_resnet9(extra={"dropout": {"placement": "everywhere"}})


def test_a_position_owns_the_same_units_in_both_placements():
    index = torch.arange(50)
    models = {p: tied_resnet9(extra={"dropout": {**TIED["dropout"], "placement": p}}) for p in PLACEMENTS}
    layers = {p: {m.layer: m for m in tied_modules(model)} for p, model in models.items()}
    for number, m in layers["stages"].items():
        assert torch.equal(m.example_masks(index, "cpu"), layers["blocks"][number].example_masks(index, "cpu"))


def _activations(model, x, index, mode):
    """Input and output of every example-tied dropout layer in one forward pass."""
    outs = {}
    hooks = [m.register_forward_hook(lambda mod, i, o: outs.__setitem__(mod.layer, (mod, i[0], o)))
             for m in tied_modules(model)]
    with index_mode(model, mode), torch.no_grad():
        model(x, index)
    for h in hooks:
        h.remove()
    return outs


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("drop_scale", DROP_SCALES)
def test_modes_zero_exactly_the_right_units(placement, drop_scale):
    torch.manual_seed(0)
    model = tied_resnet9(width=0.5, extra={"dropout": {**TIED["dropout"], "placement": placement,
                                                       "drop_scale": drop_scale}}).eval()
    x, index = torch.randn(6, 1, 28, 28), torch.tensor([3, 1, 4, 1000, 5, 9])
    train = _activations(model, x, index, "train")
    assert sorted(train) == PLACED[placement]  # every layer, after a residual sum too, got the indices
    for module, inp, out in train.values():
        own = module.example_masks(index, "cpu")[:, :, None, None]
        assert (out[~own.expand_as(out)] == 0).all()  # units an example does not own: exactly zero
        assert torch.equal(out[own.expand_as(out)], inp[own.expand_as(inp)])  # its own: untouched
    factor = {"none": 1.0, "authors": (0.4 + 0.2) / 0.4}
    for module, inp, out in _activations(model, x, index, "drop").values():
        gen = module.generalization("cpu")
        assert (out[:, ~gen] == 0).all()  # every memorization unit of every example
        scale = factor.get(drop_scale, (module.k_gen + module.k_mem) / module.k_gen)  # mass
        torch.testing.assert_close(out[:, gen], inp[:, gen] * scale)
    for module, inp, out in _activations(model, x, index, "all").values():
        gen = module.generalization("cpu")
        torch.testing.assert_close(out[:, gen], inp[:, gen])
        torch.testing.assert_close(out[:, ~gen], inp[:, ~gen] * module.k_mem / (module.units - module.k_gen))
    # the mode is restored after the block
    assert {m.mode for m in tied_modules(model)} == {"train"}


def test_sparse_network_baseline_zeroes_a_fixed_fraction_s_of_the_activations():
    sparse = tied_resnet9(width=0.5, extra={"dropout": {"kind": "fixed_sparse", "p_gen": 0.4}})
    layers = [m for m in sparse.modules() if isinstance(m, FixedSparseDropout)]
    assert [m.layer for m in layers] == PLACED["stages"]
    ones = torch.ones(4, layers[0].units, 6, 5)
    kept = [layers[0].train()(ones), layers[0].eval()(ones)]  # training and evaluation
    assert torch.equal(kept[0], kept[1]) and (kept[0] == kept[0][:1]).all()  # one mask for every example
    on = kept[0][0] != 0
    assert on.sum() == round(0.6 * on.numel())  # keeps 1 - s, element-wise ...
    assert on.any(0).all() and not on.all(0).all()  # ... every channel, not every position
    torch.testing.assert_close(kept[0][0][on], torch.full((int(on.sum()),), 1 / 0.6))  # rescaled by 1/(1 - s)
    sparse.eval()(torch.randn(3, 1, 28, 28), None)  # takes (and ignores) example indices


def test_standard_dropout_baseline_drops_p_and_rescales_in_training_only():
    x = torch.randn(4, 1, 28, 28)
    standard = tied_resnet9(width=0.5, extra={"dropout": {"kind": "standard", "p_gen": 0.4}}).eval()
    drops = [m for m in standard.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == len(PLACED["stages"]) and drops[0].p == 0.4
    assert torch.equal(standard(x, None), standard(x, torch.arange(4)))  # identity in evaluation
    torch.manual_seed(0)
    ones = torch.ones(100, 50)
    out = drops[0].train()(ones)
    torch.testing.assert_close(out.unique(), torch.tensor([0.0, 1 / 0.6]))
    assert abs((out == 0).float().mean().item() - 0.4) < 0.02


@pytest.fixture(scope="module")
def tiny_data(fashion_root):
    src = data_source(fashion_root)
    table = make_corrupted_table("fashion_mnist", src, 0.2, subset=200, seed=0)
    data = training_set(table, src.load("fashion_mnist", train=True), "is_noisy")
    test = src.load("fashion_mnist", train=False)
    return data, test.images[:100], test.labels[:100]


def test_resume_with_dropout_equals_uninterrupted_run_and_records_both_modes(tiny_data, tmp_path):
    data, ti, tl = tiny_data
    cpu = torch.device("cpu")
    model_cfg = dropout_model_config("resnet9", 10, 1, 28, width=0.125, dropout=TIED["dropout"])
    cfg = train_config(epochs=3, peak_epoch=1, batch_size=64, seed=5, gradient_accounting=False)
    run_data = RunData(data, ti, tl)
    straight = train(model_cfg, cfg, run_data, tmp_path / "straight", cpu, progress=False)
    train(model_cfg, cfg, run_data, tmp_path / "resumed", cpu, stop_after_epoch=1, progress=False)
    resumed = train(model_cfg, cfg, run_data, tmp_path / "resumed", cpu, progress=False)
    a = torch.load(straight[-1], weights_only=False)
    b = torch.load(resumed[-1], weights_only=False)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    ta, tb = run_tables(straight), run_tables(resumed)
    for name in ta:
        pd.testing.assert_frame_equal(ta[name], tb[name])

    metrics, ex = ta["metrics"], ta["examples"]
    subsets = {"train", "clean", "noisy", "test"}
    assert set(metrics["subset"]) == subsets | {s + "/drop" for s in subsets}
    assert {"correct_drop", "loss_drop", "margin_drop", "prediction_drop"} <= set(ex.columns)
    assert ta["gradients"].empty  # accounting off
    final = ex[ex["epoch"] == 3]
    acc = metrics[metrics["epoch"] == 3].set_index("subset")["accuracy"]
    noisy = data.group.numpy()
    assert acc["noisy/drop"] == pytest.approx(final["correct_drop"].to_numpy()[noisy].mean())
    assert acc["clean"] == pytest.approx(final["correct"].to_numpy()[~noisy].mean())
    assert ((final["prediction_drop"] == data.labels.numpy()) == final["correct_drop"]).all()


STUDY = {"dropout": {"datasets": ["fashion_mnist"], "noise": 0.1, "seeds": [0, 1], "p_gen": 0.4, "p_mem": 0.2,
                     "model": "resnet9", "grid": {"p_gen": [0.4, 0.6], "p_mem": [0.2]}}}


def study_metrics() -> pd.DataFrame:
    """A metrics table as rule collect_dropout_metrics writes it, for every run of STUDY:
    epochs 0-2; at the last epoch a run's accuracy is its base + the subset's offset, 0.1
    less after dropping, 0.02 more on seed 1 (so the mean over seeds adds 0.01)."""
    base = {"tied_pgen0.4_pmem0.2": 0.3, "tied_pgen0.6_pmem0.2": 0.4, "standard_p0.4": 0.5, "sparse_s0.4": 0.6}
    offsets = {"train": 0.0, "clean": 0.01, "noisy": 0.02, "test": 0.03}
    rows = []
    for run in plan.metrics_columns(STUDY):
        for epoch in range(3):
            for subset, offset in offsets.items():
                for suffix, drop in (("", 0.0), ("/drop", 0.1)):
                    accuracy = epoch / 2 * (base[run["variant"]] + offset - drop) + 0.02 * run["seed"]
                    rows.append({**run, "epoch": epoch, "subset": subset + suffix, "accuracy": accuracy})
    return pd.DataFrame(rows)


def test_tables_read_the_last_epoch_of_each_run_averaged_over_seeds():
    final = tables.final_accuracy(study_metrics())
    long, wide = tables.tab1(final, plan.table_runs(STUDY, "tab1"))
    acc = long.set_index(["when", "subset"])["accuracy"]
    assert acc["before", "clean"] == pytest.approx(100 * (0.3 + 0.01 + 0.01))
    assert acc["after", "noisy"] == pytest.approx(100 * (0.3 + 0.02 - 0.1 + 0.01))
    assert list(wide.columns)[:2] == ["dataset", "clean before dropping (%)"] and wide["dataset"][0] == "Fashion-MNIST"
    long, wide = tables.tab3(final, plan.table_runs(STUDY, "tab3"))
    assert long["method"].tolist() == ["standard", "standard", "fixed_sparse", "fixed_sparse", "example_tied",
                                       "example_tied"]
    # the baselines have nothing to drop: their accuracy before; example-tied after dropping
    by_method = long.set_index(["method", "subset"])["accuracy"]
    assert by_method["standard", "clean"] == pytest.approx(100 * (0.5 + 0.01 + 0.01))
    assert by_method["example_tied", "noisy"] == pytest.approx(100 * (0.3 + 0.02 - 0.1 + 0.01))
    assert wide["Method"].tolist() == ["Standard dropout (p = 0.4)", "Sparse network (s = 0.4)",
                                       "Example-tied (p_gen = 0.4, p_mem = 0.2)"]
    rows = dropout_rows({t: tables.TABLES[t](final, plan.table_runs(STUDY, t))[0] for t in plan.TABLES},
                             {"fashion_mnist": "ours"})
    # tab1: 6 numbers; tab2: the 2 x 2 numbers of the paper's cells (p_mem 0.2, p_gen 0.4 / 0.6); tab3: 6
    assert [r["artefact"] for r in rows] == ["tab1"] * 6 + ["tab2"] * 4 + ["tab3"] * 6
    assert rows[0]["paper"] == 99.9 and rows[0]["paper_setting"].startswith("CIFAR-10")  # no Fashion-MNIST in the paper
    assert [r["paper"] for r in rows[6:10]] == [91.7, 3.4, 95.0, 6.9]  # p_gen 0.4, then 0.6


def test_paper_vs_ours_rows_join(tmp_path):
    write_rows([comparison_row("tab1", "noisy accuracy after dropping (%)", 3.1, 12.5, "CIFAR-10", "Fashion-MNIST")],
               tmp_path / "a.parquet")
    write_rows([comparison_row("fig05", "mean neurons to flip, noisy", 5.1, 4.0, "CIFAR-10", "Fashion-MNIST")],
               tmp_path / "b.parquet")
    out = join_rows([tmp_path / "a.parquet", tmp_path / "b.parquet"], tmp_path / "j.parquet", tmp_path / "j.csv",
                    tmp_path / "j.md")
    assert list(out["artefact"]) == ["tab1", "fig05"]
    md = (tmp_path / "j.md").read_text()
    assert "| tab1" in md and "12.5" in md


def test_config_check_names_the_dropout_keys():
    from memloc.config import ConfigError
    from memloc.config_checks import _check_datasets, _check_dropout

    # (dropout.epochs against train.peak_epoch: the dropout runs' TrainConfig, tests/test_config.py)
    config = {"train": {"peak_epoch": 5}, "data_root": "nowhere", "download": False,
              "dropout": {"epochs": 6, "datasets": ["cifar10"]}}
    _check_dropout(config)  # (no dropout.model: the study's model is not built)
    # every dataset key is checked in one place
    config.update(dataset_definitions={}, primary={"dataset": "fashion_mnist"}, datasets=[], atypical={"datasets": []})
    with pytest.raises(ConfigError, match="dropout.datasets: dataset 'cifar10'"):
        _check_datasets(config)
