"""fig05's and the auc table's rows of the paper-vs-ours table."""

import sys

from memloc.report.paper_vs_ours import write_flipping_rows

sys.stderr = open(snakemake.log[0], "w")

write_flipping_rows(snakemake.input.flipping, snakemake.input.auc, snakemake.output[0], snakemake.params.setting)
