"""fig07's table: clean training examples forgotten after dropping, with their pixels."""

from memloc.core.job import start
from memloc.dropout.jobs import forgotten_examples

start(snakemake.log[0])

forgotten_examples(
    snakemake.input.examples,
    snakemake.input.data,
    snakemake.output[0],
    dataset=snakemake.params.dataset,
    source=snakemake.params.source,
    max_images=snakemake.params.max_images,
)
