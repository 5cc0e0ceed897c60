"""Write the typical/atypical data table from published C-scores or hold-out parts."""

import sys

from memloc.atypical.jobs import write_atypical_table

sys.stderr = open(snakemake.log[0], "w")

write_atypical_table(
    snakemake.input.base,
    snakemake.output[0],
    threshold=snakemake.params.threshold,
    holdout_parts=list(snakemake.input.holdout),
    published=snakemake.params.published,
)
