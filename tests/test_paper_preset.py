"""config/paper.yaml builds the full DAG of the paper's design, job for job.

A dry run (`snakemake -n`, nothing is downloaded or trained) of the paper preset; the
number of jobs per rule is derived below from the paper's design (FIGURES.md), not from
memloc's own planning code, so a planning bug or a preset that drifted from the paper's
scale shows up here before anyone spends GPU hours on it.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "config" / "paper.yaml"

DATASETS, MODELS, NOISE, SEEDS = 3, 3, 3, 3  # CIFAR-10/MNIST/SVHN; ResNet-9/50/ViT; 5/10/20%; 3 seeds
GRID_RUNS = DATASETS * MODELS * NOISE * SEEDS  # fig12-14 (gradients) and fig15-17 (rewinding)
SWEEP_ONLY_NOISE = 3  # fig11's rates beyond the grid: 1%, 50%, 99% (CIFAR-10, ResNet-9)
ATYPICAL_DATASETS = 2  # Sec. 7: CIFAR-10 and MNIST, noise-free, published C-scores
FLIP_MODELS = 30  # Sec. 6.1: 30 ResNet-9s (the primary setting)
FLIP_SHARDS = yaml.safe_load(PAPER.read_text())["flipping"]["shards"]  # jobs per model (an execution choice)
RESNET9_LAYERS = 9
TAB2 = 6 * 2  # p_gen 0.1..0.6 x p_mem 0.1, 0.2 on CIFAR-10; includes tab1's and tab3's CIFAR-10 run

EXPECTED = {
    "fetch_dataset": DATASETS,  # each dataset downloaded and checked once, before any job reads it
    # one corrupted training set per dataset x noise rate, the sweep's extra rates, and the
    # noise-free sets of the typical/atypical study
    "corrupt_data": DATASETS * NOISE + SWEEP_ONLY_NOISE + ATYPICAL_DATASETS,
    # the model x noise grid; fig11's extra rates; flipping's models beyond the grid's 3
    # seeds; noise-free typical/atypical runs (ResNet-9, 3 seeds)
    "train": GRID_RUNS + SWEEP_ONLY_NOISE * SEEDS + (FLIP_MODELS - SEEDS) + ATYPICAL_DATASETS * SEEDS,
    "collect_run_tables": 2,  # gradients, metrics
    "gradient_figure": 7,  # fig01, fig02, fig10, fig11, fig12, fig13, fig14
    # rewinding: every run of the grid (fig03 is part of fig15) and the typical/atypical
    # runs (fig09)
    "rewind_layers": GRID_RUNS + ATYPICAL_DATASETS * SEEDS,
    # retraining, one job per layer: ResNet-9 on 3 datasets x 3 noise rates x 3 seeds (fig18,
    # fig04 is part of it) and the typical/atypical runs (fig19)
    "retrain_layer": (DATASETS * NOISE * SEEDS + ATYPICAL_DATASETS * SEEDS) * RESNET9_LAYERS,
    "collect_layer_tables": 4,  # rewinding, retraining, and both for typical/atypical
    "layer_figure": 8,  # fig03, fig04, fig09, fig15, fig16, fig17, fig18, fig19
    # neuron flipping: 1000 + 1000 examples, dealt to shards, on each of the 30 models
    "select_flip_examples": 1,
    "flip_shard": FLIP_MODELS * FLIP_SHARDS,
    "merge_flipping": 1,
    "fig05": 1,
    "second_split": FLIP_MODELS,  # forgetting time, one per flipping model
    "detection_auc": 1,
    "auc_table": 1,
    "flipping_paper_rows": 1,
    # typical vs atypical: published C-scores, each downloaded once (fetch_cscores), so no
    # hold-out models
    "fetch_cscores": ATYPICAL_DATASETS,
    "atypical_data": ATYPICAL_DATASETS,
    "collect_atypical_tables": 1,
    "fig08": 1,
    # tab2's grid, tab1 on MNIST and SVHN, tab3's two baselines (standard dropout, sparse net)
    "train_dropout": TAB2 + 2 + 2,
    "collect_dropout_metrics": 1,
    "dropout_table": 3,  # tab1, tab2, tab3
    "dropout_paper_rows": 1,
    "fig07_table": 1,
    "fig07": 1,
    "paper_vs_ours": 1,
    "claims": 1,
    "all": 1,
}


def job_counts(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table of a dry run -> {rule: jobs}."""
    table = output.split("Job stats:", 1)[1]
    rows = re.findall(r"^(\w+)\s+(\d+)$", table.split("total", 1)[0], flags=re.M)
    return {rule: int(n) for rule, n in rows}


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("paper")  # a fresh clone: no file placed by hand
    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(PAPER), "--workflow-profile", "none"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-5000:]
    return result.stdout + result.stderr


def test_preset_is_the_papers_scale():
    c = yaml.safe_load(PAPER.read_text())
    assert c["datasets"] == ["cifar10", "mnist", "svhn"]
    assert c["models"] == ["resnet9", "resnet50", "vit_small"]
    assert c["noise_rates"] == [0.05, 0.1, 0.2] and c["seeds"] == [0, 1, 2]
    assert c["train_subset"] is None and c["test_subset"] is None
    assert c["model_settings"]["resnet9"]["width"] == 1.0
    t = c["train"]
    assert (t["epochs"], t["batch_size"], t["peak_lr"], t["peak_epoch"]) == (50, 512, 0.1, 10)
    assert c["download"] is True  # no data needed to build the DAG
    assert c["device"] == "cuda"  # a GPU job without a GPU fails at start instead of training on the CPU
    assert len(c["flipping"]["seeds"]) == FLIP_MODELS and c["flipping"]["examples_per_group"] == 1000
    assert c["atypical"]["datasets"] == ["cifar10", "mnist"]
    assert (c["retraining"]["epochs"], c["retraining"]["peak_epoch"]) == (20, 10)


def test_dry_run_has_the_papers_job_counts(dry_run):
    counts = job_counts(dry_run)
    assert counts == EXPECTED, {k: (counts.get(k), EXPECTED.get(k)) for k in counts.keys() | EXPECTED.keys()
                                if counts.get(k) != EXPECTED.get(k)}


def test_dry_run_targets_full_scale_artefacts(dry_run):
    for path in ["results/runs/cifar10/vit_small/noise0.2/seed2/gradients.parquet",
                 "results/runs/svhn/resnet50/noise0.05/seed0/metrics.parquet",
                 "results/runs/cifar10/resnet9/noise0.99/seed1/gradients.parquet",
                 "results/figures/fig13.png", "results/figures/fig14.png",
                 "results/tables/tab2.csv", "results/figures/fig17.png", "results/tables/auc.csv",
                 "results/figures/fig09.png", "results/figures/fig19.png",
                 "results/runs/cifar10/resnet9/noise0.1/seed2/retraining/layer9.parquet"]:
        assert path in dry_run, path
