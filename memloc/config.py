"""Checks of the workflow configuration that a JSON schema cannot express.

`snakemake.utils.validate` checks types, ranges and enums against
workflow/schemas/config.schema.yaml (and fills in defaults); `check_config` then checks
the relations between keys and that the data can be found, so a bad value stops the run
before any job starts, with a message that names the key.
"""

from __future__ import annotations

from memloc.data import dataset_available


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key."""


def check_config(config: dict) -> None:
    train = config["train"]
    if train["peak_epoch"] > train["epochs"]:
        raise ConfigError(
            f"train.peak_epoch ({train['peak_epoch']}) is after the last epoch (train.epochs = {train['epochs']})"
        )
    start, end = config["figures"]["fig01"]["epochs"]
    if not start < end <= train["epochs"]:
        raise ConfigError(f"figures.fig01.epochs ({start}, {end}) must satisfy start < end <= train.epochs ({train['epochs']})")
    vit = config["model_settings"].get("vit_small", {})
    if vit and vit.get("dim", 512) % vit.get("heads", 8):
        raise ConfigError(f"model_settings.vit_small.heads ({vit['heads']}) must divide model_settings.vit_small.dim ({vit['dim']})")
    used = set(config["datasets"]) | {config["primary"]["dataset"]}
    for name in sorted(used):
        if not dataset_available(name, config["data_root"], config["download"]):
            key = "datasets" if name in config["datasets"] else "primary.dataset"
            raise ConfigError(
                f"{key}: dataset {name!r} is not under data_root ({config['data_root']!r}) and download is false; "
                f"set download: true, point data_root at a local copy, or remove it"
                + (" (or: apt-get install dataset-fashion-mnist)" if name == "fashion_mnist" else "")
            )


# -- which runs the configured figures need --------------------------------------------

RUN_DIR = "results/runs/{dataset}/{model}/noise{noise}/seed{seed}"


def noise_label(noise: float) -> str:
    """Canonical text of a noise fraction in paths: 0.1 -> '0.1', 0.0 -> '0'."""
    return f"{float(noise):g}"


def run_dir(dataset: str, model: str, noise: float, seed: int) -> str:
    return RUN_DIR.format(dataset=dataset, model=model, noise=noise_label(noise), seed=seed)


def appendix_datasets(config: dict) -> dict[str, str]:
    """{figure id: dataset} of the per-dataset gradient grids fig12-14 (CIFAR-10, MNIST, SVHN).

    fig12 is CIFAR-10's; where the config has no CIFAR-10 it is drawn from the primary
    dataset (the offline default's Fashion-MNIST), and the title says which."""
    out = {}
    ds = config["datasets"]
    out["fig12"] = "cifar10" if "cifar10" in ds else config["primary"]["dataset"]
    for fig, name in (("fig13", "mnist"), ("fig14", "svhn")):
        if name in ds:
            out[fig] = name
    return out


def grid_runs(config: dict, dataset: str) -> list[dict]:
    """Runs of a model x noise-rate x seed grid on one dataset (fig12-14)."""
    return [
        {"dataset": dataset, "model": m, "noise": float(n), "seed": s}
        for m in config["models"] for n in config["noise_rates"] for s in config["seeds"]
    ]


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
    unique = {tuple(r.values()): r for r in runs}
    return list(unique.values())
