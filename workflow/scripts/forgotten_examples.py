"""fig07's table: clean training examples forgotten after dropping, with their pixels."""

import sys

from memloc.dropout.jobs import forgotten_examples

sys.stderr = open(snakemake.log[0], "w")

forgotten_examples(
    snakemake.input.examples,
    snakemake.input.data,
    snakemake.output[0],
    dataset=snakemake.params.dataset,
    source=snakemake.params.source,
    max_images=snakemake.params.max_images,
)
