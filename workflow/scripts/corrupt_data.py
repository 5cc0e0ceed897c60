"""Write the corrupted training set (index, source_index, true_label, label, is_noisy)."""

from memloc.core.job import start
from memloc.runs.jobs import write_corrupted_dataset

start(snakemake.log[0])

write_corrupted_dataset(
    snakemake.output[0],
    dataset=snakemake.wildcards.dataset,
    source=snakemake.params.source,
    noise=float(snakemake.wildcards.noise),
    subset=snakemake.params.subset,
    seed=snakemake.params.seed,
)
