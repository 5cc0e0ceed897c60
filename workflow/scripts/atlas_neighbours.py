"""The atlas's nearest neighbours of every training example in the final model's penultimate features."""

from memloc.atlas.jobs import write_neighbours
from memloc.core.data.inputs import RunInputs
from memloc.core.job import start

device = start(snakemake.log[0], snakemake.params.compute, snakemake.threads)

write_neighbours(
    RunInputs(snakemake.input.data, **snakemake.params.inputs),
    snakemake.input.checkpoints,
    snakemake.output[0],
    k=snakemake.params.k,
    device=device,
)
