"""Fetch (or find, or export) and check one dataset; write its info JSON (classes, size,
split sizes, normalization statistics)."""

import sys

from memloc.core.datasets import fetch_dataset

sys.stderr = open(snakemake.log[0], "w")

fetch_dataset(snakemake.output[0], name=snakemake.wildcards.dataset, source=snakemake.params.source)
