"""Concatenate one table of many runs, with dataset/model/noise/seed columns."""

import sys

from memloc.report.tables import collect_runs

sys.stderr = open(snakemake.log[0], "w")

collect_runs(list(snakemake.input), snakemake.params.runs, snakemake.output[0])
