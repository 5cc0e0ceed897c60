"""How a compute job computes: the rule parameter `compute` of every rule that trains or
evaluates networks (memloc.core.job.start reads it), so that Snakemake reruns the jobs a
change of device, precision, determinism or (for the jobs that train) compile affects."""

from __future__ import annotations

from memloc.core.device import job_label

# The rules whose jobs train a network from scratch through memloc.core.train.run (compile applies).
TRAINING_RULES = ("train", "train_dropout", "holdout_model", "second_split")


def compute_settings(config: dict, rule: str, wildcards: dict) -> dict:
    """{device, precision, compile, deterministic, job} of a job of `rule` with `wildcards`;
    compile is the config's for the training rules, false for the others (they do not train
    through it, and a change of it does not rerun them)."""
    return {"device": config["device"], "precision": config["precision"],
            "compile": config["compile"] and rule in TRAINING_RULES, "deterministic": config["deterministic"],
            "job": job_label(rule, wildcards.items())}
