"""What the workflow does with its configuration before planning: resolve, then check.

`snakemake.utils.validate` checks types, ranges and enums against
workflow/schemas/config.schema.yaml and fills in its defaults (the only place a default is
written); `resolve_config` replaces the nulls that mean "the value of another key", so no
planning code falls back on its own; `check_config` then checks the relations between keys
and that the data can be found, so a bad value stops the run before any job starts, with a
message that names the key.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from memloc.core.data import dataset_available

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key."""


# Keys whose null means "the value of another key" (the schema's descriptions say so):
# key path -> path of the key it takes its value from.
INHERITED = {
    ("dropout", "epochs"): ("train", "epochs"),
    ("rewinding", "seeds"): ("seeds",),
    ("retraining", "seeds"): ("seeds",),
    ("detection", "second_split", "epochs_first"): ("train", "epochs"),
    ("detection", "second_split", "peak_epoch_first"): ("train", "peak_epoch"),
    ("detection", "second_split", "epochs_second"): ("train", "epochs"),
    ("detection", "second_split", "peak_epoch_second"): ("train", "peak_epoch"),
}


def _lookup(config: dict, path: tuple[str, ...]):
    for key in path:
        config = config[key]
    return config


def resolve_config(config: dict) -> dict:
    """Replace every null of INHERITED by the value it stands for, in place (and return the
    config).  Run once, after validation filled in the defaults; running it again changes
    nothing.  Copies, so that no two keys share a list."""
    for path, source in INHERITED.items():
        *parents, key = path
        section = _lookup(config, tuple(parents))
        if section[key] is None:
            section[key] = copy.deepcopy(_lookup(config, source))
    return config


def load_config(path: str | os.PathLike, schema: str | os.PathLike = SCHEMA) -> dict:
    """A config file as the Snakefile has it before planning: validated against the schema
    (defaults filled in) and resolved (for tests and notebooks; the data is not checked)."""
    import yaml
    from snakemake.utils import validate

    config = yaml.safe_load(Path(path).read_text()) or {}
    validate(config, str(schema))
    return resolve_config(config)


def check_config(config: dict) -> None:
    """Checks of a validated and resolved config (resolve_config)."""
    train = config["train"]
    if train["peak_epoch"] >= train["epochs"]:
        raise ConfigError(
            f"train.peak_epoch ({train['peak_epoch']}) must come before the last epoch "
            f"(train.epochs = {train['epochs']})"
        )
    start, end = config["figures"]["fig01"]["epochs"]
    if not start < end <= train["epochs"]:
        raise ConfigError(
            f"figures.fig01.epochs ({start}, {end}) must satisfy start < end <= train.epochs ({train['epochs']})"
        )
    vit = config["model_settings"].get("vit_small", {})
    if vit and vit["dim"] % vit["heads"]:
        raise ConfigError(
            f"model_settings.vit_small.heads ({vit['heads']}) must divide model_settings.vit_small.dim ({vit['dim']})"
        )
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
    flip = config["flipping"]
    if flip["shards"] > 2 * flip["examples_per_group"]:
        raise ConfigError(
            f"flipping.shards ({flip['shards']}) exceeds the {2 * flip['examples_per_group']} selected examples "
            f"(2 x flipping.examples_per_group): some shards would be empty"
        )
    ss = config["detection"]["second_split"]
    for phase in ("first", "second"):
        epochs, peak = ss[f"epochs_{phase}"], ss[f"peak_epoch_{phase}"]
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
        raise ConfigError(
            f"retraining.peak_epoch ({re['peak_epoch']}) must be before retraining.epochs ({re['epochs']})"
        )


def _check_dropout(config: dict) -> None:
    drop, peak = config["dropout"], config["train"]["peak_epoch"]
    if drop["epochs"] <= peak:  # the one-cycle schedule needs a falling phase
        raise ConfigError(
            f"dropout.epochs ({drop['epochs']}) must come after the learning-rate peak (train.peak_epoch = {peak})"
        )
    for name in drop["datasets"]:
        if not dataset_available(name, config["data_root"], config["download"]):
            raise ConfigError(
                f"dropout.datasets: dataset {name!r} is not under data_root ({config['data_root']!r}) and download "
                f"is false; set download: true, point data_root at a local copy, or remove it"
            )
