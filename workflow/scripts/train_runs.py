"""Train several runs of one setting one after another (each resuming from its checkpoints)
and write each run's tables: what one train job per run writes."""

from memloc.core.data.inputs import RunInputs
from memloc.core.job import start
from memloc.runs.jobs import train_runs

# append: a resumed job keeps its log
device = start(snakemake.log[0], snakemake.params.compute, snakemake.threads, append=True)
inputs = RunInputs(snakemake.input.data, **snakemake.params.inputs)
output = dict(snakemake.output)
outputs = [{name: output[f"{name}_seed{s}"] for name in snakemake.params.files}
           for s in snakemake.params.seeds]
train_runs(inputs, snakemake.params.model, list(zip(snakemake.params.train, outputs)), device)
