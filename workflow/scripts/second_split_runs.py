"""Second-split forgetting times of several seeds of one setting, one after another."""

from memloc.core.data.inputs import RunInputs
from memloc.core.job import start
from memloc.flipping.jobs import second_split_runs

# append: a resumed job keeps its log
device = start(snakemake.log[0], snakemake.params.compute, snakemake.threads, append=True)

second_split_runs(
    RunInputs(snakemake.input.data, **snakemake.params.inputs),
    list(zip(snakemake.output, snakemake.params.first)),
    model=snakemake.params.model,
    second=snakemake.params.second,
    split=snakemake.params.split,
    device=device,
)
