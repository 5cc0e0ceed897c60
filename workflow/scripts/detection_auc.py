"""Per-example mislabeled-example scores of every method and their ROC AUCs."""

import sys

from memloc.flipping.detection import write_auc

sys.stderr = open(snakemake.log[0], "w")

runs = dict(zip(snakemake.params.seeds, zip(snakemake.input.examples, snakemake.input.second_split), strict=True))
write_auc(snakemake.input.flipping, runs, snakemake.input.data, dict(snakemake.output))
