"""results/tables/provenance.{parquet,csv,md}: what produced the results (every training run's
provenance.json and this job's own environment)."""

from memloc.core.job import start
from memloc.report.provenance import write_provenance_table

start(snakemake.log[0])

write_provenance_table(snakemake.params.records, dict(snakemake.output))
