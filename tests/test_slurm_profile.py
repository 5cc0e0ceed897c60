"""workflow/profiles/slurm/config.yaml agrees with the rules, and takes site settings from
the environment; the paper preset, dry-run through it on a clean directory, downloads each
dataset once on the login node, gives every GPU job a GPU and asks for at most 8 h per
submission; tables and figures run locally (the real-cluster run is tests/test_slurm.py).
workflow/profiles/workstation/config.yaml runs one GPU job at a time, CPU jobs beside it."""

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
import yte

from memloc.config import load_config
from memloc.runs import resources

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"
WORKSTATION = ROOT / "workflow" / "profiles" / "workstation" / "config.yaml"
PAPER = ROOT / "config" / "paper.yaml"
MAX_MINUTES = 8 * 60
SITE = ("MEMLOC_SLURM_ACCOUNT", "MEMLOC_SLURM_PARTITION", "MEMLOC_SLURM_GPU_PARTITION", "MEMLOC_SLURM_GPU_MODEL")


def profile(monkeypatch, **env) -> dict:
    for name in SITE:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with open(PROFILE) as f:
        return yte.process_yaml(f, require_use_yte=True)


def rule_blocks() -> dict[str, str]:
    """{rule name: its text} of every rule in workflow/rules/*.smk."""
    text = "\n".join(p.read_text() for p in sorted((ROOT / "workflow" / "rules").glob("*.smk")))
    parts = re.split(r"^rule (\w+):", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_rule_that_asks_for_a_gpu_gets_one_on_slurm(monkeypatch):
    gpu_rules = {name for name, body in rule_blocks().items() if re.search(r"^\s+gpu=1,", body, flags=re.M)}
    settings = profile(monkeypatch)["set-resources"]
    assert gpu_rules == {rule for rule, res in settings.items() if res.get("gpu") == 1}


def test_group_components_name_the_rules_groups(monkeypatch):
    groups = {m for body in rule_blocks().values() for m in re.findall(r'^\s+group:\s+"(\w+)"', body, flags=re.M)}
    assert set(profile(monkeypatch)["group-components"]) == groups


def test_site_settings_come_from_the_environment(monkeypatch):
    bare = profile(monkeypatch)
    assert bare["executor"] == "slurm"
    assert not {"slurm_account", "slurm_partition"} & set(bare["default-resources"])
    assert all(set(res) == {"gpu"} for res in bare["set-resources"].values())

    site = profile(monkeypatch, MEMLOC_SLURM_ACCOUNT="proj", MEMLOC_SLURM_PARTITION="cpu",
                   MEMLOC_SLURM_GPU_PARTITION="gpu", MEMLOC_SLURM_GPU_MODEL="a100")
    assert site["default-resources"]["slurm_account"] == "proj"
    assert site["default-resources"]["slurm_partition"] == "cpu"
    assert site["set-resources"]["train"] == {"gpu": 1, "gpu_model": "a100", "slurm_partition": "gpu"}

    # Without a GPU partition the GPU jobs go to MEMLOC_SLURM_PARTITION too.
    one = profile(monkeypatch, MEMLOC_SLURM_PARTITION="batch")
    assert one["set-resources"]["flip_shard"]["slurm_partition"] == "batch"


def test_jobs_at_once_is_a_number_a_shared_cluster_accepts(monkeypatch):
    # per-user caps on queued jobs (MaxSubmitJobs) are commonly 50-500
    assert 1 <= profile(monkeypatch)["jobs"] <= 50


TOY = """
rule all:
    input: expand("gpu{i}.txt", i=range(3)), expand("cpu{i}.txt", i=range(3))

rule gpu:
    output: "gpu{i}.txt"
    resources: gpu=1
    shell: "date +%s.%N > {output}; sleep 2; date +%s.%N >> {output}"

rule cpu:
    output: "cpu{i}.txt"
    shell: "date +%s.%N > {output}; sleep 2; date +%s.%N >> {output}"
"""


def test_workstation_profile_runs_one_gpu_job_at_a_time_beside_cpu_jobs(tmp_path):
    gpu_rules = {name for name, body in rule_blocks().items() if re.search(r"^\s+gpu=1,", body, flags=re.M)}
    assert gpu_rules == set(resources.GPU_RULES)
    (tmp_path / "Snakefile").write_text(TOY)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(tmp_path / "Snakefile"), "--directory", str(tmp_path),
           "--workflow-profile", str(WORKSTATION.parent), "--cores", "6"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]

    def spans(kind: str) -> list[tuple[float, float]]:
        return sorted(tuple(map(float, (tmp_path / f"{kind}{i}.txt").read_text().split())) for i in range(3))

    gpu, cpu = spans("gpu"), spans("cpu")
    assert all(end <= start for (_, end), (start, _) in zip(gpu, gpu[1:])), gpu  # one after another
    assert any(start < end for (_, end), (start, _) in zip(cpu, cpu[1:])), cpu  # side by side


# ---- the paper preset, dry-run through the SLURM profile --------------------------------------

class Job(NamedTuple):
    rule: str
    jobid: str
    group: str | None  # the group job it is packed into, if any
    wildcards: dict
    resources: dict
    input: list
    output: list


def _pairs(text: str) -> dict:
    return dict(item.split("=", 1) for item in text.split(", ") if "=" in item)


def parse_dry_run(output: str) -> list[Job]:
    """The jobs of `snakemake -n`'s output, with their group (members follow 'Group job ID
    (jobs in lexicogr. order):', indented), wildcards, resources and files."""
    jobs, job, group = [], None, None
    for line in output.splitlines():
        if m := re.match(r"^(?:\[[^]]*\] )?Group job (\S+) \(jobs in lexicogr\. order\):", line):
            group = f"{m.group(1)}#{len(jobs)}"  # the id names the group, not the group job
            continue
        if m := re.match(r"^(\s*)(?:local)?(?:rule|checkpoint) (\w+):$", line):
            if not m.group(1):
                group = None
            job = {"rule": m.group(2), "group": group, "jobid": "", "wildcards": {}, "resources": {},
                   "input": [], "output": []}
            jobs.append(job)
            continue
        m = re.match(r"^\s+(jobid|wildcards|resources|input|output): (.*)$", line)
        if job is not None and m:
            key, value = m.groups()
            job[key] = (value if key == "jobid" else _pairs(value) if key in ("wildcards", "resources")
                        else value.split(", "))
    return [Job(**j) for j in jobs]


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory) -> tuple[list[Job], set[str]]:
    """(jobs, local rules) of config/paper.yaml through the SLURM profile, in an empty directory."""
    workdir = tmp_path_factory.mktemp("paper_slurm")
    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(PAPER), "--workflow-profile", str(PROFILE.parent)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-5000:]
    assert not [p for p in workdir.iterdir() if p.name != ".snakemake"], "the dry run wrote files"
    local = subprocess.run([sys.executable, str(ROOT / "tests" / "slurm" / "check_run.py"), "--local-rules",
                            str(ROOT / "Snakefile"), str(PAPER), str(workdir)], capture_output=True, text=True)
    assert local.returncode == 0, local.stderr[-3000:]
    return parse_dry_run(result.stdout + result.stderr), set(json.loads(local.stdout.splitlines()[-1]))


def test_each_dataset_is_downloaded_once_locally_before_every_job_that_reads_it(paper_dry_run):
    jobs, local = paper_dry_run
    c = yaml.safe_load(PAPER.read_text())
    fetch = {j.wildcards["dataset"]: j for j in jobs if j.rule == "fetch_dataset"}
    assert sorted(fetch) == sorted(set(c["datasets"]) | set(c["atypical"]["datasets"]))
    assert len(fetch) == sum(j.rule == "fetch_dataset" for j in jobs)
    assert {"fetch_dataset", "fetch_cscores"} <= local

    producer = {path: j.jobid for j in jobs for path in j.output}
    parents = {j.jobid: {producer[f] for f in j.input if f in producer} for j in jobs}
    ancestors: dict[str, set[str]] = {}

    def upstream(jobid: str) -> set[str]:  # every job this one waits for
        if jobid not in ancestors:
            ancestors[jobid] = set(parents[jobid]).union(*(upstream(p) for p in parents[jobid]))
        return ancestors[jobid]

    downloads = {f.jobid for f in fetch.values()}
    for job in jobs:
        if job.rule in ("fetch_dataset", "fetch_cscores"):
            continue
        before = upstream(job.jobid)
        assert before & downloads, f"{job.rule} {job.wildcards} runs before any download"
        if "dataset" in job.wildcards:
            assert fetch[job.wildcards["dataset"]].jobid in before, f"{job.rule} {job.wildcards}"


def test_every_gpu_job_gets_a_gpu_and_no_submission_asks_for_more_than_8h(paper_dry_run):
    jobs, local = paper_dry_run
    config = load_config(PAPER)
    gpu_jobs = [j for j in jobs if j.rule in resources.GPU_RULES]
    assert {j.rule for j in gpu_jobs} == set(resources.GPU_RULES) - {"holdout_model"}  # published C-scores
    assert all(j.resources.get("gpu") == "1" for j in gpu_jobs)
    assert not local & set(resources.GPU_RULES)
    for j in jobs:
        if j.rule not in local | {"all"}:
            assert 0 < int(j.resources["runtime"]) <= MAX_MINUTES, j

    groups: dict[str, list[Job]] = {}
    for j in jobs:
        if j.group:
            groups.setdefault(j.group, []).append(j)
    components = yte.process_yaml(PROFILE.read_text(), require_use_yte=True)["group-components"]
    assert len(groups) == sum(-(-sum(j.rule == rule for j in jobs) // n) for rule, n in
                              [("rewind_layers", components["rewinding"]), ("retrain_layer", components["retraining"]),
                               ("flip_shard", components["flipping"])])
    for members in groups.values():
        # one GPU per group job: its members run one after another, its time limit is their sum
        runtime = sum(int(j.resources["runtime"]) for j in members)
        assert runtime <= MAX_MINUTES, [(j.rule, j.wildcards) for j in members]
        # a retried group (attempt 2: twice the time) fits as well
        assert sum(resources.minutes(j.rule, config, j.wildcards, attempt=2) for j in members) <= MAX_MINUTES
        assert len({j.rule for j in members}) == 1 and members[0].rule in resources.GPU_RULES


def test_tables_figures_and_collect_jobs_run_locally(paper_dry_run):
    jobs, local = paper_dry_run
    for j in jobs:
        if j.output and all(re.match(r"results/(figures|tables)/", f) for f in j.output):
            assert j.rule in local, f"{j.rule} writes only tables or figures but goes through sbatch"
    submitted = {j.rule for j in jobs} - local - {"all"}
    assert submitted == set(resources.GPU_RULES) - {"holdout_model"} | {"corrupt_data", "atypical_data"}
