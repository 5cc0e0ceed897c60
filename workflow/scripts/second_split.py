"""Second-split forgetting time of one run's seed: train on split A, fine-tune on split B."""

from memloc.core.device import job_label, resolve_device
from memloc.core.provenance import start_job_log
from memloc.flipping.jobs import second_split_forgetting

start_job_log(snakemake.log[0], append=True)  # append: a resumed job keeps its log
# a GPU job that sees no GPU stops here, before loading data, naming the job
device = resolve_device(snakemake.params.device, job_label(snakemake.rule, snakemake.wildcards.items()))

second_split_forgetting(
    snakemake.input[0],
    snakemake.output[0],
    dataset=snakemake.wildcards.dataset,
    source=snakemake.params.source,
    model={"name": snakemake.wildcards.model, **snakemake.params.model},
    first=snakemake.params.first,
    second=snakemake.params.second,
    fraction=snakemake.params.fraction,
    split_seed=snakemake.params.split_seed,
    device=str(device),
    threads=snakemake.threads,
)
