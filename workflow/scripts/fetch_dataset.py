"""Fetch (or find, or export) and check one dataset; write its info JSON (classes, size,
split sizes, normalization statistics) and both splits as arrays for the later jobs."""

import sys

from memloc.core.datasets import fetch_dataset

sys.stderr = open(snakemake.log[0], "w")

fetch_dataset(
    snakemake.output.info,
    name=snakemake.wildcards.dataset,
    source=snakemake.params.source,
    splits_out=snakemake.output.splits,
)
