"""fig05's and the auc table's rows of the paper-vs-ours table."""

import sys

from memloc.flipping.jobs import paper_rows

sys.stderr = open(snakemake.log[0], "w")

paper_rows(snakemake.input.flipping, snakemake.input.auc, snakemake.output[0], snakemake.params.setting)
