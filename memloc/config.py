"""Checks of the workflow configuration that a JSON schema cannot express.

`snakemake.utils.validate` checks types, ranges and enums against
workflow/schemas/config.schema.yaml (and fills in defaults); `check_config` then checks
the relations between keys and that the data can be found, so a bad value stops the run
before any job starts, with a message that names the key.
"""

from __future__ import annotations

import os

from memloc.core.data import dataset_available


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key."""


def check_config(config: dict) -> None:
    train = config["train"]
    if train["peak_epoch"] >= train["epochs"]:
        raise ConfigError(
            f"train.peak_epoch ({train['peak_epoch']}) must come before the last epoch (train.epochs = {train['epochs']})"
        )
    start, end = config["figures"]["fig01"]["epochs"]
    if not start < end <= train["epochs"]:
        raise ConfigError(f"figures.fig01.epochs ({start}, {end}) must satisfy start < end <= train.epochs ({train['epochs']})")
    vit = config["model_settings"].get("vit_small", {})
    if vit and vit.get("dim", 512) % vit.get("heads", 8):
        raise ConfigError(f"model_settings.vit_small.heads ({vit['heads']}) must divide model_settings.vit_small.dim ({vit['dim']})")
    for name, published in config["atypical"]["cscore_files"].items():
        if name not in config["atypical"]["datasets"]:
            raise ConfigError(f"atypical.cscore_files.{name}: {name!r} is not in atypical.datasets")
        for key in ("file", "order"):
            path = published.get(key)
            if path and not os.path.isfile(path):
                raise ConfigError(f"atypical.cscore_files.{name}.{key}: file {path!r} does not exist")
        if published["file"].endswith(".npy") and not published.get("order"):
            raise ConfigError(
                f"atypical.cscore_files.{name}.order: {published['file']} is a bare score array (MNIST's is in "
                f"TFDS order); give an order file mapping its positions to the dataset's indices"
            )
    keys = (
        ("primary.dataset", [config["primary"]["dataset"]]),
        ("datasets", config["datasets"]),
        ("atypical.datasets", config["atypical"]["datasets"]),
    )
    for key, names in keys:
        for name in names:
            if not dataset_available(name, config["data_root"], config["download"]):
                raise ConfigError(
                    f"{key}: dataset {name!r} is not under data_root ({config['data_root']!r}) and download is false; "
                    f"set download: true, point data_root at a local copy, or remove it"
                    + (" (or: apt-get install dataset-fashion-mnist)" if name == "fashion_mnist" else "")
                )
    _check_dropout(config)
    _check_layer_experiments(config)
    _check_flipping(config)


def _check_flipping(config: dict) -> None:
    flip, train = config["flipping"], config["train"]
    if flip["shards"] > 2 * flip["examples_per_group"]:
        raise ConfigError(
            f"flipping.shards ({flip['shards']}) exceeds the {2 * flip['examples_per_group']} selected examples "
            f"(2 x flipping.examples_per_group): some shards would be empty"
        )
    ss = config["detection"]["second_split"]
    for phase in ("first", "second"):
        epochs = ss[f"epochs_{phase}"] or train["epochs"]
        peak = ss[f"peak_epoch_{phase}"] or train["peak_epoch"]
        if peak > epochs:
            raise ConfigError(
                f"detection.second_split.peak_epoch_{phase} ({peak}) is after the last epoch "
                f"(detection.second_split.epochs_{phase} = {epochs}; null means the train setting)"
            )


def _check_layer_experiments(config: dict) -> None:
    last = config["train"]["epochs"]
    late = [t for t in config["rewinding"]["epochs"] or [] if t > last]
    if late:
        raise ConfigError(f"rewinding.epochs: {late} after the last checkpoint (train.epochs = {last})")
    re = config["retraining"]
    if not re["peak_epoch"] < re["epochs"]:  # the one-cycle schedule needs a falling phase
        raise ConfigError(f"retraining.peak_epoch ({re['peak_epoch']}) must be before retraining.epochs ({re['epochs']})")


def _check_dropout(config: dict) -> None:
    drop, peak = config["dropout"], config["train"]["peak_epoch"]
    if drop["epochs"] is not None and drop["epochs"] <= peak:  # the one-cycle schedule needs a falling phase
        raise ConfigError(f"dropout.epochs ({drop['epochs']}) must come after the learning-rate peak (train.peak_epoch = {peak})")
    for name in drop["datasets"]:
        if not dataset_available(name, config["data_root"], config["download"]):
            raise ConfigError(
                f"dropout.datasets: dataset {name!r} is not under data_root ({config['data_root']!r}) and download "
                f"is false; set download: true, point data_root at a local copy, or remove it"
            )


# -- which runs the configured figures need --------------------------------------------

RUN_DIR = "results/runs/{dataset}/{model}/{variant}/seed{seed}"


def noise_label(noise: float) -> str:
    """Canonical text of a noise fraction in paths: 0.1 -> '0.1', 0.0 -> '0'."""
    return f"{float(noise):g}"


def run_dir(dataset: str, model: str, seed: int, noise: float = 0.0, variant: str | None = None) -> str:
    """A run's folder.  Its data variant is noise<fraction> (label noise, the default) or
    atypical (no noise; typical/atypical groups by C-score)."""
    variant = variant or f"noise{noise_label(noise)}"
    return RUN_DIR.format(dataset=dataset, model=model, variant=variant, seed=seed)


def appendix_datasets(config: dict, figures: tuple[str, str, str] = ("fig12", "fig13", "fig14")) -> dict[str, str]:
    """{figure id: dataset} of the per-dataset appendix grids for CIFAR-10, MNIST and SVHN:
    the gradient grids fig12-14, or (figures=("fig15", "fig16", "fig17")) the rewinding grids.

    The CIFAR-10 figure exists always; where the config has no CIFAR-10 it is drawn from the
    primary dataset (the offline default's Fashion-MNIST), and the title says which.  The
    MNIST and SVHN figures exist when those datasets are configured."""
    ds = config["datasets"]
    out = {figures[0]: "cifar10" if "cifar10" in ds else config["primary"]["dataset"]}
    for fig, name in zip(figures[1:], ("mnist", "svhn")):
        if name in ds:
            out[fig] = name
    return out


REWINDING_FIGURES = ("fig15", "fig16", "fig17")


def run_grid(datasets: list[str], models: list[str], noise_rates: list[float], seeds: list[int]) -> list[dict]:
    """Label-noise runs of every dataset x model x noise rate x seed."""
    return [
        {"dataset": d, "model": m, "noise": float(n), "seed": s}
        for d in datasets for m in models for n in noise_rates for s in seeds
    ]


def grid_runs(config: dict, dataset: str) -> list[dict]:
    """Runs of a model x noise-rate x seed grid on one dataset (fig12-14)."""
    return run_grid([dataset], config["models"], config["noise_rates"], config["seeds"])


def primary_runs(config: dict) -> list[dict]:
    p = config["primary"]
    return [{"dataset": p["dataset"], "model": p["model"], "noise": float(p["noise"]), "seed": s} for s in config["seeds"]]


def noise_sweep_runs(config: dict) -> list[dict]:
    p, sweep = config["primary"], config["figures"]["fig11"]
    return [
        {"dataset": p["dataset"], "model": p["model"], "noise": float(n), "seed": s}
        for n in sweep["noise_rates"] for s in sweep["seeds"]
    ]


def gradient_runs(config: dict) -> list[dict]:
    """Every run whose gradient statistics some figure uses, without duplicates."""
    runs = primary_runs(config) + noise_sweep_runs(config)
    for dataset in appendix_datasets(config).values():
        runs += grid_runs(config, dataset)
    return unique_runs(runs)


def unique_runs(runs: list[dict]) -> list[dict]:
    """The runs without repeats, in first-seen order."""
    return list({tuple(r.values()): r for r in runs}.values())


# -- layer rewinding and retraining (fig03, fig04, fig15-18) ----------------------------


def layer_seeds(config: dict, experiment: str) -> list[int]:
    """Seeds of the rewinding / retraining runs: the experiment's own, else `seeds`."""
    return config[experiment]["seeds"] or config["seeds"]


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


def layer_tables(config: dict, table: str) -> tuple[list[str], list[dict]]:
    """The files behind results/tables/{table}.parquet (table: rewinding / retraining) and
    the run of each: a run's rewinding table, or one retraining table per (run, layer)."""
    if table.endswith("rewinding"):
        runs = atypical_runs(config, layer_seeds(config, "rewinding")) if table == "atypical_rewinding" else rewinding_runs(config)
        return [f"{run_dir(**r)}/rewinding.parquet" for r in runs], runs
    runs = atypical_runs(config, layer_seeds(config, "retraining")) if table == "atypical_retraining" else retraining_runs(config)
    pairs = [(r, layer) for r in runs for layer in layer_names(config, r["model"])]
    return [f"{run_dir(**r)}/retraining/{layer}.parquet" for r, layer in pairs], [r for r, _ in pairs]


def layer_figure(config: dict, fig: str) -> tuple[str, str, dict]:
    """(memloc.report.figures function, table name, selection) of fig03, fig04, fig15-18."""
    p, noise_rates = config["primary"], config["noise_rates"]
    rewound = dict(models=config["models"], seeds=layer_seeds(config, "rewinding"))
    retrained = dict(model=p["model"], seeds=layer_seeds(config, "retraining"))
    if fig in REWINDING_FIGURES:
        dataset = appendix_datasets(config, REWINDING_FIGURES)[fig]
        return "rewinding_grid", "rewinding", dict(dataset=dataset, noise_rates=noise_rates, **rewound)
    if fig == "fig03":
        return "fig03", "rewinding", dict(dataset=p["dataset"], noise=p["noise"], **rewound)
    atypical = config["atypical"]["datasets"]
    if fig == "fig09":  # fig03's form for typical vs atypical, the primary model, no noise
        return "fig03", "atypical_rewinding", dict(rewound, dataset=atypical[0], models=[p["model"]], noise=0.0)
    if fig == "fig19":
        return "retraining", "atypical_retraining", dict(datasets=atypical, noise_rates=[0.0], **retrained)
    datasets = fig04_datasets(config) if fig == "fig04" else config["datasets"]
    noises = [p["noise"]] if fig == "fig04" else noise_rates  # fig18: every noise rate
    return "retraining", "retraining", dict(datasets=datasets, noise_rates=noises, **retrained)


def retraining_settings(config: dict, seed: int) -> dict:
    """memloc.core.training.TrainConfig fields of a retraining job: the schedule from
    `retraining`; momentum, weight decay and the eval batch size from `train`."""
    schedule = {k: config["retraining"][k] for k in ("epochs", "peak_epoch", "peak_lr", "batch_size")}
    return {**config["train"], **schedule, "seed": int(seed)}


def layer_names(config: dict, model: str) -> list[str]:
    """Names of the model's layers (memloc.core.models.model_layers), from a model built on the
    meta device: nothing is allocated, so the DAG can be planned quickly."""
    import torch

    from memloc.core.models import ModelConfig, build_model, model_layers

    with torch.device("meta"):
        net = build_model(ModelConfig(name=model, **config["model_settings"].get(model, {})))
    return [layer.name for layer in model_layers(net)]


# -- typical vs atypical examples (fig08, fig09, fig19) ----------------------------------


def atypical_runs(config: dict, seeds: list[int] | None = None) -> list[dict]:
    """Noise-free runs of the primary model whose groups are typical/atypical (C-score)."""
    model = config["primary"]["model"]
    return [
        {"dataset": d, "model": model, "noise": 0.0, "seed": s, "variant": "atypical"}
        for d in config["atypical"]["datasets"] for s in (seeds or config["seeds"])
    ]


ATYPICAL_LAYER_FIGURES = ("fig09", "fig19")
