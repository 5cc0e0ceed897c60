# Input and parameter functions of the rules and the targets of rule all; what they return is
# planned in memloc.*.plan (which runs exist, their settings, figure selections) and
# memloc.plan (job sizes, how a job computes).

from memloc.core import paths
from memloc.atlas import plan as atlas_plan
from memloc.atypical import plan as atypical_plan
from memloc.dropout import plan as dropout_plan
from memloc.flipping import plan as flipping_plan
from memloc.layers import plan as layers_plan
from memloc.localize import plan as localize_plan
from memloc.report import plan as report_plan
from memloc.runs import plan as runs_plan
from memloc.plan import batches as batches_plan
from memloc.plan import resources as job_resources
from memloc.plan.compute import compute_settings


def job_runtime(rule_name, runs=1):
    """A job's wall-clock limit in minutes (memloc.plan.resources.minutes: from the model,
    dataset, epochs and example counts, x the runs of a batch job); a retried job gets more.
    """
    return lambda wildcards, attempt: job_resources.minutes(
        rule_name, config, {**dict(wildcards.items()), "runs": runs}, attempt
    )


def job_mem_mb(rule_name):
    """A job's memory in MB (memloc.plan.resources.mem_mb); a retried job gets more."""
    return lambda wildcards, attempt: job_resources.mem_mb(
        rule_name, config, dict(wildcards.items()), attempt
    )


def batch_compute(rule_name, seeds):
    """job_compute of a batch job of `rule_name` making the runs of `seeds`."""
    return lambda wildcards: compute_settings(
        config, rule_name, {**dict(wildcards.items()), "seeds": list(seeds)}
    )


def batch_wildcards(seeds):
    """The wildcards of each run of a batch job: its own, with each of `seeds`."""
    return lambda wildcards: [
        {**dict(wildcards.items()), "seed": str(s)} for s in seeds
    ]


def all_outputs():
    """Every figure (PNG + PDF), table (CSV + MD) and parquet table of the configured DAG: what
    each study's plan names (memloc.*.plan.targets)."""
    plans = (
        runs_plan,
        layers_plan,
        atypical_plan,
        dropout_plan,
        flipping_plan,
        localize_plan,
        report_plan,
        atlas_plan,
    )
    return [path for plan in plans for path in plan.targets(config)]


def data_source():
    """memloc.core.data.source.DataSource settings of the jobs that read a dataset (no download:
    rule fetch_dataset, their input, has fetched and checked it)."""
    return runs_plan.data_source(config)


def run_inputs(wildcards):
    """memloc.core.data.inputs.RunInputs fields (less the data table) of a job on a run's data:
    its data variant is {variant}, else noise{noise} (label noise; none: the noise-free table).
    """
    wc = dict(wildcards.items())
    variant = wc.get("variant") or f"noise{wc.get('noise', '0')}"
    return runs_plan.run_inputs(config, wc["dataset"], variant)


def model_settings(wildcards):
    """memloc.core.models.build.ModelConfig fields of the {model} (less the dataset's shape)."""
    return runs_plan.model_settings(config, wildcards.model)


def train_settings(wildcards):
    """memloc.core.train.config.TrainConfig fields of a run; the groups follow the data variant."""
    return runs_plan.train_settings(config, wildcards.variant, wildcards.seed)


def job_compute(rule_name):
    """How a compute job computes (memloc.plan.compute.compute_settings): its device,
    precision, determinism and (for the rules that train) compile, and its name in errors.
    """
    return lambda wildcards: compute_settings(
        config, rule_name, dict(wildcards.items())
    )


def gradient_figure(wildcards):
    """memloc.runs.plan.GradientFigure of {fig}: .figure, .selection."""
    return runs_plan.gradient_figure(config, wildcards.fig)


def gradient_run_files(wildcards):
    """{table}.parquet (gradients or metrics) of every run a gradient figure uses."""
    return runs_plan.gradient_run_files(config, wildcards.table)


def batch_outputs(run_dir, seeds, files):
    """{name}_seed{s}: {run_dir of seed s}/{file} of each file {name: file} and seed: the
    outputs of a batch job (memloc.plan.batches), the one-run jobs' files."""
    return {
        f"{name}_seed{s}": f"{run_dir.replace('{seed}', str(s))}/{file}"
        for s in seeds
        for name, file in files.items()
    }


def batch_train_settings(seeds):
    """TrainConfig fields of each run of a training batch job."""
    return lambda wildcards: [
        runs_plan.train_settings(config, wildcards.variant, s) for s in seeds
    ]


def batch_retraining_settings(seeds):
    """TrainConfig fields (less the groups' names) of each run of a retraining batch job."""
    return lambda wildcards: [layers_plan.retraining_settings(config, s) for s in seeds]


def batch_second_split_settings(seeds):
    """TrainConfig fields of the split-A training of each run of a second-split batch job."""
    return lambda wildcards: [
        flipping_plan.second_split_settings(config, s).first for s in seeds
    ]


def seed_paths(run_dir, seeds, file):
    """{run_dir of seed s}/{file} of each of `seeds` (a batch job's inputs or outputs)."""
    return [f"{run_dir.replace('{seed}', str(s))}/{file}" for s in seeds]


def slurm_gpu_site():
    """The GPU partition and model of workflow/profiles/slurm (its set-resources, keyed by rule
    name, from MEMLOC_SLURM_GPU_PARTITION / MEMLOC_SLURM_PARTITION / MEMLOC_SLURM_GPU_MODEL),
    for the generated runs_per_job rules, whose names the profile cannot list; unset: nothing
    (other executors ignore these resources)."""
    part = os.environ.get("MEMLOC_SLURM_GPU_PARTITION") or os.environ.get(
        "MEMLOC_SLURM_PARTITION"
    )
    model = os.environ.get("MEMLOC_SLURM_GPU_MODEL")
    return {
        **({"slurm_partition": part} if part else {}),
        **({"gpu_model": model} if model else {}),
    }
