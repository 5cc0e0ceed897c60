"""Pick the examples to flip (N clean + N noisy, seeded) and deal them to shards."""

from memloc.core.job import start
from memloc.flipping.jobs import write_selection

start(snakemake.log[0])

write_selection(
    snakemake.input[0],
    snakemake.output[0],
    per_group=snakemake.params.per_group,
    seed=snakemake.params.seed,
    shards=snakemake.params.shards,
)
