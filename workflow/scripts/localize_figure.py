"""The benchmark's figure: efficacy against specificity, precision against chance."""

from memloc.core.job import start
from memloc.localize.jobs import draw_figure

start(snakemake.log[0])

draw_figure(snakemake.input[0], list(snakemake.output))
