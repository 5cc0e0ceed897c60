"""Fetch (or find, or export) and check one dataset; write its info JSON (classes, size,
split sizes, normalization statistics) and both splits as arrays for the later jobs."""

from memloc.core.data.fetch import fetch_dataset
from memloc.core.job import start

start(snakemake.log[0])

fetch_dataset(
    snakemake.output.info,
    name=snakemake.wildcards.dataset,
    source=snakemake.params.source,
    splits_out=snakemake.output.splits,
)
