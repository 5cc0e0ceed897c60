# memloc: regenerates the experiments, figures and tables of "Can Neural Network
# Memorization Be Localized?" (Maini et al., ICML 2023).  See README.md.

import os

from snakemake.utils import min_version, validate

min_version("8.20")


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

from memloc.config import resolve_config, resolve_factories
from memloc.config_checks import check_config

# nulls that stand for another key's value (e.g. dropout.epochs: null = train.epochs) are
# replaced here, once: planning code reads every key as it is
resolve_config(config)
# a model_definitions factory file: found in the working directory or next to a config file,
# then stored with its absolute path (jobs and checkpoints rebuild the model from it)
resolve_factories(config, workflow.configfiles)
check_config(config)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/gradients.smk"
include: "workflow/rules/layers.smk"
include: "workflow/rules/atypical.smk"
include: "workflow/rules/dropout.smk"
include: "workflow/rules/flipping.smk"
include: "workflow/rules/paper_vs_ours.smk"
include: "workflow/rules/claims.smk"
include: "workflow/rules/provenance.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
