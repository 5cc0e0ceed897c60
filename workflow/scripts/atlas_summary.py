"""The atlas's tables in the report: Data Map groups and the layers of single-removal flips."""

from memloc.atlas.jobs import write_atlas_summaries
from memloc.core.job import start

start(snakemake.log[0])

write_atlas_summaries(snakemake.input.atlas, dict(snakemake.output))
