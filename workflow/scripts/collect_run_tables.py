"""Concatenate one table of many runs, with dataset/model/noise/seed columns."""

from memloc.core.provenance import start_job_log
from memloc.report.tables import collect_runs

start_job_log(snakemake.log[0])

collect_runs(list(snakemake.input), snakemake.params.runs, snakemake.output[0])
