"""results/tables/cscore_holdout.{parquet,csv,md}: the precision of the hold-out C-scores."""

import sys

from memloc.atypical.jobs import write_holdout_report

sys.stderr = open(snakemake.log[0], "w")

write_holdout_report(
    snakemake.params.datasets,
    holdout=snakemake.params.holdout,
    threshold=snakemake.params.threshold,
    out=snakemake.output.parquet,
    csv=snakemake.output.csv,
    md=snakemake.output.md,
)
