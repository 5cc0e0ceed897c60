"""Write the typical/atypical data table from published C-scores or hold-out parts."""

from memloc.atypical.jobs import write_atypical_table
from memloc.core.job import start

start(snakemake.log[0])

write_atypical_table(
    snakemake.input.base,
    snakemake.output[0],
    threshold=snakemake.params.threshold,
    holdout_parts=list(snakemake.input.holdout),
    published=snakemake.params.published,
)
