"""Draw one figure from its parquet table: memloc.report.figures.<params.figure>."""

from memloc.core.provenance import start_job_log
from memloc.report import figures

start_job_log(snakemake.log[0])

draw = getattr(figures, snakemake.params.figure)
draw(snakemake.input[0], list(snakemake.output), **snakemake.params.selection)
