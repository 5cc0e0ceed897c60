"""Checks of a workflow run through SLURM against a local run of the same preset.

    python tests/slurm/check_run.py submissions SLURM_WORKDIR SLURMCTLD_LOG PROFILE CONFIGFILE
    python tests/slurm/check_run.py tables SLURM_WORKDIR LOCAL_WORKDIR [--same-targets]
    python tests/slurm/check_run.py --local-rules SNAKEFILE CONFIGFILE WORKDIR   (prints them, JSON)

`submissions` (while the cluster is up) asserts that (1) Snakemake submitted every job with
sbatch (its log names a SLURM job id per job, and only the workflow's localrules ran
locally, no GPU rule) and (2) SLURM itself ran each of them to completion (slurmctld's log,
`scontrol show job`, the per-job SLURM log files), with one fake GPU for the rules that the
profile gives `gpu: 1`.  `tables` asserts that (3) every parquet table under the SLURM run's
results/ equals the local run's, value for value; the local run may have run more targets
(tests/test_workflow.py compares with its run of the whole preset), unless --same-targets.
Each prints a summary and exits non-zero on the first failed check.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yte


def snakemake_log(workdir: Path) -> str:
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    assert logs, f"no Snakemake log under {workdir}/.snakemake/log"
    # all of them: reading the workflow's local rules through the Snakemake API (below) leaves
    # a later, empty log beside the run's
    return "\n".join(log.read_text() for log in logs)


def submitted_jobs(log: str) -> dict[str, str]:
    """{SLURM job id: Snakemake job id} from 'Job 3 has been submitted with SLURM jobid 12'
    (a group job's Snakemake id is a UUID)."""
    found = re.findall(r"Job (\S+) has been submitted with SLURM jobid (\d+)", log)
    return {slurm: job for job, slurm in found}


def slurm_jobs() -> dict[str, dict]:
    """Every job slurmctld still remembers (MinJobAge): id -> its `scontrol show job` fields."""
    out = subprocess.run(["scontrol", "show", "job", "--oneliner"], capture_output=True, text=True, check=True).stdout
    jobs = {}
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" in fields:
            jobs[fields["JobId"]] = fields
    return jobs


def check_submissions(slurm_dir: Path, ctld_log: Path, gpu_rules: set[str], local_rules: set[str]) -> list[str]:
    log = snakemake_log(slurm_dir)
    jobs = submitted_jobs(log)
    assert jobs, "Snakemake's log names no SLURM job id: nothing went through sbatch"
    assert re.search(r"(\d+) of \1 steps \(100%\) done", log), "the SLURM run did not finish"
    # Rules that ran in the Snakemake process itself print 'localrule': only `all` and the
    # workflow's localrules (downloads, tables, figures) may, never a GPU rule.
    local = set(re.findall(r"^localrule (\w+):", log, flags=re.M)) - {"all"}
    assert local <= local_rules - gpu_rules, f"jobs ran outside SLURM: {sorted(local - (local_rules - gpu_rules))}"

    ctld = ctld_log.read_text()
    history = slurm_jobs()
    slurm_logs = {p.stem: p for p in (slurm_dir / ".snakemake" / "slurm_logs").rglob("*.log")}
    rules = []
    for slurm_id in jobs:
        assert re.search(rf"JobId={slurm_id}\b.*(Allocate|done)", ctld), f"slurmctld never ran job {slurm_id}"
        job = history.get(slurm_id)
        assert job is not None, f"job {slurm_id} unknown to scontrol show job"
        assert job["JobState"] == "COMPLETED", f"job {slurm_id}: {job}"
        # The plugin's comment: rule_<rule>[_wildcards_<values>], or rule_<group>_<its rules>
        rule = re.match(r"rule_(\w+?)(?:_wildcards_|$)", job.get("Comment", ""))
        name = rule.group(1) if rule else job.get("Comment", "?")
        rules.append(name)
        if any(name == r or name.endswith(f"_{r}") for r in gpu_rules):
            tres = job.get("TresPerJob", "") + job.get("TresPerNode", "")
            assert "gpu:fake:1" in tres, f"GPU job {slurm_id} ({name}) got no GPU: {job}"
        assert slurm_id in slurm_logs, f"no SLURM log file of job {slurm_id}"
    return rules


def check_tables(slurm_dir: Path, local_dir: Path, same_targets: bool) -> int:
    """Every parquet table of the SLURM run exists in the local run with equal values (and,
    with same_targets, the local run wrote no other table)."""
    local = sorted(p.relative_to(local_dir) for p in (local_dir / "results").rglob("*.parquet"))
    remote = sorted(p.relative_to(slurm_dir) for p in (slurm_dir / "results").rglob("*.parquet"))
    assert remote, "the SLURM run wrote no parquet table"
    missing, extra = set(remote) - set(local), set(local) - set(remote)
    assert not missing and not (same_targets and extra), (f"different tables: local only {extra}, "
                                                          f"SLURM only {missing}")
    for rel in remote:
        pd.testing.assert_frame_equal(
            pd.read_parquet(local_dir / rel), pd.read_parquet(slurm_dir / rel), check_exact=True, obj=str(rel)
        )
    return len(local)


def gpu_rules(profile: Path) -> set[str]:
    """Rules that the workflow profile gives a GPU (set-resources: rule: gpu: 1)."""
    with open(profile) as f:
        settings = yte.process_yaml(f, require_use_yte=True)
    return {rule for rule, res in settings["set-resources"].items() if res.get("gpu")}


def local_rules(snakefile: Path, configfile: Path, workdir: Path) -> set[str]:
    """The rules that Snakemake runs in its own process on a cluster (Workflow.is_local):
    named in the workflow's `localrules:` and in no group."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(ResourceSettings(), ConfigSettings(configfiles=[configfile]), snakefile=snakefile,
                                workdir=workdir)._workflow
        return {r.name for r in workflow.rules if r.name in workflow._localrules and r.group is None}


def submissions(slurm_dir: str, ctld_log: str, profile: str, configfile: str) -> None:
    snakefile = Path(profile).resolve().parents[3] / "Snakefile"  # workflow/profiles/slurm/config.yaml
    local = local_rules(snakefile, Path(configfile).resolve(), Path(slurm_dir).resolve())
    rules = check_submissions(Path(slurm_dir), Path(ctld_log), gpu_rules(Path(profile)), local)
    counts = pd.Series(rules).value_counts().to_dict()
    print(f"{len(rules)} SLURM jobs, all COMPLETED, each in slurmctld's log with a SLURM log file: {counts}")


def tables(slurm_dir: str, local_dir: str, *flags: str) -> None:
    assert set(flags) <= {"--same-targets"}, f"unknown flags {flags}"
    n = check_tables(Path(slurm_dir), Path(local_dir), same_targets="--same-targets" in flags)
    print(f"{n} parquet tables equal to the local run's")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "--local-rules":
        print(json.dumps(sorted(local_rules(*map(Path, args)))))
    else:
        {"submissions": submissions, "tables": tables}[command](*args)
