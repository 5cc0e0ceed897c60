"""The example-tied dropout study's rows of the paper-vs-ours table."""

import sys

from memloc.dropout.jobs import paper_rows

sys.stderr = open(snakemake.log[0], "w")

paper_rows(dict(snakemake.input), snakemake.output[0], snakemake.params.settings)
