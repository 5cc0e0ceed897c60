"""results/tables/claims.{parquet,csv,md}: each claim of the paper, its criterion, our value."""

from memloc.core.job import start
from memloc.report.claims import write_claims

start(snakemake.log[0])

write_claims(dict(snakemake.input), snakemake.params.setting, dict(snakemake.output))
