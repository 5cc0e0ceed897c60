"""results/tables/claims.{parquet,csv,md}: each claim of the paper, its criterion, our value."""

import sys

from memloc.report.claims import write_claims

sys.stderr = open(snakemake.log[0], "w")

write_claims(dict(snakemake.input), snakemake.params.setting, dict(snakemake.output))
