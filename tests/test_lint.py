"""The workflow passes `snakemake --lint` and is formatted with snakefmt; the Python code
passes ruff (rules and settings: [tool.ruff] in pyproject.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILES = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
PYTHON = ["memloc", "workflow/scripts", "tests", "bench"]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} missing: pip install -e '.[test]' (.ci/install does)")
    return path


def test_snakemake_lint_reports_nothing(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(ROOT / "config.yaml")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]


def test_snakefiles_are_formatted_with_snakefmt():
    result = subprocess.run([tool("snakefmt"), "--check", "--diff", *map(str, SNAKEFILES)],
                            capture_output=True, text=True)
    hint = "run: snakefmt Snakefile workflow/rules/"
    assert result.returncode == 0, f"{hint}\n{result.stdout[-5000:]}{result.stderr[-2000:]}"


def test_python_code_passes_ruff():
    result = subprocess.run([tool("ruff"), "check", "--no-cache", "--output-format", "concise", *PYTHON],
                            cwd=ROOT, capture_output=True, text=True)
    hint = f"run: ruff check --fix {' '.join(PYTHON)}"
    assert result.returncode == 0, f"{hint}\n{result.stdout[-5000:]}{result.stderr[-2000:]}"
