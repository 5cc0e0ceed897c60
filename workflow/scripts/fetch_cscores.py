"""Download a published C-score file and check it (checksums, structure), atomically."""

from memloc.atypical.jobs import fetch_published_cscores
from memloc.core.job import start

start(snakemake.log[0])

download = snakemake.params.download
fetch_published_cscores(
    download["url"],
    snakemake.output[0],
    dataset=snakemake.wildcards.dataset,
    sha256=download["sha256"],
    md5=download["md5"],
)
