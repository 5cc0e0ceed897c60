"""Draw one figure from its parquet table: memloc.report.figures.<params.figure>."""

import sys

from memloc.report import figures

sys.stderr = open(snakemake.log[0], "w")

draw = getattr(figures, snakemake.params.figure)
draw(snakemake.input[0], list(snakemake.output), **snakemake.params.selection)
