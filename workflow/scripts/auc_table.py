"""results/tables/auc.{csv,md} from auc.parquet."""

import sys

from memloc.flipping.jobs import render_auc

sys.stderr = open(snakemake.log[0], "w")

render_auc(snakemake.input[0], snakemake.output.csv, snakemake.output.md)
