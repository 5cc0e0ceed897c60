"""Join every stage's paper-vs-ours rows into results/tables/paper_vs_ours.{parquet,csv,md}."""

from memloc.core.job import start
from memloc.report.paper_vs_ours import join_rows

start(snakemake.log[0])

join_rows(list(snakemake.input), snakemake.output.parquet, snakemake.output.csv, snakemake.output.md)
