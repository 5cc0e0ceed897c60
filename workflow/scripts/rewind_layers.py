"""Rewind every layer of one run to every rewind epoch; one parquet table of accuracies."""

from memloc.core.device import job_label, resolve_device
from memloc.core.provenance import start_job_log
from memloc.layers.jobs import rewind_run

start_job_log(snakemake.log[0])
# a GPU job that sees no GPU stops here, before loading data, naming the job
device = resolve_device(snakemake.params.device, job_label(snakemake.rule, snakemake.wildcards.items()))

rewind_run(
    snakemake.input.data,
    snakemake.input.checkpoints,
    snakemake.output[0],
    dataset=snakemake.wildcards.dataset,
    source=snakemake.params.source,
    test_subset=snakemake.params.test_subset,
    epochs=snakemake.params.epochs,
    batch_size=snakemake.params.batch_size,
    device=str(device),
    threads=snakemake.threads,
    group_column=snakemake.params.group_column,
)
