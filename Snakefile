# memloc: regenerates the experiments, figures and tables of "Can Neural Network
# Memorization Be Localized?" (Maini et al., ICML 2023).  See README.md.

from snakemake.utils import min_version, validate

min_version("8.20")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")

from memloc.config import check_config

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


rule all:
    input:
        all_outputs(),
    default_target: True
