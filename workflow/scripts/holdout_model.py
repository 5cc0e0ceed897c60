"""Train one subset model of the hold-out C-score estimate; write its per-example correctness."""

from memloc.atypical.jobs import train_holdout_model
from memloc.core.data.inputs import RunInputs
from memloc.core.job import start

# append: a resumed job keeps its log
device = start(snakemake.log[0], snakemake.params.compute, snakemake.threads, append=True)

train_holdout_model(
    RunInputs(snakemake.input.data, **snakemake.params.inputs),
    snakemake.output[0],
    model=snakemake.params.model,
    settings=snakemake.params.train,
    holdout=snakemake.params.holdout,
    model_index=int(snakemake.wildcards.k),
    device=device,
)
