"""Per-example mislabeled-example scores of every method and their ROC AUCs."""

from memloc.core.job import start
from memloc.flipping.jobs import write_auc

start(snakemake.log[0])

# params.runs: {seed: {examples, second_split}}, the same files as input.runs
write_auc(snakemake.input.flipping, snakemake.params.runs, snakemake.input.data, dict(snakemake.output))
