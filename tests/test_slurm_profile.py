"""workflow/profiles/slurm/config.yaml agrees with the rules, and takes site settings from
the environment (the real-cluster run is tests/test_slurm.py)."""

import re
from pathlib import Path

import yte

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"
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
