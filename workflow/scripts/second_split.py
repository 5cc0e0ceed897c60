"""Second-split forgetting time of one run's seed: train on split A, fine-tune on split B."""

from memloc.core.data.inputs import RunInputs
from memloc.core.job import start
from memloc.flipping.jobs import second_split_forgetting

# append: a resumed job keeps its log
device = start(snakemake.log[0], snakemake.params.compute, snakemake.threads, append=True)

second_split_forgetting(
    RunInputs(snakemake.input.data, **snakemake.params.inputs),
    snakemake.output[0],
    model=snakemake.params.model,
    first=snakemake.params.first,
    second=snakemake.params.second,
    split=snakemake.params.split,
    device=device,
)
