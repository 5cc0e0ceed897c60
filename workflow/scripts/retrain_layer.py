"""Retrain one layer of one run from its initialization on clean (group False) examples."""

import sys

from memloc.core.device import job_label, resolve_device
from memloc.layers.jobs import retrain_run_layer

sys.stderr = open(snakemake.log[0], "w")
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
