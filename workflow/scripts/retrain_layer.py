"""Retrain one layer of one run from its initialization on clean (group False) examples."""

from memloc.core.data.inputs import RunInputs
from memloc.core.job import start
from memloc.layers.jobs import retrain_run_layer

device = start(snakemake.log[0], snakemake.params.compute, snakemake.threads)

retrain_run_layer(
    RunInputs(snakemake.input.data, **snakemake.params.inputs),
    snakemake.input.checkpoints,
    snakemake.output[0],
    layer=snakemake.wildcards.layer,
    settings=snakemake.params.settings,
    recalibrate_bn=snakemake.params.recalibrate_bn,
    device=device,
)
