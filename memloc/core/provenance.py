"""What produced a result: the package versions against the lock, the Python, the device
(CPU model and instruction sets, or GPU, driver and CUDA), the precision actually used, the
threads, the determinism settings, and the memloc commit with whether the tree was dirty.

Every training run writes one record (provenance.json in its run folder); the provenance
table job gathers them, with its own, into results/tables/provenance.{parquet,csv,md}.  Every
job's log starts with a warning when the installed packages differ from the lock
(start_job_log).  Imports no torch at module level: table jobs use it too.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCK_FILE = REPO / ".ci" / "requirements.lock"
# The instruction sets that decide which CPU kernels torch / oneDNN run (fp32 and bf16
# convolutions and matmuls): two CPUs that differ here may compute different bits.
KERNEL_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve")
# Environment variables that change which CPU kernels run (or how many threads they use).
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# Packages named in their own columns (the rest are summed up by packages_sha256).
KEY_PACKAGES = ("torch", "torchvision", "numpy", "pandas", "pyarrow", "snakemake", "scikit-learn")


def locked_versions(lock: str | os.PathLike) -> dict[str, str]:
    """{package: version} of every `name==version` line of a pip requirements lock."""
    versions = {}
    for line in Path(lock).read_text().splitlines():
        if "==" in line and not line.lstrip().startswith(("#", "-")):
            name, version = line.split("==", 1)
            versions[name.strip().lower()] = version.split()[0].rstrip("\\").strip()
    return versions


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def lock_mismatches(lock: str | os.PathLike | None = None) -> list[str]:
    """'name installed (lock: version)' for every locked package whose installed version
    differs (a local label such as +cu130 is not a difference); [] when all match.
    lock: None = LOCK_FILE."""
    lock = LOCK_FILE if lock is None else lock
    if not Path(lock).exists():
        return [f"no lock file at {lock}"]
    locked = locked_versions(lock)
    return differences(locked, {name: installed_version(name) for name in locked})


def differences(locked: dict[str, str], installed: dict[str, str | None]) -> list[str]:
    """lock_mismatches' lines for versions already looked up."""
    return [f"{name} {installed[name] or 'not installed'} (lock: {version})" for name, version in locked.items()
            if installed[name] is None or installed[name].split("+")[0] != version.split("+")[0]]


def start_job_log(path: str | os.PathLike, append: bool = False) -> None:
    """Send this process's stderr (warnings, progress bars, tracebacks) to a job's log, and
    start the log with a warning when the environment is not the locked one: a table that
    differs from the documented one may come from a different torch, not from the code."""
    sys.stderr = open(path, "a" if append else "w")  # noqa: SIM115 (open for the job's life)
    mismatches = lock_mismatches()
    if mismatches:
        print(f"memloc: WARNING: the environment differs from {LOCK_FILE} in "
              f"{len(mismatches)} package(s): {'; '.join(mismatches[:10])}"
              f"{' ...' if len(mismatches) > 10 else ''}. Results may differ from the locked environment's; "
              "install it with: bash .ci/install", file=sys.stderr, flush=True)


def git_state(repo: Path = REPO) -> dict[str, str]:
    """The memloc commit and whether tracked or new files differ from it (results/ and the
    other ignored outputs do not count)."""
    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30)
    try:
        head, status = git("rev-parse", "HEAD"), git("status", "--porcelain")
    except (OSError, subprocess.TimeoutExpired):
        return {"memloc_commit": "unknown (no git)", "tree_dirty": "unknown"}
    if head.returncode:
        return {"memloc_commit": "unknown (not a git checkout)", "tree_dirty": "unknown"}
    return {"memloc_commit": head.stdout.strip(), "tree_dirty": "yes" if status.stdout.strip() else "no"}


def cpu_record() -> dict[str, str]:
    """The CPU's model name and the kernel-relevant instruction-set flags (/proc/cpuinfo)."""
    model, flags = None, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model is None:  # every core repeats it: the first
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return {"cpu": model or platform.processor() or platform.machine(),
            "cpu_isa": " ".join(f for f in KERNEL_FLAGS if f in flags) or "unknown"}


def package_record() -> dict[str, str]:
    """Python, the key packages, a digest of every installed locked package's version, and
    whether they all match the lock."""
    locked = locked_versions(LOCK_FILE) if LOCK_FILE.exists() else {}
    installed = {name: installed_version(name) for name in sorted(locked)}
    digest = hashlib.sha256("\n".join(f"{k}=={v or '-'}" for k, v in installed.items()).encode()).hexdigest()[:12]
    mismatches = differences(locked, installed) if locked else lock_mismatches()  # no lock: says so
    return {"python": platform.python_version(),
            **{name: installed_version(name) or "-" for name in KEY_PACKAGES},
            "packages_sha256": digest,
            "matches_lock": "yes" if not mismatches else "no: " + "; ".join(mismatches)}


def compute_record(device, threads: int | None = None) -> dict[str, str]:
    """The torch side: device (CPU model and ISA, or GPU, driver, CUDA, cuDNN), the precision
    forward passes run in on it, threads, and the determinism settings in force."""
    import torch

    from memloc.core.device import current, precision_for

    device = torch.device(device)
    record = {"device": str(device), **cpu_record(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "kernel_env": " ".join(f"{k}={os.environ[k]}" for k in KERNEL_ENV if k in os.environ) or "-"}
    if device.type == "cuda":
        record.update(gpu=torch.cuda.get_device_name(device), cuda=str(torch.version.cuda),
                      cudnn=str(torch.backends.cudnn.version()), gpu_driver=_nvidia_driver())
    return {**record,
            "precision": precision_for(device),
            "threads": str(threads if threads is not None else torch.get_num_threads()),
            # the config key (CUDA only; CPU kernels are not switched) and what is in force
            "deterministic_setting": str(current().deterministic).lower(),
            "deterministic_algorithms": ("warn only" if torch.is_deterministic_algorithms_warn_only_enabled()
                                         else "on") if torch.are_deterministic_algorithms_enabled() else "off",
            "cudnn_deterministic": str(torch.backends.cudnn.deterministic).lower(),
            "cudnn_benchmark": str(torch.backends.cudnn.benchmark).lower(),
            "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG", "-")}


def _nvidia_driver() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def environment_record(device=None, threads: int | None = None) -> dict[str, str]:
    """Everything above as one flat record of strings; `device` None: no torch side (a table job)."""
    record = {"host": socket.gethostname(), **git_state(), **package_record()}
    if device is not None:
        record.update(compute_record(device, threads))
    else:
        record.update(cpu_record())
    return record


def write_provenance(path: str | os.PathLike, device, threads: int | None = None) -> dict[str, str]:
    """Write a job's record as JSON (atomically) and return it."""
    from memloc.core.files import write_text_atomic

    record = environment_record(device, threads)
    write_text_atomic(json.dumps(record, indent=1, sort_keys=True) + "\n", path)
    return record
