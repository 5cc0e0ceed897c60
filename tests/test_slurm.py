"""The workflow on a real one-node SLURM cluster (tests/slurm/run_e2e.sh).

The script installs SLURM and munge with apt, starts the daemons, runs the test preset
through `snakemake --workflow-profile workflow/profiles/slurm` and checks that every job
went through sbatch and that the tables equal a local run's.  It changes the machine
(packages, /etc/slurm), so it runs only where asked: MEMLOC_TEST_SLURM=1 (.ci/run sets
it) or `pytest -m slurm`.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "slurm" / "run_e2e.sh"
# The preset's targets that cover every kind of job once or more: data, training (GPU),
# the run tables, a figure, example-tied dropout (GPU), the C-score study.
TARGETS = [
    "results/figures/fig01.png",
    "results/tables/metrics.parquet",
    "results/tables/tab1.csv",
]


def _requested(config) -> bool:
    return os.environ.get("MEMLOC_TEST_SLURM") == "1" or "slurm" in (config.getoption("markexpr") or "")


@pytest.mark.slurm
def test_workflow_runs_on_a_real_slurm_cluster(tmp_path, request):
    if not _requested(request.config):
        pytest.skip("installs and starts SLURM on this machine: set MEMLOC_TEST_SLURM=1 or run pytest -m slurm")
    if os.geteuid() != 0:
        pytest.skip("needs root: installs slurmctld/slurmd/munge and starts them")
    if shutil.which("apt-get") is None:
        pytest.skip("needs apt-get (Debian/Ubuntu) to install SLURM")
    result = subprocess.run(["bash", str(SCRIPT), str(tmp_path), *TARGETS], capture_output=True, text=True,
                            timeout=1800)
    out = result.stdout + result.stderr
    if result.returncode == 77:
        pytest.skip(out.strip().splitlines()[-1])
    assert result.returncode == 0, out[-6000:]
    assert "SLURM jobs, all COMPLETED" in out and "parquet tables equal to the local run's" in out, out[-3000:]
    print(out)
