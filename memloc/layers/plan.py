"""Which runs are rewound and retrained, the tables behind fig03/04/09/15-19 and their
selections, and the retraining settings.  Only the workflow's .smk files call this module."""

from __future__ import annotations

from typing import NamedTuple

from memloc.atypical.plan import atypical_runs
from memloc.core.paths import figure_files, run_dir, table
from memloc.runs.plan import appendix_datasets, run_grid, unique_runs

REWINDING_FIGURES = ("fig15", "fig16", "fig17")  # fig03 per model x noise rate, one per dataset


class LayerTables(NamedTuple):
    """The files behind results/tables/{table}.parquet and the run of each (one per file)."""

    files: list[str]
    runs: list[dict]


class LayerFigure(NamedTuple):
    """How a layer figure is drawn: its memloc.report.figures function, the table it reads
    (results/tables/{table}.parquet) and the selection passed to the function."""

    figure: str
    table: str
    selection: dict


def layer_seeds(config: dict, experiment: str) -> list[int]:
    """Seeds of the rewinding / retraining runs (null = `seeds`: memloc.config.resolve_config)."""
    return config[experiment]["seeds"]


def fig04_datasets(config: dict) -> list[str]:
    """fig04 (the paper's CIFAR-10 and MNIST): the primary dataset, and MNIST if configured."""
    primary = config["primary"]["dataset"]
    return [primary] + (["mnist"] if "mnist" in config["datasets"] and primary != "mnist" else [])


def rewinding_runs(config: dict) -> list[dict]:
    """Every run whose layers are rewound: fig03's (every model, the primary dataset and
    noise rate) and fig15-17's (every model x noise rate on their dataset)."""
    p, seeds = config["primary"], layer_seeds(config, "rewinding")
    runs = run_grid([p["dataset"]], config["models"], [p["noise"]], seeds)
    for dataset in appendix_datasets(config, REWINDING_FIGURES).values():
        runs += run_grid([dataset], config["models"], config["noise_rates"], seeds)
    return unique_runs(runs)


def retraining_runs(config: dict) -> list[dict]:
    """Every run whose layers are retrained, all of the primary model (the paper's ResNet-9):
    fig04's (primary noise rate) and fig18's (every dataset x noise rate)."""
    p, seeds = config["primary"], layer_seeds(config, "retraining")
    runs = run_grid(fig04_datasets(config), [p["model"]], [p["noise"]], seeds)
    runs += run_grid(config["datasets"], [p["model"]], config["noise_rates"], seeds)
    return unique_runs(runs)


def table_runs(config: dict, table: str) -> list[dict]:
    """The runs of a layer table (table: [atypical_]rewinding / [atypical_]retraining): the
    label-noise runs of the experiment, or the typical/atypical runs on its seeds."""
    experiment = table.removeprefix("atypical_")
    if table.startswith("atypical_"):
        return atypical_runs(config, layer_seeds(config, experiment))
    return rewinding_runs(config) if experiment == "rewinding" else retraining_runs(config)


def layer_tables(config: dict, table: str) -> LayerTables:
    """The files behind results/tables/{table}.parquet (table: [atypical_]rewinding /
    [atypical_]retraining) and the run of each: a run's rewinding table, or its retraining
    table (every retrained layer, in model order)."""
    runs = table_runs(config, table)
    return LayerTables([f"{run_dir(**r)}/{table.removeprefix('atypical_')}.parquet" for r in runs], runs)


def layer_figure(config: dict, fig: str) -> LayerFigure:
    """How fig03, fig04, fig09 and fig15-19 are drawn (fig09 / fig19: the typical/atypical
    runs, in fig03's / fig04's form)."""
    p, noise_rates = config["primary"], config["noise_rates"]
    rewound = dict(models=config["models"], seeds=layer_seeds(config, "rewinding"))
    retrained = dict(model=p["model"], seeds=layer_seeds(config, "retraining"))
    if fig in REWINDING_FIGURES:
        dataset = appendix_datasets(config, REWINDING_FIGURES)[fig]
        return LayerFigure("rewinding_grid", "rewinding", dict(dataset=dataset, noise_rates=noise_rates, **rewound))
    if fig == "fig03":
        return LayerFigure("fig03", "rewinding", dict(dataset=p["dataset"], noise=p["noise"], **rewound))
    atypical = config["atypical"]["datasets"]
    if fig == "fig09":  # fig03's form for typical vs atypical, the primary model, no noise
        selection = dict(rewound, dataset=atypical[0], models=[p["model"]], noise=0.0)
        return LayerFigure("fig03", "atypical_rewinding", selection)
    if fig == "fig19":
        return LayerFigure("retraining", "atypical_retraining", dict(datasets=atypical, noise_rates=[0.0], **retrained))
    datasets = fig04_datasets(config) if fig == "fig04" else config["datasets"]
    noises = [p["noise"]] if fig == "fig04" else noise_rates  # fig18: every noise rate
    return LayerFigure("retraining", "retraining", dict(datasets=datasets, noise_rates=noises, **retrained))


def retraining_settings(config: dict, seed: int | str) -> dict:
    """memloc.core.train.config.TrainConfig fields of a retraining job but the groups' names
    (the job takes the retrained run's): the schedule from `retraining`; momentum, weight decay
    and the eval batch size from `train`; no gradient accounting."""
    schedule = {k: config["retraining"][k] for k in ("epochs", "peak_epoch", "peak_lr", "batch_size")}
    return {**config["train"], **schedule, "seed": int(seed), "gradient_accounting": False}


_LAYER_NAMES: dict[str, list[str]] = {}  # repr of a planning ModelConfig -> its layer names


def retrained_layers(config: dict, model: str, dataset: str | None = None) -> list[str]:
    """The layers of `model` that are retrained (retraining.layers; null: all), in model order."""
    names, chosen = layer_names(config, model, dataset), config["retraining"].get("layers")
    if chosen is None:
        return names
    if unknown := [name for name in chosen if name not in names]:
        raise ValueError(f"retraining.layers: {unknown} are not layers of {model} (its layers: {names})")
    return [name for name in names if name in chosen]


def layer_names(config: dict, model: str, dataset: str | None = None) -> list[str]:
    """Names of the model's layers (memloc.core.models.layer_rule.model_layers) on `dataset` (None:
    primary.dataset), built-in or declared (model_definitions), from a model built on the
    meta device: nothing is allocated, so the DAG can be planned quickly (once per config)."""
    from memloc.core.models.build import meta_model
    from memloc.core.models.config import planning_config
    from memloc.core.models.layer_rule import model_layers

    cfg = planning_config(config, model, dataset)
    if repr(cfg) not in _LAYER_NAMES:
        _LAYER_NAMES[repr(cfg)] = [layer.name for layer in model_layers(meta_model(cfg))]
    return list(_LAYER_NAMES[repr(cfg)])


def targets(config: dict) -> list[str]:
    """What the layer experiments' part of rule `all` makes: fig03, fig04, the rewinding grids,
    fig18 (and the typical/atypical fig09, fig19 where configured) and the collected
    rewinding and retraining tables."""
    figures = ["fig03", "fig04", *appendix_datasets(config, REWINDING_FIGURES), "fig18"]
    figures += ["fig09", "fig19"] if config["atypical"]["datasets"] else []
    return figure_files(figures) + [table("rewinding"), table("retraining")]
