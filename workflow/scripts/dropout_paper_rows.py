"""The example-tied dropout study's rows of the paper-vs-ours table."""

from memloc.core.job import start
from memloc.report.paper_vs_ours import write_dropout_rows

start(snakemake.log[0])

write_dropout_rows(dict(snakemake.input), snakemake.output[0], snakemake.params.settings)
