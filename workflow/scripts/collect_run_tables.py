"""Concatenate one table of many runs, with dataset/model/noise/seed columns."""

from memloc.core.files import collect_runs
from memloc.core.provenance import start_job_log

start_job_log(snakemake.log[0])

collect_runs(list(snakemake.input), snakemake.params.runs, snakemake.output[0])
