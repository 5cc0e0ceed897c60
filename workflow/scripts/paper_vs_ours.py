"""Join every stage's paper-vs-ours rows into results/tables/paper_vs_ours.{parquet,csv,md}."""

import sys

from memloc.report.paper_vs_ours import join_rows

sys.stderr = open(snakemake.log[0], "w")

join_rows(list(snakemake.input), snakemake.output.parquet, snakemake.output.csv, snakemake.output.md)
