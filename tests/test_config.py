"""Bad configuration stops the workflow before any job, with a message naming the key; the
test preset plans exactly the jobs its settings call for.

Every case is a `snakemake -n` of tests/config/test.yaml plus an override. The dry runs are
independent, so the module runs them all at once (conftest.run_snakemake_many: as many at a
time as there are CPU cores, forked from one process that has imported Snakemake) and each
test reads its own result.
"""

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "tests" / "config" / "test.yaml"

BAD = [
    ({"datasets": ["cifar100"]}, "datasets: dataset 'cifar100' is neither built in"),
    ({"models": ["resnet18"]}, "models: model 'resnet18' is neither built in"),
    ({"noise_rates": [1.0]}, "instance['noise_rates'][0]"),
    ({"primary": {"dataset": "fashion_mnist", "model": "resnet9", "noise": -0.1}}, "instance['primary']['noise']"),
    ({"train": {"epochs": 4, "peak_epoch": 9}}, "train.peak_epoch = 9, train.epochs = 4 (the training of run"),
    ({"figures": {"fig01": {"epochs": [3, 9]}}}, "figures.fig01.epochs"),
    ({"datasets": ["fashion_mnist", "mnist"], "data_root": "empty"},
     "datasets: dataset 'mnist' is not under data_root"),
    ({"learning_rate": 0.1}, "'learning_rate' was unexpected"),
    ({"rewinding": {"epochs": [0, 7]}}, "rewinding.epochs: [7] after the last checkpoint"),
    ({"retraining": {"epochs": 2, "peak_epoch": 2}}, "retraining.peak_epoch = 2, retraining.epochs = 2 (the layer "
                                                     "retraining of the noise0.1 runs, seed 0): the one-cycle schedule "
                                                     "needs 0 < peak_epoch < epochs"),
    # every schedule's peak against its epochs, by the TrainConfig its jobs build: the second split's two
    # phases (B: the preset's epochs_second is 2), the dropout runs (dropout.epochs null = train.epochs)
    ({"detection": {"second_split": {"peak_epoch_second": 2}}},
     "detection.second_split.peak_epoch_second = 2 (null means train.peak_epoch), detection.second_split."
     "epochs_second = 2 (null means train.epochs) (the second split's fine-tuning on split B"),
    ({"detection": {"second_split": {"epochs_first": 3, "peak_epoch_first": 3}}},
     "detection.second_split.peak_epoch_first = 3 (null means train.peak_epoch), detection.second_split."
     "epochs_first = 3 (null means train.epochs) (the second split's training on split A"),
    ({"dropout": {"epochs": 2}}, "train.peak_epoch = 2, dropout.epochs = 2 (null means train.epochs) (the dropout "
                                 "run tied_pgen0.4_pmem0.2 on fashion_mnist, seed 0)"),
    # tab3's baselines on their own schedule (dropout.baselines; null epochs = dropout.epochs)
    ({"dropout": {"baselines": {"epochs": 2}}},
     "dropout.baselines.peak_epoch = 2 (null means train.peak_epoch), dropout.baselines.epochs = 2 (null means "
     "dropout.epochs) (the dropout run standard_p0.4 on fashion_mnist, seed 0)"),
    # a warm-up of at most one step: split B has 150 of the 300 examples, 3 batches of 64 an epoch
    ({"detection": {"second_split": {"peak_epoch_second": 0.3}}},
     "detection.second_split.peak_epoch_second = 0.3 (null means train.peak_epoch), train.batch_size = 64 (the "
     "second split's fine-tuning on split B (detection.second_split.fraction = 0.5), seed 0, on 150 training "
     "examples)"),
    ({"atypical": {"holdout": {"models": 3}}}, "atypical.holdout: the complementary scheme trains pairs of models"),
    # values larger than the data: the split (Fashion-MNIST: 60,000), the smaller group (10% of 300: 30 noisy)
    ({"train_subset": 60001},
     "train_subset (60001) is larger than the training split of fashion_mnist (60000 examples"),
    ({"flipping": {"examples_per_group": 31}},
     "flipping.examples_per_group (31) is larger than the 30 noisy examples of the primary setting"),
    ({"primary": {"noise": 0.9}, "flipping": {"examples_per_group": 31}},
     "flipping.examples_per_group (31) is larger than the 30 clean examples of the primary setting (270 of 300 "
     "training examples mislabelled at primary.noise = 0.9"),
]
# primary.noise outside noise_rates is no error: its runs are planned on their own, and a note says so
OFF_GRID = {"primary": {"noise": 0.2}}
# results_dir moves every planned path (memloc.core.paths.set_results_dir)
ELSEWHERE = {"results_dir": "elsewhere/smoke"}
CASES = {f"bad{i}": override for i, (override, _) in enumerate(BAD)} | {"good": {}, "off_grid": OFF_GRID,
                                                                       "elsewhere": ELSEWHERE}
# The README's promise: a --configfile replaces config.yaml, and the keys it does not set take
# the schema's defaults.  A one-key file plans what the same file with every default written out
# plans (the schema's CIFAR-10 setting), nothing of config.yaml (Fashion-MNIST).
ONE_KEY = {"download": True}  # the schema's datasets are downloaded (dry run: nothing is)


def dry_run_args(workdir: Path, override: dict) -> list[str]:
    """`snakemake -n` of the preset with `override` on top, in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "override.yaml").write_text(yaml.safe_dump(override))
    return ["-n", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile", str(PRESET),
            str(workdir / "override.yaml")]


def only_file_args(workdir: Path, config: dict) -> list[str]:
    """`snakemake -n` of `config` alone (no preset) in `workdir`, from the repository root."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "only.yaml").write_text(yaml.safe_dump(config))
    return ["-n", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile",
            str(workdir / "only.yaml")]


def with_defaults(config: dict) -> dict:
    """`config` with every schema default written out (as Snakemake's validate fills them in)."""
    import copy

    from snakemake.utils import validate

    from memloc.config import SCHEMA

    config = copy.deepcopy(config)
    validate(config, str(SCHEMA))
    return config


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory, snakemake_many) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """{case: (its working directory, its dry run)} of every case, and of the one-key file
    alone (one_key) and written out with the schema's defaults (one_key_defaults)."""
    base = tmp_path_factory.mktemp("config")
    runs = {name: dry_run_args(base / name, override) for name, override in CASES.items()}
    runs["one_key"] = only_file_args(base / "one_key", ONE_KEY)
    runs["one_key_defaults"] = only_file_args(base / "one_key_defaults", with_defaults(ONE_KEY))
    results = snakemake_many(list(runs.values()))
    return {name: (base / name, result) for name, result in zip(runs, results, strict=True)}


@pytest.mark.parametrize("case", range(len(BAD)), ids=[expected for _, expected in BAD])
def test_bad_config_names_the_key(dry_runs, case):
    workdir, result = dry_runs[f"bad{case}"]
    assert result.returncode != 0
    assert BAD[case][1] in result.stdout + result.stderr
    assert not (workdir / "results").exists()  # nothing ran


def test_primary_noise_outside_the_grid_is_planned_with_a_note(dry_runs):
    _, result = dry_runs["off_grid"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert "memloc: primary.noise (0.2) is not in noise_rates [0.1]" in result.stderr
    assert "memloc: primary.noise" not in dry_runs["good"][1].stderr
    # the primary setting's own runs are planned: its corrupted training set and one run per seed
    output = result.stdout + result.stderr
    assert "results/data/fashion_mnist/noise0.2.parquet" in output
    assert "results/runs/fashion_mnist/resnet9/noise0.2/seed0/checkpoints.txt" in output


def test_a_declared_datasets_size_bounds_train_subset(tmp_path, monkeypatch):
    """A declared dataset's training split is known from its .npz headers when the DAG is
    parsed: the preset's train_subset (300) above it stops the DAG (no DAG: check_config)."""
    from memloc.config import ConfigError, load_config
    from memloc.config_checks import check_config

    monkeypatch.chdir(tmp_path)  # no fetch record of its size there
    config = load_config(PRESET)
    config["dataset_definitions"] = {"tiny": {"format": "npz", "path": str(tmp_path / "tiny.npz")}}
    config["datasets"] = ["fashion_mnist", "tiny"]
    for n in (299, 300):
        x = np.zeros((n, 8, 8), dtype=np.uint8)
        np.savez(tmp_path / "tiny.npz", x_train=x, y_train=np.arange(n) % 4, x_test=x[:4], y_test=np.arange(4) % 4)
        if n < 300:
            with pytest.raises(ConfigError, match=re.escape("train_subset (300) is larger than the training split of "
                                                            "tiny (299 examples; in datasets)")):
                check_config(config)
    check_config(config)  # 300 of 300


def job_counts(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table of a dry run -> {rule: jobs}."""
    table = output.split("Job stats:", 1)[1]
    rows = re.findall(r"^(\w+)\s+(\d+)$", table.split("total", 1)[0], flags=re.M)
    return {rule: int(n) for rule, n in rows}


def expected_jobs(c: dict) -> dict[str, int]:
    """Jobs per rule that the test preset's settings call for, derived from the settings and
    the paper's design (FIGURES.md), not from memloc's planning code."""
    datasets, models, noise, seeds = c["datasets"], c["models"], c["noise_rates"], c["seeds"]
    primary = c["primary"]
    # The preset's shape, which the counts below rely on: one dataset (the primary, which is
    # neither CIFAR-10, MNIST nor SVHN: one appendix grid, drawn from it), one model
    # (ResNet-9, 9 layers), the primary noise rate in the grid.
    assert datasets == [primary["dataset"]] == ["fashion_mnist"] and models == [primary["model"]] == ["resnet9"]
    assert primary["noise"] in noise
    assert c.get("rewinding", {}).get("seeds") is None  # rewinding.seeds: null = seeds
    grid_runs = len(datasets) * len(models) * len(noise) * len(seeds)  # fig12 (and fig15): model x noise x seed
    sweep = c["figures"]["fig11"]
    sweep_only = [n for n in sweep["noise_rates"] if n not in noise]  # fig11's rates beyond the grid
    atypical = c["atypical"]["datasets"]  # noise-free runs of the primary model, typical vs atypical
    retrain_seeds = c["retraining"]["seeds"]
    flip_seeds, shards = c["flipping"]["seeds"], c["flipping"]["shards"]
    flip_only = [s for s in flip_seeds if s not in seeds]  # flipping models beyond the grid's seeds
    d = c["dropout"]
    grid = [(g, m) for g in d["grid"]["p_gen"] for m in d["grid"]["p_mem"]]  # tab2
    # tab1's run (primary dataset, the preset's p_gen / p_mem) is one of tab2's grid cells
    assert d["datasets"] == [primary["dataset"]] and (d["p_gen"], d["p_mem"]) in grid
    return {
        # each dataset fetched and checked once (the preset's datasets are all the primary one)
        "fetch_dataset": len({*datasets, primary["dataset"], *atypical, *d["datasets"]}),
        # a corrupted training set per dataset x noise rate, fig11's extra rates, and the
        # noise-free set of each typical/atypical dataset
        "corrupt_data": len(datasets) * len(noise) + len(sweep_only) + len(atypical),
        # the model x noise x seed grid; fig11's extra rates x its seeds; the flipping models
        # beyond the grid (primary setting); the typical/atypical runs (every seed)
        "train": grid_runs + len(sweep_only) * len(sweep["seeds"]) + len(flip_only) + len(atypical) * len(seeds),
        "collect_run_tables": 2,  # gradients, metrics
        "gradient_figure": 5,  # fig01, fig02, fig10, fig11, fig12 (no MNIST / SVHN: no fig13 / fig14)
        # rewinding: the grid's runs (fig03 is part of fig15) and the typical/atypical runs (fig09)
        "rewind_layers": grid_runs + len(atypical) * len(seeds),
        # retraining, one job per run (all its retrained layers): ResNet-9 on dataset x noise x
        # retraining seed (fig18, fig04 is part of it) and the typical/atypical runs of the
        # retraining seeds (fig19)
        "retrain_layer": (len(datasets) * len(noise) + len(atypical)) * len(retrain_seeds),
        "collect_layer_tables": 4,  # rewinding, retraining, and both for typical/atypical
        "layer_figure": 6,  # fig03, fig04, fig09, fig15, fig18, fig19 (no fig16 / fig17)
        # neuron flipping: one example selection, dealt to shards on each flipping model
        "select_flip_examples": 1,
        "flip_shard": len(flip_seeds) * shards,
        "merge_flipping": 1,
        "fig05": 1,
        "second_split": len(flip_seeds),  # forgetting time, one per flipping model
        "detection_auc": 1,
        "auc_table": 1,
        "flipping_paper_rows": 1,
        # the localization benchmark: a job per track (ground truth, deletion) and shard, merged,
        # its summary table and figure
        "localize_shard": len(c.get("localization", {}).get("tracks", ["ground_truth", "deletion"]))
        * c.get("localization", {}).get("shards", 1),
        "merge_localization": 1,
        "localization_table": 1,
        "localization_figure": 1,
        # typical vs atypical: C-scores estimated by hold-out models (no published files)
        "holdout_model": c["atypical"]["holdout"]["models"] * len(atypical),
        "cscore_holdout": 1,  # the hold-out estimate's precision table (no published C-scores here)
        "atypical_data": len(atypical),
        "collect_atypical_tables": 1,
        "fig08": 1,
        # tab2's grid (tab1's run among it) and tab3's two baselines (standard dropout, sparse net)
        "train_dropout": len(grid) + 2,
        "collect_dropout_metrics": 1,
        "dropout_table": 3,  # tab1, tab2, tab3
        "dropout_paper_rows": 1,
        "fig07_table": 1,
        "fig07": 1,
        "paper_vs_ours": 1,
        "claims": 1,  # results/tables/claims.*
        "provenance": 1,  # results/tables/provenance.*
        "atlas_neighbours": 1,  # the atlas of the primary setting
        "atlas_table": 1,
        "atlas_page": 1,
        "atlas_summary": 1,
        "all": 1,
    }


def test_good_config_plans_the_presets_jobs(dry_runs):
    _, result = dry_runs["good"]
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout + result.stderr)
    expected = expected_jobs(yaml.safe_load(PRESET.read_text()))
    assert counts == expected, {k: (counts.get(k), expected.get(k)) for k in counts.keys() | expected.keys()
                                if counts.get(k) != expected.get(k)}
    assert sum(expected.values()) == 73  # the preset's whole DAG


def planned_outputs(output: str) -> set[str]:
    """Every output file of a dry run's jobs."""
    return {f for line in re.findall(r"^\s+output: (.*)$", output, flags=re.M) for f in line.split(", ")}


def test_results_dir_moves_every_planned_path(dry_runs):
    (_, good), (workdir, moved) = dry_runs["good"], dry_runs["elsewhere"]
    assert moved.returncode == 0, moved.stderr[-3000:]
    before, after = planned_outputs(good.stdout + good.stderr), planned_outputs(moved.stdout + moved.stderr)
    assert before and all(f.startswith("results/") for f in before)
    assert after == {"elsewhere/smoke/" + f.removeprefix("results/") for f in before}
    assert job_counts(moved.stdout + moved.stderr) == job_counts(good.stdout + good.stderr)
    assert not (workdir / "results").exists() and not (workdir / "elsewhere").exists()  # a dry run


def test_a_configfile_replaces_config_yaml(dry_runs):
    """A file with one key plans the schema's defaults for the rest, not config.yaml's."""
    (_, one), (_, written_out) = dry_runs["one_key"], dry_runs["one_key_defaults"]
    assert one.returncode == 0, one.stderr[-3000:]
    assert written_out.returncode == 0, written_out.stderr[-3000:]
    planned = planned_outputs(one.stdout + one.stderr)
    assert planned == planned_outputs(written_out.stdout + written_out.stderr)
    assert job_counts(one.stdout + one.stderr) == job_counts(written_out.stdout + written_out.stderr)
    defaults = with_defaults({})
    assert defaults["datasets"] == ["cifar10"] and defaults["seeds"] == [0]
    assert "results/runs/cifar10/resnet9/noise0.1/seed0/gradients.parquet" in planned
    assert not [f for f in planned if "fashion_mnist" in f]  # config.yaml's dataset


def python(code: str, **env: str) -> subprocess.CompletedProcess:
    """`python -c code` from the repository root, with `env` added to the environment."""
    import os
    import sys

    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def test_set_results_dir_moves_every_template_and_jobs_inherit_it():
    moved = python("from memloc.core import paths\n"
                   "paths.set_results_dir('smoke/out/')\n"
                   "import os; from memloc.dropout.plan import RUN_DIR  # imported after: moved\n"
                   "print(RUN_DIR, paths.table('x'), paths.figure('f', 'png'), os.environ['MEMLOC_RESULTS_DIR'])")
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.split() == ["smoke/out/dropout/runs/{dataset}/{model}/noise{noise}/{dropout}/seed{seed}",
                                    "smoke/out/tables/x.parquet", "smoke/out/figures/f.png", "smoke/out"]
    job = python("from memloc.core import paths; print(paths.DATASET_INFO)", MEMLOC_RESULTS_DIR="smoke/out")
    assert job.stdout.split() == ["smoke/out/data/{dataset}/dataset.json"]


def test_set_results_dir_refuses_after_a_module_imported_a_template():
    late = python("import memloc.core.data.catalog\n"
                  "from memloc.core import paths; paths.set_results_dir('elsewhere')")
    assert late.returncode != 0
    assert "memloc.core.data.catalog.DATASET_INFO already hold templates under results/" in late.stderr
