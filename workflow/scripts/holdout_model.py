"""Train one subset model of the hold-out C-score estimate; write its per-example correctness."""

import sys

from memloc.atypical.jobs import train_holdout_model

sys.stderr = open(snakemake.log[0], "a")  # append: a resumed job keeps its log

train_holdout_model(
    snakemake.input.data,
    snakemake.output[0],
    dataset=snakemake.wildcards.dataset,
    source=snakemake.params.source,
    model=snakemake.params.model,
    train_settings=snakemake.params.train,
    model_index=int(snakemake.wildcards.k),
    holdout=snakemake.params.holdout,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
