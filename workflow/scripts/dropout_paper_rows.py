"""The example-tied dropout study's rows of the paper-vs-ours table."""

from memloc.core.provenance import start_job_log
from memloc.dropout.jobs import paper_rows

start_job_log(snakemake.log[0])

paper_rows(dict(snakemake.input), snakemake.output[0], snakemake.params.settings)
