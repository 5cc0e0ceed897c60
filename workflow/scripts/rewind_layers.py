"""Rewind every layer of one run to every rewind epoch; one parquet table of accuracies."""

from memloc.core.data.inputs import RunInputs
from memloc.core.job import start
from memloc.layers.jobs import rewind_run

device = start(snakemake.log[0], snakemake.params.compute, snakemake.threads)

rewind_run(
    RunInputs(snakemake.input.data, **snakemake.params.inputs),
    snakemake.input.checkpoints,
    snakemake.output[0],
    epochs=snakemake.params.epochs,
    batch_size=snakemake.params.batch_size,
    device=device,
)
