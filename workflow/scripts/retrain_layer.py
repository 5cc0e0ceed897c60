"""Retrain one layer of one run from its initialization on clean (group False) examples."""

from memloc.core.device import job_label, resolve_device
from memloc.core.provenance import start_job_log
from memloc.layers.jobs import retrain_run_layer

start_job_log(snakemake.log[0])
# a GPU job that sees no GPU stops here, before loading data, naming the job
device = resolve_device(snakemake.params.device, job_label(snakemake.rule, snakemake.wildcards.items()))

retrain_run_layer(
    snakemake.input.data,
    snakemake.input.checkpoints,
    snakemake.output[0],
    dataset=snakemake.wildcards.dataset,
    source=snakemake.params.source,
    test_subset=snakemake.params.test_subset,
    layer=snakemake.wildcards.layer,
    settings=snakemake.params.settings,
    device=str(device),
    threads=snakemake.threads,
    group_column=snakemake.params.group_column,
    recalibrate_bn=snakemake.params.recalibrate_bn,
)
