"""Concatenate one table of many runs, with dataset/model/noise/seed columns."""

from memloc.core.files import collect_runs
from memloc.core.job import start

start(snakemake.log[0])

collect_runs(list(snakemake.input), snakemake.params.runs, snakemake.output[0])
