"""The atlas table: one row per training example, joined from the DAG's per-example files."""

from memloc.atlas.jobs import write_atlas_table
from memloc.core.job import start

start(snakemake.log[0])

write_atlas_table(dict(snakemake.input.items()), snakemake.output[0])
