"""Pick the examples to flip (N clean + N noisy, seeded) and deal them to shards."""

import sys

from memloc.flipping.jobs import write_selection

sys.stderr = open(snakemake.log[0], "w")

write_selection(
    snakemake.input[0],
    snakemake.output[0],
    per_group=snakemake.params.per_group,
    seed=snakemake.params.seed,
    shards=snakemake.params.shards,
)
