"""Several runs of one setting in one job: the runs_per_job key.

A GPU job pays its process's start-up (python, torch, CUDA, the data) once, about a minute
on a GPU node (bench/gpu_hours.py).  At the paper's scale a ResNet-9 run trains in ~4
minutes, so one process per run spends a fifth of its time starting.  `runs_per_job` packs
runs of one setting (dataset, model, data variant) into one job that trains (rewinds,
retrains, second-splits) them one after another, each resuming from its own checkpoints or
finished layers as the one-run job does; the per-run files and paths are the same.

Snakemake derives a job's outputs from its wildcards, so a job writing seeds 0, 1, 2 needs
a rule whose outputs name those seeds: one rule per rule and tuple of seeds
(`train_seeds_0_1_2`), its {dataset} wildcard constrained to the settings batched with
those seeds (a regex lookahead on the model and variant that follow), and ranked before the
one-run rule.  Runs not in a batch keep the one-run rule; with runs_per_job: 1 (the
default) there are no batch rules and the DAG is the one-run DAG.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from memloc.atlas.plan import atlas_run
from memloc.atypical.plan import atypical_runs
from memloc.core.paths import noise_label
from memloc.flipping.plan import flip_runs
from memloc.layers.plan import table_runs
from memloc.plan import resources
from memloc.runs.plan import gradient_runs, unique_runs

# The rules that may run several runs of a setting in one job (resumable per epoch / layer).
BATCHED_RULES = ("train", "rewind_layers", "retrain_layer", "second_split")
# runs_per_job: null packs a setting's runs into jobs of at least this much estimated work,
# so that a job's ~1 minute of start-up is at most ~5% of it.
GROUP_MINUTES = 20
SEP = "_seeds_"


class BatchRule(NamedTuple):
    """One batch rule: its name, the one-run rule it batches, its seeds (in this order) and
    the settings ({dataset, model, variant} or, for second_split, {dataset, model, noise})
    whose runs of these seeds it makes."""

    name: str
    rule: str
    seeds: tuple[int, ...]
    settings: list[dict]

    def dataset_constraint(self) -> str:
        """The {dataset} wildcard's regex: a setting's dataset, followed by its model and variant."""
        key = "noise" if self.rule == "second_split" else "variant"
        prefix = "noise" if key == "noise" else ""
        alternatives = [f"{re.escape(s['dataset'])}(?=/{re.escape(s['model'])}/{re.escape(prefix + s[key])}/)"
                        for s in self.settings]
        return f"(?:{'|'.join(alternatives)})"


def _setting(rule: str, run: dict) -> tuple:
    noise = noise_label(run["noise"])
    if rule == "second_split":
        return (("dataset", run["dataset"]), ("model", run["model"]), ("noise", noise))
    return (("dataset", run["dataset"]), ("model", run["model"]), ("variant", run.get("variant") or f"noise{noise}"))


def planned_runs(config: dict, rule: str) -> list[dict]:
    """The runs a rule's jobs are planned for (those the targets need): a run missing here
    is made by the one-run rule, never trained without need."""
    if rule == "second_split":
        return flip_runs(config)
    experiment = {"rewind_layers": "rewinding", "retrain_layer": "retraining"}.get(rule)
    if experiment:
        atypical = table_runs(config, f"atypical_{experiment}") if config["atypical"]["datasets"] else []
        return table_runs(config, experiment) + atypical
    runs = gradient_runs(config) + flip_runs(config) + [atlas_run(config)]
    for experiment in ("rewinding", "retraining"):
        runs += table_runs(config, experiment)
    if config["atypical"]["datasets"]:
        runs += atypical_runs(config) + table_runs(config, "atypical_rewinding")
        runs += table_runs(config, "atypical_retraining")
    return unique_runs([{k: r.get(k) for k in ("dataset", "model", "noise", "seed", "variant")} for r in runs])


def _chunks(seeds: list[int], per_job: int | None, work: float) -> list[list[int]]:
    """A setting's seeds in jobs: of per_job each, or (None) as many balanced jobs as give
    each at least GROUP_MINUTES of work (a run of that much or more alone)."""
    if per_job is None:
        jobs = len(seeds) if work >= GROUP_MINUTES else max(1, math.floor(len(seeds) * work / GROUP_MINUTES))
    else:
        jobs = math.ceil(len(seeds) / per_job)
    size, extra = divmod(len(seeds), jobs)
    bounds = [0]
    for k in range(jobs):
        bounds.append(bounds[-1] + size + (k < extra))
    return [seeds[a:b] for a, b in zip(bounds, bounds[1:])]


def batch_rules(config: dict, rule: str) -> list[BatchRule]:
    """The batch rules of `rule` (none with runs_per_job: 1), by tuple of seeds."""
    per_job = config["runs_per_job"]
    if per_job == 1:
        return []
    settings: dict[tuple, list[int]] = {}
    for run in planned_runs(config, rule):
        seeds = settings.setdefault(_setting(rule, run), [])
        if run["seed"] not in seeds:
            seeds.append(int(run["seed"]))
    by_seeds: dict[tuple, list[dict]] = {}
    for setting, seeds in settings.items():
        work = resources.work_minutes(rule, config, dict(setting)) if per_job is None else 0.0
        for chunk in _chunks(seeds, per_job, work):
            if len(chunk) > 1:
                by_seeds.setdefault(tuple(chunk), []).append(dict(setting))
    return [BatchRule(f"{rule}{SEP}{'_'.join(map(str, seeds))}", rule, seeds, s) for seeds, s in by_seeds.items()]


def run_rule(name: str) -> tuple[str, int]:
    """(the one-run rule, the runs of a job) of a rule name: train_seeds_0_1_2 -> (train, 3)."""
    rule, _, seeds = name.partition(SEP)
    return rule, len(seeds.split("_")) if seeds else 1
