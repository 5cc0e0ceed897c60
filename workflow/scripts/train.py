"""Train one run (resuming from its checkpoints) and write its tables."""

import sys

from memloc.runs.jobs import train_run

sys.stderr = open(snakemake.log[0], "a")  # append: a resumed run keeps its log

train_run(
    snakemake.input.data,
    outputs=dict(snakemake.output),
    dataset=snakemake.wildcards.dataset,
    source=snakemake.params.source,
    test_subset=snakemake.params.test_subset,
    model={"name": snakemake.wildcards.model, **snakemake.params.model},
    train_settings=snakemake.params.train,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
