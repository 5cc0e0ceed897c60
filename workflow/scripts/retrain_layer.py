"""Retrain each retrained layer of one run from its initialization on clean (group False)
examples, one after another in this process (resuming at the first unfinished layer)."""

from memloc.core.data.inputs import RunInputs
from memloc.core.job import start
from memloc.layers.jobs import retrain_run

device = start(snakemake.log[0], snakemake.params.compute, snakemake.threads)

retrain_run(
    RunInputs(snakemake.input.data, **snakemake.params.inputs),
    snakemake.input.checkpoints,
    snakemake.output[0],
    layers=snakemake.params.layers,
    settings=snakemake.params.settings,
    recalibrate_bn=snakemake.params.recalibrate_bn,
    device=device,
)
