"""memloc.dropout.plan on the real offline default (config.yaml, loaded as the Snakefile
loads it: memloc.config.load_config): the dropout names, the runs behind tab1-tab3, the
settings of a run, fig07's inputs and selection, and the scale text of the paper rows."""

import re
from pathlib import Path

import pytest

from memloc.config import load_config
from memloc.dropout import plan

ROOT = Path(__file__).resolve().parents[1]
RUNS = "results/dropout/runs/fashion_mnist/resnet9/noise0.1"


def run(dropout, method, p_gen, p_mem, dataset="fashion_mnist"):
    return {"dataset": dataset, "model": "resnet9", "noise": 0.1, "dropout": dropout, "method": method,
            "p_gen": p_gen, "p_mem": p_mem, "seed": 0}


TIED = run("tied_pgen0.4_pmem0.2", "example_tied", 0.4, 0.2)


@pytest.fixture
def config():
    # as the Snakefile has it: validated against workflow/schemas/config.schema.yaml
    # (snakemake.utils.validate fills in the defaults), then its nulls resolved
    return load_config(ROOT / "config.yaml")


@pytest.mark.parametrize("kind, p_gen, p_mem, name", [
    ("example_tied", 0.4, 0.2, "tied_pgen0.4_pmem0.2"),
    ("standard", 0.4, 0.0, "standard_p0.4"),
    ("fixed_sparse", 0.3, 0.0, "sparse_s0.3"),
])
def test_dropout_names_round_trip_and_match_the_wildcard(kind, p_gen, p_mem, name):
    assert plan.dropout_name(kind, p_gen, p_mem) == name
    assert plan.parse_dropout(name) == {"kind": kind, "p_gen": p_gen, "p_mem": p_mem}
    assert re.fullmatch(plan.DROPOUT_WILDCARD, name)


def test_a_name_of_no_dropout_is_refused():
    with pytest.raises(ValueError, match="not a dropout name"):
        plan.parse_dropout("noise0.1")
    assert not re.fullmatch(plan.DROPOUT_WILDCARD, "noise0.1")


def test_the_runs_behind_each_table(config):
    assert plan.table_runs(config, "tab1") == [TIED]  # one per configured dataset
    assert plan.table_runs(config, "tab2") == [  # p_mem (rows) x p_gen
        run(f"tied_pgen{g}_pmem0.2", "example_tied", g, 0.2) for g in (0.2, 0.4, 0.6)
    ]
    assert plan.table_runs(config, "tab3") == [
        run("standard_p0.4", "standard", 0.4, 0.0), run("sparse_s0.4", "fixed_sparse", 0.4, 0.0), TIED,
    ]
    with pytest.raises(ValueError, match="unknown table"):
        plan.table_runs(config, "tab4")


def test_every_run_is_trained_once(config):
    # the 5 train_dropout jobs: tab1's run is a tab2 cell and tab3's example-tied run
    assert [plan.run_dir(r) for r in plan.dropout_runs(config)] == [
        f"{RUNS}/{name}/seed0" for name in
        ("tied_pgen0.4_pmem0.2", "tied_pgen0.2_pmem0.2", "tied_pgen0.6_pmem0.2", "standard_p0.4", "sparse_s0.4")
    ]
    assert plan.metrics_tables(config)[0] == f"{RUNS}/tied_pgen0.4_pmem0.2/seed0/metrics.parquet"
    # the metrics table's columns, in this order, with the dropout name under `variant`
    columns = plan.metrics_columns(config)
    assert list(columns[0]) == ["dataset", "model", "noise", "variant", "method", "p_gen", "p_mem", "seed"]
    assert [c["variant"] for c in columns] == [r["dropout"] for r in plan.dropout_runs(config)]


def test_a_larger_study_plans_every_cell():
    config = {"dropout": {"datasets": ["fashion_mnist", "mnist"], "noise": 0.1, "seeds": [0, 1], "p_gen": 0.4,
                          "p_mem": 0.2, "grid": {"p_gen": [0.2, 0.4], "p_mem": [0.1, 0.2]}, "model": "resnet9"}}
    assert len(plan.table_runs(config, "tab1")) == 2 * 2 and len(plan.table_runs(config, "tab2")) == 4 * 2
    assert [r["method"] for r in plan.table_runs(config, "tab3")[::2]] == ["standard", "fixed_sparse", "example_tied"]
    assert len(plan.dropout_runs(config)) == (2 + 4 - 1 + 2) * 2


def test_settings_of_a_run(config):
    epochs = config["dropout"]["epochs"]  # (a null is resolved to train.epochs by load_config)
    assert plan.train_settings(config, 3) == {**config["train"], "epochs": epochs, "seed": 3,
                                              "gradient_accounting": False, "group_names": ["clean", "noisy"]}
    placement, scale = config["dropout"]["placement"], config["dropout"]["drop_scale"]
    assert plan.model_settings(config, "resnet9", "tied_pgen0.4_pmem0.2", 3) == {
        "name": "resnet9", "settings": {"width": 0.25}, "factory": None, "layers": None, "flip_modules": None,
        "dropout_after": None, "dropout": {"kind": "example_tied", "p_gen": 0.4, "p_mem": 0.2, "seed": 3,
                                           "placement": placement, "drop_scale": scale},
    }
    # a baseline has no drop scale: its config (and checkpoints) do not depend on it
    assert plan.model_settings(config, "resnet9", "sparse_s0.4", 3)["dropout"] == {
        "kind": "fixed_sparse", "p_gen": 0.4, "p_mem": 0.0, "seed": 3, "placement": placement, "drop_scale": None}
    config["dropout"]["placement"] = "blocks"
    assert plan.model_settings(config, "resnet9", "standard_p0.4", 0)["dropout"]["placement"] == "blocks"
    config["dropout"]["epochs"] = 4
    assert plan.train_settings(config, 0)["epochs"] == 4


def test_tab3_baselines_train_on_their_own_schedule(config):
    """dropout.baselines: the standard-dropout and fixed-sparse runs take its epochs and peak; the
    example-tied runs keep the study's; unset, every run has the study's (null = dropout.epochs)."""
    study = plan.train_settings(config, 0)
    for name in ("tied_pgen0.4_pmem0.2", "standard_p0.4", "sparse_s0.4"):
        assert plan.train_settings(config, 0, name) == study
    config["dropout"]["baselines"] = {"epochs": 200, "peak_epoch": 60}
    assert plan.train_settings(config, 0, "tied_pgen0.4_pmem0.2") == study
    for name in ("standard_p0.4", "sparse_s0.4"):
        assert plan.train_settings(config, 1, name) == {**study, "epochs": 200, "peak_epoch": 60, "seed": 1}
        assert plan.run_epochs(config, name) == 200
    assert plan.our_settings(config)["fashion_mnist"].endswith(
        f"{config['dropout']['epochs']} epochs (tab3's baselines 200), 1 seed")


def test_the_size5000_preset_trains_tab3s_baselines_longer():
    """config/size5000.yaml: the baselines' 200 epochs reach their jobs and their runtime request."""
    from memloc.plan.resources import forward_passes

    evidence = load_config(ROOT / "config" / "size5000.yaml")
    runs = plan.table_runs(evidence, "tab3")  # standard, fixed sparse, example-tied
    assert [plan.run_epochs(evidence, r["dropout"]) for r in runs] == [200, 200, evidence["train"]["epochs"]]
    passes = [forward_passes("train_dropout", evidence, {**r, "noise": "0.1"}) for r in runs]
    assert passes[0] == passes[1] > 6 * passes[2]  # 200 vs 30 epochs of the same images


def test_fig07_and_the_paper_rows_setting(config):
    assert plan.fig07_run(config) == TIED
    assert plan.fig07_inputs(config) == {"examples": f"{RUNS}/tied_pgen0.4_pmem0.2/seed0/examples.parquet",
                                         "data": "results/data/fashion_mnist/noise0.1.parquet"}
    assert plan.fig07_selection(config) == {
        "title": "Clean training examples wrong after dropping the memorization units\n"
                 "ResNet-9, Fashion-MNIST, 10% noise, example-tied dropout (p_gen = 0.4, p_mem = 0.2)",
        "cols": 8,
    }
    assert plan.our_settings(config) == {
        "fashion_mnist": "Fashion-MNIST (2,000-example subset), ResNet-9 width 0.25, 10% noise, "
                         f"{config['dropout']['epochs']} epochs, 1 seed"
    }


def test_the_paper_preset(config):
    paper = load_config(ROOT / "config" / "paper.yaml")
    assert [r["dataset"] for r in plan.table_runs(paper, "tab1")] == ["cifar10", "mnist", "svhn"]
    assert len(plan.table_runs(paper, "tab2")) == 12  # the paper's 2 x 6 grid
    assert len(plan.dropout_runs(paper)) == 3 + 12 - 1 + 2
    assert plan.train_settings(paper, 0)["epochs"] == paper["train"]["epochs"]  # null: train's
