"""Draw one figure from its parquet table: memloc.report.figures.<params.figure>."""

from memloc.core.job import start
from memloc.report import figures

start(snakemake.log[0])

draw = getattr(figures, snakemake.params.figure)
draw(snakemake.input[0], list(snakemake.output), **snakemake.params.selection)
