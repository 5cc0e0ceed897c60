"""Neuron flipping of one shard of the selected examples on one trained run."""

from memloc.core.data.inputs import RunInputs
from memloc.core.job import start
from memloc.flipping.jobs import flip_shard

device = start(snakemake.log[0], snakemake.params.compute, snakemake.threads)

flip_shard(
    RunInputs(snakemake.input.data, **snakemake.params.inputs),
    snakemake.input.checkpoints,
    snakemake.input.selection,
    shard=int(snakemake.wildcards.shard),
    out=snakemake.output[0],
    settings=snakemake.params.settings,
    device=device,
)
