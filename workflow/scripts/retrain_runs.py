"""Retrain the layers of several runs of one setting, one after another: each run's table,
as one retrain_layer job per run writes it."""

from memloc.core.data.inputs import RunInputs
from memloc.core.job import start
from memloc.layers.jobs import retrain_runs

device = start(snakemake.log[0], snakemake.params.compute, snakemake.threads, append=True)

retrain_runs(
    RunInputs(snakemake.input.data, **snakemake.params.inputs),
    list(zip(snakemake.input.checkpoints, snakemake.output, snakemake.params.settings)),
    layers=snakemake.params.layers,
    recalibrate_bn=snakemake.params.recalibrate_bn,
    device=device,
)
