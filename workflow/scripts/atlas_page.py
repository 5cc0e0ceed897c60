"""The atlas page: index.html, the images and the per-epoch details, from atlas.parquet."""

from memloc.atlas.jobs import write_atlas_page
from memloc.core.data.inputs import RunInputs
from memloc.core.job import start

start(snakemake.log[0])

write_atlas_page(
    snakemake.input.atlas,
    snakemake.input.examples,
    RunInputs(snakemake.input.data, **snakemake.params.inputs),
    snakemake.input.fetched,
    snakemake.output[0],
    title=snakemake.params.title,
)
