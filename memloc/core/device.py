"""Where and how a job computes: its torch device (a clear error when a GPU was asked for and
none is visible), the precision of its forward passes, the fp16 loss scaler, the opt-in
torch.compile and deterministic CUDA kernels.

The workflow passes the config keys `device`, `precision`, `deterministic` (and, to the jobs
that train, `compile`) to every compute job as a rule parameter (memloc.plan.compute), so
Snakemake reruns the jobs a change affects; the job's start (memloc.core.job.start) sets them
for its process (`use`), a run's checkpoints record the precision its forward passes ran in,
and results/tables/provenance records them all.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass

import torch

# auto = bf16 autocast where the hardware runs bf16 natively (CUDA from Ampere / sm_80 on,
# ROCm; CPUs whose oneDNN has bf16: AVX-512 BF16 / AMX), else fp16 with loss scaling on CUDA
# (V100, T4: tensor cores in fp16, no native bf16), else fp32.  Parameters, gradients,
# optimizer state and losses stay fp32 whatever the choice.
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Compute:
    """How this process computes (config keys precision, compile, deterministic)."""

    precision: str  # one of PRECISIONS (auto: choose_precision's rule)
    compile: bool  # training runs a torch.compile'd model
    deterministic: bool  # deterministic CUDA kernels (configure_cuda_determinism)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} (config key precision): use one of {PRECISIONS}")


_compute: Compute | None = None


def use(compute: Compute) -> None:
    """Set how this process computes (a job's start does; tests and notebooks call it too)."""
    global _compute
    _compute = compute


def current() -> Compute:
    """How this process computes: what `use` set; an error before it was called."""
    if _compute is None:
        raise RuntimeError("how this process computes is not set: call memloc.core.device.use(Compute(...)) first "
                           "(memloc.core.job.start does, from the job's compute parameter)")
    return _compute


def choose_precision(setting: str, device_type: str, bf16_native: bool) -> str:
    """'bf16', 'fp16' or 'fp32' for a `precision` setting on a device of `device_type` that does
    (or does not) run bf16 natively.  Pure, so that the rule is tested without the hardware."""
    if setting not in PRECISIONS:
        raise ValueError(f"precision {setting!r} (config key precision): use one of {PRECISIONS}")
    if setting != "auto":
        return setting
    if bf16_native:
        return "bf16"
    return "fp16" if device_type == "cuda" else "fp32"


def bf16_native(device: torch.device) -> bool:
    """Whether `device` runs bf16 convolutions / matmuls natively (not emulated)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def precision_for(device: torch.device, precision: str | None = None) -> str:
    """'bf16', 'fp16' or 'fp32': the precision forward passes on `device` run in (`precision`:
    the setting; None = this process's, `current`)."""
    setting = precision or current().precision
    return choose_precision(setting, device.type, setting == "auto" and bf16_native(device))


def autocast_for(device: torch.device, precision: str | None = None):
    """bf16 / fp16 autocast where `precision_for` says so (convs / matmuls in low precision;
    losses are computed in fp32 by the callers), else a no-op context."""
    dtype = _DTYPES.get(precision_for(device, precision))
    return torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()


def grad_scaler_for(device: torch.device, precision: str | None = None) -> torch.amp.GradScaler | None:
    """A loss scaler for training in fp16 (small gradients underflow in fp16 without one);
    None in bf16 / fp32, which have fp32's exponent range."""
    return torch.amp.GradScaler(device.type) if precision_for(device, precision) == "fp16" else None


def configure_cuda_determinism(deterministic: bool) -> None:
    """Deterministic CUDA kernels, or the fastest ones.  Deterministic: cuBLAS needs a fixed
    workspace (CUBLAS_WORKSPACE_CONFIG, read when its handle is created: before any CUDA
    work, which is why resolve_device calls this), cuDNN picks fixed algorithms, and
    torch.use_deterministic_algorithms makes the ops that have a deterministic kernel use it.
    warn_only: ops that have none on CUDA (adaptive average pooling's backward, which
    ResNet-50 uses) warn in the job's log instead of stopping a GPU job hours in.
    Otherwise cudnn.benchmark: every job feeds fixed-size batches, so the per-shape search of
    the fastest convolution algorithm pays off after the first batches."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # both ways: a process (a notebook, a test worker) that switched it on can switch it off
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def job_label(rule: str, wildcards: Iterable[tuple[str, str]]) -> str:
    """'rule train (dataset=fashion_mnist, model=resnet9, ...)': a job named in errors."""
    return f"rule {rule} (" + ", ".join(f"{k}={v}" for k, v in wildcards) + ")"


def resolve_device(name: str | torch.device, job: str | None = None) -> torch.device:
    """'auto' -> CUDA when present, else CPU; anything else is passed to torch.device.

    A CUDA device that torch cannot see is an error naming `job` and the setting, before
    any data is loaded: without it a GPU job that got no GPU (a SLURM plugin that drops
    `gpu`, a wrong CUDA_VISIBLE_DEVICES) would train on the CPU until it timed out.  On CUDA,
    the kernels are made deterministic or fast (configure_cuda_determinism)."""
    name = str(name)
    if name == "auto":
        return resolve_device("cuda" if torch.cuda.is_available() else "cpu", job)
    device = torch.device(name)
    if device.type == "cuda":
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= visible:
            raise RuntimeError(
                f"{job or 'this job'}: config key `device: {name}` asks for CUDA device {device.index or 0}, but torch "
                f"sees {visible} CUDA device(s) (torch {torch.__version__}, built for CUDA {torch.version.cuda}; "
                f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}). Stopped before loading data "
                "instead of training on the CPU: request a GPU for the job (SLURM: resources gpu=1, with "
                "snakemake-executor-plugin-slurm>=1.0), or set `device: auto` / `device: cpu` in the config.")
        configure_cuda_determinism(current().deterministic)
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"{job or 'this job'}: config key `device: {name}`, but torch sees no MPS device; "
                           "set `device: auto` or `device: cpu` in the config.")
    return device
