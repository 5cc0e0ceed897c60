"""fig07's table: clean training examples forgotten after dropping, with their pixels."""

from memloc.core.provenance import start_job_log
from memloc.dropout.jobs import forgotten_examples

start_job_log(snakemake.log[0])

forgotten_examples(
    snakemake.input.examples,
    snakemake.input.data,
    snakemake.output[0],
    dataset=snakemake.params.dataset,
    source=snakemake.params.source,
    max_images=snakemake.params.max_images,
)
