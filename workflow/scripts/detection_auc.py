"""Per-example mislabeled-example scores of every method and their ROC AUCs."""

import sys

from memloc.flipping.jobs import write_auc

sys.stderr = open(snakemake.log[0], "w")

# params.runs: {seed: {examples, second_split}}, the same files as input.runs
write_auc(snakemake.input.flipping, snakemake.params.runs, snakemake.input.data, dict(snakemake.output))
