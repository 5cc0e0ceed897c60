"""Rewind every layer of several runs of one setting, one after another: each run's table,
as one rewind_layers job per run writes it."""

from memloc.core.data.inputs import RunInputs
from memloc.core.job import start
from memloc.layers.jobs import rewind_runs

device = start(snakemake.log[0], snakemake.params.compute, snakemake.threads, append=True)

rewind_runs(
    RunInputs(snakemake.input.data, **snakemake.params.inputs),
    list(zip(snakemake.input.checkpoints, snakemake.output)),
    epochs=snakemake.params.epochs,
    batch_size=snakemake.params.batch_size,
    device=device,
)
