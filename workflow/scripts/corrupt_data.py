"""Write the corrupted training set (index, source_index, true_label, label, is_noisy)."""

import sys

from memloc.runs.jobs import write_corrupted_dataset

sys.stderr = open(snakemake.log[0], "w")

write_corrupted_dataset(
    snakemake.output[0],
    dataset=snakemake.wildcards.dataset,
    source=snakemake.params.source,
    noise=float(snakemake.wildcards.noise),
    subset=snakemake.params.subset,
    seed=snakemake.params.seed,
)
