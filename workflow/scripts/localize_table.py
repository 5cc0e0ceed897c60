"""localization.{csv,md}: the benchmark's summary, one row per method."""

from memloc.core.job import start
from memloc.localize.jobs import write_summary

start(snakemake.log[0])

write_summary(snakemake.input[0], snakemake.output.csv, snakemake.output.md)
