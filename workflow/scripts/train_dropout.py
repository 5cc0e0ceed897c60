"""Train one run with example-tied dropout or a tab3 baseline (resuming from its checkpoints)
and write its tables."""

from memloc.core.data.inputs import RunInputs
from memloc.core.job import start
from memloc.dropout.jobs import train_run

# append: a resumed run keeps its log
device = start(snakemake.log[0], snakemake.params.compute, snakemake.threads, append=True)
inputs = RunInputs(snakemake.input.data, **snakemake.params.inputs)
train_run(inputs, snakemake.params.model, snakemake.params.train, dict(snakemake.output), device)
