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
SWEEP_ONLY_NOISE = 3  # fig11's rates beyond the grid: 1%, 50%, 99% (CIFAR-10, ResNet-9)
TAB2 = 6 * 2  # p_gen 0.1..0.6 x p_mem 0.1, 0.2 on CIFAR-10; includes tab1's and tab3's CIFAR-10 run

EXPECTED = {
    # one corrupted training set per dataset x noise rate, plus the sweep's extra rates
    "corrupt_data": DATASETS * NOISE + SWEEP_ONLY_NOISE,
    # fig12-14: 3 datasets x 3 models x 3 noise rates x 3 seeds; fig11 adds 3 rates x 3 seeds
    "train": DATASETS * MODELS * NOISE * SEEDS + SWEEP_ONLY_NOISE * SEEDS,
    "collect_run_tables": 2,  # gradients, metrics
    "gradient_figure": 7,  # fig01, fig02, fig10, fig11, fig12, fig13, fig14
    # tab2's grid, tab1 on MNIST and SVHN, tab3's two baselines (standard dropout, sparse net)
    "train_dropout": TAB2 + 2 + 2,
    "collect_dropout_metrics": 1,
    "dropout_table": 3,  # tab1, tab2, tab3
    "dropout_paper_rows": 1,
    "fig07_table": 1,
    "fig07": 1,
    "paper_vs_ours": 1,
    "all": 1,
}


def job_counts(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table of a dry run -> {rule: jobs}."""
    table = output.split("Job stats:", 1)[1]
    rows = re.findall(r"^(\w+)\s+(\d+)$", table.split("total", 1)[0], flags=re.M)
    return {rule: int(n) for rule, n in rows}


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("paper")
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


def test_dry_run_has_the_papers_job_counts(dry_run):
    counts = job_counts(dry_run)
    assert counts == EXPECTED, {k: (counts.get(k), EXPECTED.get(k)) for k in counts.keys() | EXPECTED.keys()
                                if counts.get(k) != EXPECTED.get(k)}


def test_dry_run_targets_full_scale_artefacts(dry_run):
    for path in ["results/runs/cifar10/vit_small/noise0.2/seed2/gradients.parquet",
                 "results/runs/svhn/resnet50/noise0.05/seed0/metrics.parquet",
                 "results/runs/cifar10/resnet9/noise0.99/seed1/gradients.parquet",
                 "results/figures/fig13.png", "results/figures/fig14.png",
                 "results/tables/tab2.csv"]:
        assert path in dry_run, path
