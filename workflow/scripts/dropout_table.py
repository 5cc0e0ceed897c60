"""tab1 / tab2 / tab3 of example-tied dropout from the study's metrics table."""

from memloc.core.job import start
from memloc.dropout.jobs import write_table

start(snakemake.log[0])

write_table(snakemake.wildcards.table, snakemake.input[0], dict(snakemake.output), snakemake.params.runs)
