"""tab1 / tab2 / tab3 of example-tied dropout from the study's metrics table."""

import sys

from memloc.dropout.jobs import write_table

sys.stderr = open(snakemake.log[0], "w")

write_table(snakemake.wildcards.table, snakemake.input[0], dict(snakemake.output), snakemake.params.runs)
