"""Train one subset model of the hold-out C-score estimate; write its per-example correctness."""

from memloc.atypical.jobs import train_holdout_model
from memloc.core.device import job_label, resolve_device
from memloc.core.provenance import start_job_log

start_job_log(snakemake.log[0], append=True)  # append: a resumed job keeps its log
# a GPU job that sees no GPU stops here, before loading data, naming the job
device = resolve_device(snakemake.params.device, job_label(snakemake.rule, snakemake.wildcards.items()))

train_holdout_model(
    snakemake.input.data,
    snakemake.output[0],
    dataset=snakemake.wildcards.dataset,
    source=snakemake.params.source,
    model=snakemake.params.model,
    train_settings=snakemake.params.train,
    model_index=int(snakemake.wildcards.k),
    holdout=snakemake.params.holdout,
    device=str(device),
    threads=snakemake.threads,
)
