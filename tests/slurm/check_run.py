"""Checks of a workflow run through SLURM against a local run of the same targets.

    python tests/slurm/check_run.py SLURM_WORKDIR LOCAL_WORKDIR SLURMCTLD_LOG GPU_RULE...

Asserts that (1) Snakemake submitted every job with sbatch (its log names a SLURM job
id per job, and no job ran locally), (2) SLURM itself ran each of them to completion
(slurmctld's log, `squeue --states=all`, the per-job SLURM log files), with one fake
GPU for the GPU rules, and (3) every parquet table under results/ equals the local
run's, value for value.  Prints a summary; exits non-zero on the first failed check.
"""

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd


def snakemake_log(workdir: Path) -> str:
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    assert logs, f"no Snakemake log under {workdir}/.snakemake/log"
    return logs[-1].read_text()


def submitted_jobs(log: str) -> dict[str, str]:
    """{SLURM job id: Snakemake job id} from 'Job 3 has been submitted with SLURM jobid 12'."""
    found = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log)
    return {slurm: job for job, slurm in found}


def squeue_history() -> dict[str, dict]:
    """Every job slurmctld still remembers (MinJobAge): id -> state, comment, TRES."""
    out = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--format=%i|%T|%k|%b"],
        capture_output=True, text=True, check=True,
    ).stdout
    rows = [line.split("|") for line in out.splitlines() if line.strip()]
    return {r[0].strip(): {"state": r[1], "comment": r[2], "tres": r[3]} for r in rows}


def check_submissions(slurm_dir: Path, ctld_log: Path, gpu_rules: set[str]) -> list[str]:
    log = snakemake_log(slurm_dir)
    jobs = submitted_jobs(log)
    assert jobs, "Snakemake's log names no SLURM job id: nothing went through sbatch"
    assert re.search(r"(\d+) of \1 steps \(100%\) done", log), "the SLURM run did not finish"
    # Rules that ran in the Snakemake process itself print 'localrule'; only `all` may.
    local = set(re.findall(r"^localrule (\w+):", log, flags=re.M)) - {"all"}
    assert not local, f"jobs ran outside SLURM: {sorted(local)}"

    ctld = ctld_log.read_text()
    history = squeue_history()
    slurm_logs = {p.stem: p for p in (slurm_dir / ".snakemake" / "slurm_logs").rglob("*.log")}
    rules = []
    for slurm_id in jobs:
        assert re.search(rf"JobId={slurm_id}\b.*(Allocate|done)", ctld), f"slurmctld never ran job {slurm_id}"
        job = history.get(slurm_id)
        assert job is not None, f"job {slurm_id} unknown to squeue --states=all"
        assert job["state"] == "COMPLETED", f"job {slurm_id}: {job}"
        rule = re.match(r"(?:rule|group)_([A-Za-z0-9]+(?:_[A-Za-z0-9]+)*?)(?:_wildcards_|$)", job["comment"])
        name = rule.group(1) if rule else job["comment"]
        rules.append(name)
        if name in gpu_rules:
            assert "gpu:fake:1" in job["tres"], f"GPU job {slurm_id} ({name}) got no GPU: {job['tres']!r}"
        assert slurm_id in slurm_logs, f"no SLURM log file of job {slurm_id}"
    return rules


def check_tables(slurm_dir: Path, local_dir: Path) -> int:
    """Every parquet table of the local run exists in the SLURM run with equal values."""
    local = sorted(p.relative_to(local_dir) for p in (local_dir / "results").rglob("*.parquet"))
    remote = sorted(p.relative_to(slurm_dir) for p in (slurm_dir / "results").rglob("*.parquet"))
    assert local, "the local run wrote no parquet table"
    assert local == remote, f"different tables: local only {set(local) - set(remote)}, SLURM only {set(remote) - set(local)}"
    for rel in local:
        pd.testing.assert_frame_equal(
            pd.read_parquet(local_dir / rel), pd.read_parquet(slurm_dir / rel), check_exact=True, obj=str(rel)
        )
    return len(local)


def main(slurm_dir: str, local_dir: str, ctld_log: str, *gpu_rules: str) -> None:
    rules = check_submissions(Path(slurm_dir), Path(ctld_log), set(gpu_rules))
    counts = pd.Series(rules).value_counts().to_dict()
    print(f"{len(rules)} SLURM jobs, all COMPLETED, each in slurmctld's log with a SLURM log file: {counts}")
    n = check_tables(Path(slurm_dir), Path(local_dir))
    print(f"{n} parquet tables equal to the local run's")


if __name__ == "__main__":
    main(*sys.argv[1:])
