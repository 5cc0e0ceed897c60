"""The localization benchmark on one shard of its examples, one track's run."""

from memloc.core.data.inputs import RunInputs
from memloc.core.job import start
from memloc.localize.jobs import localize_shard

device = start(snakemake.log[0], snakemake.params.compute, snakemake.threads)

localize_shard(
    RunInputs(snakemake.input.data, **snakemake.params.inputs),
    snakemake.input.checkpoints,
    shard=int(snakemake.wildcards.shard),
    out=snakemake.output[0],
    settings=snakemake.params.settings,
    device=device,
)
