"""End-to-end: the test preset through the real Snakemake, on real Fashion-MNIST."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "tests" / "config" / "test.yaml"

# Every artefact the test preset must produce (figures as PNG + PDF, tables as CSV + MD).
FIGURES = ["fig01", "fig02", "fig10", "fig11", "fig12", "fig07"]
TABLES: list[str] = ["tab1", "tab2", "tab3", "paper_vs_ours"]
# Parquet tables behind them.
PARQUET = ["results/tables/gradients.parquet", "results/tables/metrics.parquet"]
PARQUET += [f"results/tables/{t}.parquet" for t in ("dropout_metrics", "tab1", "tab2", "tab3", "paper_vs_ours")]
FIGURES += ["fig05"]
TABLES += ["auc"]
PARQUET += [f"results/tables/{t}.parquet" for t in ("flipping", "auc", "detection_scores")]
FIGURES += ["fig08", "fig09", "fig19"]
PARQUET += [f"results/tables/atypical_{t}.parquet" for t in ("gradients", "rewinding", "retraining")]
PARQUET += ["results/data/fashion_mnist/atypical.parquet"]
FIGURES += ["fig03", "fig04", "fig15", "fig18"]  # the preset has Fashion-MNIST only: no fig16 / fig17
PARQUET += ["results/tables/rewinding.parquet", "results/tables/retraining.parquet"]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(PRESET), *args]
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("e2e")
    result = snakemake(workdir, "--cores", "2")
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


@pytest.mark.slow
def test_every_artefact_is_produced(e2e):
    for fig in FIGURES:
        for ext in ("png", "pdf"):
            path = e2e / "results" / "figures" / f"{fig}.{ext}"
            assert path.stat().st_size > 1000, path
    for tab in TABLES:
        for ext in ("csv", "md"):
            assert (e2e / "results" / "tables" / f"{tab}.{ext}").stat().st_size > 0
    for table in PARQUET:
        assert len(pd.read_parquet(e2e / table)) > 0, table


@pytest.mark.slow
def test_run_tables_are_complete(e2e):
    run = e2e / "results/runs/fashion_mnist/resnet9/noise0.1/seed0"
    metrics = pd.read_parquet(run / "metrics.parquet")
    examples = pd.read_parquet(run / "examples.parquet")
    grads = pd.read_parquet(run / "gradients.parquet")
    epochs = 4  # tests/config/test.yaml
    assert sorted(metrics["epoch"].unique()) == list(range(epochs + 1))
    assert set(metrics["subset"]) == {"train", "clean", "noisy", "test"}
    assert len(examples) == 300 * (epochs + 1)
    assert grads["layer"].nunique() == 9 and sorted(grads["epoch"].unique()) == list(range(1, epochs + 1))
    assert len((run / "checkpoints.txt").read_text().split()) == epochs + 1
    data = pd.read_parquet(e2e / "results/data/fashion_mnist/noise0.1.parquet")
    assert data["is_noisy"].sum() == 30


@pytest.mark.slow
def test_rerun_has_nothing_to_do(e2e):
    result = snakemake(e2e, "-n", "--cores", "1")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_layer_tables_cover_every_layer_epoch_and_run(e2e):
    rewinding = pd.read_parquet(e2e / "results/tables/rewinding.parquet")
    retraining = pd.read_parquet(e2e / "results/tables/retraining.parquet")
    per_layer = rewinding[rewinding["layer_index"] >= 0]
    runs = per_layer.groupby(["noise", "seed"])
    assert runs.ngroups == 4  # noise 0.1, 0.2 x seeds 0, 1 (tests/config/test.yaml)
    assert (runs.size() == 9 * 5 * 3).all()  # layers x epochs 0-4 x clean / noisy / test
    assert retraining.groupby(["noise", "seed"]).ngroups == 2  # retraining.seeds: [0]
    assert set(retraining["epoch"]) == {0, 1, 2} and retraining["layer"].nunique() == 9


@pytest.mark.slow
def test_report_has_every_figure_and_table_with_a_caption(e2e):
    result = snakemake(e2e, "--report", "results/report.html")
    assert result.returncode == 0, result.stderr[-5000:]
    html = (e2e / "results" / "report.html").read_text()
    entries = json.loads(re.search(r"var results = (\{.*?\});\n", html, flags=re.S).group(1))
    expected = [f"results/figures/{f}.png" for f in FIGURES] + [f"results/tables/{t}.csv" for t in TABLES]
    assert set(expected) <= set(entries), set(expected) - set(entries)
    for path, entry in entries.items():  # workflow/report/*.rst, rendered for this run
        assert "Scale" in entry["caption"] or "scale" in entry["caption"], path
