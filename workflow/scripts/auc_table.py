"""results/tables/auc.{csv,md} from auc.parquet."""

from memloc.core.job import start
from memloc.flipping.jobs import render_auc

start(snakemake.log[0])

render_auc(snakemake.input[0], snakemake.output.csv, snakemake.output.md)
