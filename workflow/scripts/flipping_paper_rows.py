"""fig05's and the auc table's rows of the paper-vs-ours table."""

from memloc.core.job import start
from memloc.report.paper_vs_ours import write_flipping_rows

start(snakemake.log[0])

write_flipping_rows(snakemake.input.flipping, snakemake.input.auc, snakemake.output[0], snakemake.params.setting)
