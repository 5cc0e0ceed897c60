# memloc: regenerates the experiments, figures and tables of "Can Neural Network
# Memorization Be Localized?" (Maini et al., ICML 2023).  See README.md.

import os

from snakemake.utils import min_version, validate

min_version("8.20")


# config.yaml is the default: a --configfile on the command line replaces it (its files are
# merged in order; keys none of them sets take the schema's defaults), as memloc.config.load_config
# reads a preset.  --config KEY=VALUE alone updates config.yaml.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


# Every rule names environment.yml as its conda env (used with --sdm conda); the jobs
# import memloc from this checkout, in such an env too.
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")])
    )
)


validate(config, "workflow/schemas/config.schema.yaml")

# Every path template of memloc.core.paths under results_dir, before the rest of memloc is
# imported (modules keep the templates they import); the jobs inherit it.
from memloc.core import paths

paths.set_results_dir(config["results_dir"])

from memloc.config import resolve_config, resolve_factories
from memloc.config_checks import check_config

# nulls that stand for another key's value (e.g. dropout.epochs: null = train.epochs) are
# replaced here, once: planning code reads every key as it is
resolve_config(config)
# a model_definitions factory file: found in the working directory or next to a config file,
# then stored with its absolute path (jobs and checkpoints rebuild the model from it)
resolve_factories(config, workflow.configfiles)
check_config(config)

from memloc.core.data.catalog import dataset_names
from memloc.core.models.config import model_names

# A run's data variant (memloc.core.paths.RUN_DIR): label noise, or typical/atypical groups.
VARIANT = r"noise[0-9.]+|atypical"


# Wildcards that mean one thing in every rule; a rule's own constraint overrides these.
wildcard_constraints:
    dataset="|".join(dataset_names(config["dataset_definitions"])),  # built in and declared
    model="|".join(model_names(config)),  # built-in and model_definitions
    noise=r"[0-9.]+",  # a noise fraction as memloc.core.paths.noise_label writes it
    seed=r"\d+",
    variant=VARIANT,


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/gradients.smk"
include: "workflow/rules/layers.smk"
include: "workflow/rules/atypical.smk"
include: "workflow/rules/dropout.smk"
include: "workflow/rules/flipping.smk"
include: "workflow/rules/localize.smk"
include: "workflow/rules/paper_vs_ours.smk"
include: "workflow/rules/claims.smk"
include: "workflow/rules/provenance.smk"
include: "workflow/rules/atlas.smk"


# Jobs that run in the Snakemake process itself, never through a cluster's queue: the
# downloads (on a cluster, the login node has the internet; the compute nodes may not) and
# the quick table, figure and collect jobs (seconds of CPU each; an sbatch would wait longer).
localrules:
    fetch_dataset,
    fetch_cscores,
    collect_run_tables,
    collect_layer_tables,
    collect_atypical_tables,
    collect_dropout_metrics,
    merge_flipping,
    select_flip_examples,
    gradient_figure,
    layer_figure,
    fig05,
    fig07,
    fig07_table,
    fig08,
    dropout_table,
    dropout_paper_rows,
    cscore_holdout,
    detection_auc,
    auc_table,
    flipping_paper_rows,
    merge_localization,
    localization_table,
    localization_figure,
    paper_vs_ours,
    claims,
    provenance,
    atlas_table,
    atlas_page,
    atlas_summary,


rule all:
    default_target: True
    input:
        all_outputs(),
