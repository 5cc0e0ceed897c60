"""Neuron flipping of one shard of the selected examples on one trained run."""

from memloc.core.device import job_label, resolve_device
from memloc.core.provenance import start_job_log
from memloc.flipping.jobs import flip_shard

start_job_log(snakemake.log[0])
# a GPU job that sees no GPU stops here, before loading data, naming the job
device = resolve_device(snakemake.params.device, job_label(snakemake.rule, snakemake.wildcards.items()))

flip_shard(
    snakemake.input.checkpoints,
    snakemake.input.data,
    snakemake.input.selection,
    snakemake.output[0],
    shard=int(snakemake.wildcards.shard),
    dataset=snakemake.wildcards.dataset,
    source=snakemake.params.source,
    settings=snakemake.params.settings,
    seed=int(snakemake.wildcards.seed),
    accuracy_examples=snakemake.params.accuracy_examples,
    device=str(device),
    threads=snakemake.threads,
)
