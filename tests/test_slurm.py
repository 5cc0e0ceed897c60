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
# A subset of the test preset's targets that covers every kind of job and each group:
# data, training, example-tied dropout (GPU rules), fig07 (figure and table rules, local),
# a run's rewinding (group rewinding), two layers' retraining (group retraining: one
# submission) and neuron flipping of one seed's two shards (group flipping: one submission).
# `bash tests/slurm/run_e2e.sh DIR` without targets runs the whole preset.
RUN = "results/runs/fashion_mnist/resnet9/noise0.1/seed0"
FLIP = "results/flipping/fashion_mnist/resnet9/noise0.1/seed0"
TARGETS = [
    "results/figures/fig07.png",
    f"{RUN}/rewinding.parquet",
    *(f"{RUN}/retraining/layer{i}.parquet" for i in (1, 9)),
    *(f"{FLIP}/shard{k}.parquet" for k in (0, 1)),
]


def _requested(config) -> bool:
    markexpr = config.getoption("markexpr") or ""
    return os.environ.get("MEMLOC_TEST_SLURM") == "1" or ("slurm" in markexpr and "not slurm" not in markexpr)


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
