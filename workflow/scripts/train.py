"""Train one run (resuming from its checkpoints) and write its tables."""

from memloc.core.device import job_label, resolve_device
from memloc.core.provenance import start_job_log
from memloc.runs.jobs import train_run

start_job_log(snakemake.log[0], append=True)  # append: a resumed run keeps its log
# a GPU job that sees no GPU stops here, before loading data, naming the job
device = resolve_device(snakemake.params.device, job_label(snakemake.rule, snakemake.wildcards.items()))

train_run(
    snakemake.input.data,
    outputs=dict(snakemake.output),
    dataset=snakemake.wildcards.dataset,
    source=snakemake.params.source,
    test_subset=snakemake.params.test_subset,
    model={"name": snakemake.wildcards.model, **snakemake.params.model},
    train_settings=snakemake.params.train,
    device=str(device),
    threads=snakemake.threads,
)
