"""results/tables/cscore_holdout.{parquet,csv,md}: the precision of the hold-out C-scores."""

from memloc.atypical.jobs import write_holdout_report
from memloc.core.job import start

start(snakemake.log[0])

write_holdout_report(
    snakemake.params.datasets,
    holdout=snakemake.params.holdout,
    threshold=snakemake.params.threshold,
    out=snakemake.output.parquet,
    csv=snakemake.output.csv,
    md=snakemake.output.md,
)
