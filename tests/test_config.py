"""Bad configuration stops the workflow before any job, with a message naming the key."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def dry_run(tmp_path: Path, override: dict) -> subprocess.CompletedProcess:
    (tmp_path / "override.yaml").write_text(yaml.safe_dump(override))
    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(ROOT / "tests/config/test.yaml"), str(tmp_path / "override.yaml")]
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.mark.parametrize(
    "override,expected",
    [
        ({"datasets": ["cifar100"]}, "instance['datasets'][0]"),
        ({"models": ["resnet18"]}, "instance['models'][0]"),
        ({"noise_rates": [1.0]}, "instance['noise_rates'][0]"),
        ({"primary": {"dataset": "fashion_mnist", "model": "resnet9", "noise": -0.1}}, "instance['primary']['noise']"),
        ({"train": {"epochs": 4, "peak_epoch": 9}}, "train.peak_epoch (9) must come before the last epoch"),
        ({"figures": {"fig01": {"epochs": [3, 9]}}}, "figures.fig01.epochs"),
        ({"datasets": ["fashion_mnist", "mnist"], "data_root": "empty"}, "datasets: dataset 'mnist' is not under data_root"),
        ({"learning_rate": 0.1}, "'learning_rate' was unexpected"),
        ({"rewinding": {"epochs": [0, 7]}}, "rewinding.epochs: [7] after the last checkpoint"),
        ({"retraining": {"epochs": 2, "peak_epoch": 2}}, "retraining.peak_epoch (2) must be before retraining.epochs"),
    ],
)
def test_bad_config_names_the_key(tmp_path, override, expected):
    result = dry_run(tmp_path, override)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()  # nothing ran


def test_good_config_builds_the_dag(tmp_path):
    result = dry_run(tmp_path, {})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train" in result.stdout
