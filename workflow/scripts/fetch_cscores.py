"""Download a published C-score file and check it (checksums, structure), atomically."""

import sys

from memloc.atypical.jobs import fetch_published_cscores

sys.stderr = open(snakemake.log[0], "w")

download = snakemake.params.download
fetch_published_cscores(
    download["url"],
    snakemake.output[0],
    dataset=snakemake.wildcards.dataset,
    sha256=download["sha256"],
    md5=download["md5"],
)
