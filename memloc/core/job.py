"""The start every workflow job shares (workflow/scripts call it first): its log and, for a
job that computes, how it computes (memloc.core.device), its threads and its device."""

from __future__ import annotations

import os

from memloc.core.provenance import start_job_log


def start(log: str | os.PathLike, compute: dict | None = None, threads: int | None = None, append: bool = False):
    """Send the job's stderr to `log` (append: a resumed job keeps its log); with `compute`
    (the rule parameter memloc.plan.compute.compute_settings makes: device, precision,
    compile, deterministic, job), run on `threads` CPU threads in that precision and return
    the torch device.  A GPU job that sees no GPU stops here, before loading data, naming the
    job.  A table job (compute None) imports no torch."""
    start_job_log(log, append)
    if compute is None:
        return None
    import torch

    from memloc.core.device import Compute, resolve_device, use

    torch.set_num_threads(threads)
    use(Compute(compute["precision"], compute["compile"], compute["deterministic"]))
    return resolve_device(compute["device"], compute["job"])
