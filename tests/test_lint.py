"""The workflow passes `snakemake --lint` and is formatted with snakefmt."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILES = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]


def test_snakemake_lint_reports_nothing(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(ROOT / "config.yaml")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]


def test_snakefiles_are_formatted_with_snakefmt():
    snakefmt = shutil.which("snakefmt")
    if snakefmt is None:
        pytest.fail("snakefmt missing: pip install -e '.[test]' (.ci/install does)")
    result = subprocess.run([snakefmt, "--check", "--diff", *map(str, SNAKEFILES)], capture_output=True, text=True)
    assert result.returncode == 0, f"run: snakefmt Snakefile workflow/rules/\n{result.stdout[-5000:]}{result.stderr[-2000:]}"
