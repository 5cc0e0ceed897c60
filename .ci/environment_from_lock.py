"""Writes environment.yml from .ci/requirements.lock: Python 3.11 from conda-forge and every
locked package at its exact version (pip section, without the hashes, which conda's pip
section cannot carry).  A standalone file: Snakemake's `conda:` directive copies it into
.snakemake/conda/, where a relative `-r` path would not resolve.  Run by .ci/lock;
tests/test_environment.py checks that the two agree."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
pins = re.findall(r"^([A-Za-z0-9_.-]+==[^\s\\]+)", (ROOT / ".ci" / "requirements.lock").read_text(), flags=re.M)
header = """# conda env create -f environment.yml && conda activate memloc
#   && pip install --no-deps --no-build-isolation -e .
# Written by .ci/lock from .ci/requirements.lock (do not edit): Python 3.11 and every locked
# package at its exact version, the environment `bash .ci/install` makes (which also checks
# the lock's sha256 hashes).
name: memloc
channels:
  - conda-forge
  - nodefaults
dependencies:
  - python=3.11
  - pip
  - pip:
"""
(ROOT / "environment.yml").write_text(header + "".join(f"      - {p}\n" for p in pins))
