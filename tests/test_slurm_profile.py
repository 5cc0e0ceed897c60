"""workflow/profiles/slurm/config.yaml agrees with the rules, and takes site settings from
the environment (the paper preset dry-run through it: tests/test_paper_preset.py; a run on a
real cluster: tests/test_workflow.py).  workflow/profiles/workstation/config.yaml runs one
GPU job at a time, CPU jobs beside it."""

import re
import subprocess
import sys
from pathlib import Path

import yte

from memloc.plan import resources

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"
WORKSTATION = ROOT / "workflow" / "profiles" / "workstation" / "config.yaml"
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
