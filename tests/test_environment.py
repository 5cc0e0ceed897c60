"""The installed environment is the locked one (.ci/requirements.lock, made by .ci/lock):
a suite that passes in another environment proves nothing about a fresh clone's.  To run
the suite against the registry's newest versions on purpose, use .ci/run-latest (it skips
this test)."""

import os

import pytest

from memloc.core.provenance import LOCK_FILE, lock_mismatches, locked_versions


@pytest.mark.skipif(os.environ.get("MEMLOC_UNLOCKED") == "1",
                    reason="MEMLOC_UNLOCKED=1: .ci/run-latest runs the suite on the newest versions on purpose")
def test_installed_versions_are_the_locked_ones():
    locked = locked_versions(LOCK_FILE)
    assert {"torch", "torchvision", "snakemake", "snakemake-executor-plugin-slurm", "numpy", "pandas", "pyarrow",
            "matplotlib", "seaborn", "scikit-learn", "tqdm", "pytest", "pytest-xdist"} <= set(locked)
    differ = lock_mismatches(LOCK_FILE)
    assert not differ, f"installed differs from {LOCK_FILE}: {differ}; install the lock with: bash .ci/install"


def test_every_locked_line_is_pinned_with_hashes():
    # what pip's --require-hashes needs: each requirement exact (==) and followed by its hashes
    lines = LOCK_FILE.read_text().splitlines()
    pins = [i for i, line in enumerate(lines) if line and not line.startswith((" ", "#", "-"))]
    assert len(pins) == len(locked_versions(LOCK_FILE)) > 50
    for i in pins:
        assert "==" in lines[i] and lines[i].endswith("\\"), lines[i]
        assert lines[i + 1].strip().startswith("--hash=sha256:"), lines[i]


def test_environment_yml_pins_the_locked_versions():
    # conda's environment.yml (Snakemake's `conda:` env) is written from the lock by .ci/lock
    import yaml

    env = yaml.safe_load((LOCK_FILE.parents[1] / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert dict(p.split("==") for p in pip) == locked_versions(LOCK_FILE)
    assert "python=3.11" in env["dependencies"]
