"""results/tables/auc.{csv,md} from auc.parquet."""

from memloc.core.provenance import start_job_log
from memloc.flipping.jobs import render_auc

start_job_log(snakemake.log[0])

render_auc(snakemake.input[0], snakemake.output.csv, snakemake.output.md)
