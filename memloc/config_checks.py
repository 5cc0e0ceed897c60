"""Checks of a validated and resolved config (memloc.config), before any job starts: the
relations between keys and that the data can be found, each error naming the key
(memloc.config.ConfigError).  memloc.config_settings builds every settings object the plan's
jobs build and bounds values by the data's sizes.  The Snakefile calls `check_config` once,
after resolving."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

from memloc.atypical.cscores import TFDS_ORDER
from memloc.atypical.fetch import SUFFIXES as CSCORE_SUFFIXES
from memloc.atypical.fetch import url_suffix
from memloc.config import ConfigError
from memloc.config_settings import announce_primary_noise, check_settings, check_sizes
from memloc.core.data.builtin import DATASETS, dataset_available
from memloc.core.data.catalog import check_definitions
from memloc.core.data.declared import check_declared
from memloc.core.data.declared_files import DatasetError


def check_config(config: dict) -> None:
    """Checks of a validated and resolved config (resolve_config); memloc.config_settings
    builds the plan's settings objects and bounds values by the data's sizes."""
    train = config["train"]
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
        _check_cscore_file(config, name, published)
    _check_datasets(config)
    check_sizes(config)  # after the datasets: their files are there
    check_settings(config)  # after the sizes: a schedule's steps follow from them
    _check_models(config)  # after the datasets: a declared model is built for primary.dataset's shape
    _check_dropout(config)
    _check_layer_experiments(config)
    _check_shards(config, "flipping")
    _check_shards(config, "localization")
    announce_primary_noise(config)


def _check_models(config: dict) -> None:
    """Every model named is built in or declared, and every declared one builds (on the meta
    device, for primary.dataset) into an nn.Module whose override lists name its modules and
    whose layers partition its parameters."""
    from memloc.core.models.build import check_overrides, meta_model
    from memloc.core.models.config import model_names, planning_config
    from memloc.core.models.zoo import MODELS

    declared = config.get("model_definitions", {})
    for name in declared:
        if name in MODELS:
            raise ConfigError(f"model_definitions.{name}: {name!r} is a built-in model; give yours another name")
    known = model_names(config)
    named = [("models", config["models"]), ("primary.model", [config["primary"]["model"]]),
             ("dropout.model", [config["dropout"].get("model")]), ("model_settings", list(config["model_settings"]))]
    for key, names in named:
        for name in names:
            if name is not None and name not in known:
                raise ConfigError(f"{key}: model {name!r} is neither built in ({', '.join(MODELS)}) nor declared "
                                  f"in model_definitions")
    for name in declared:
        cfg = planning_config(config, name)
        try:
            check_overrides(meta_model(cfg), f"model_definitions.{name}")
        except Exception as e:  # the user's factory, or a bad override: stop before any job
            if str(e).startswith(f"model_definitions.{name}"):  # the message names the key already
                raise ConfigError(str(e)) from e
            raise ConfigError(f"model_definitions.{name}: building it for {config['primary']['dataset']} "
                              f"(num_classes={cfg.num_classes}, in_channels={cfg.in_channels}, "
                              f"image_size={cfg.image_size}) raised {type(e).__name__}: {e}") from e


def _check_datasets(config: dict) -> None:
    """Every dataset named is built in or declared (dataset_definitions), and can be found:
    built-ins under data_root (or downloaded), declared ones checked cheaply (folder
    listings, headers, labels: memloc.core.data.declared.check_declared)."""
    definitions, root = config["dataset_definitions"], config["data_root"]
    try:
        check_definitions(definitions)
    except DatasetError as err:
        raise ConfigError(str(err)) from err
    keys = (
        ("primary.dataset", [config["primary"]["dataset"]]),
        ("datasets", config["datasets"]),
        ("atypical.datasets", config["atypical"]["datasets"]),
        ("dropout.datasets", config["dropout"]["datasets"]),
    )
    checked = set()
    for key, names in keys:
        for name in sorted(set(names) - checked):
            checked.add(name)
            if name in definitions:
                try:
                    check_declared(definitions[name], root, config["download"])
                except DatasetError as err:
                    raise ConfigError(f"dataset_definitions.{name} (in {key}): {err}") from err
            elif name not in DATASETS:
                raise ConfigError(f"{key}: dataset {name!r} is neither built in ({', '.join(DATASETS)}) nor declared "
                                  f"in dataset_definitions ({', '.join(definitions) or 'none'})")
            elif not dataset_available(name, root, config["download"]):
                raise ConfigError(
                    f"{key}: dataset {name!r} is not under data_root ({root!r}) and download is false; "
                    f"set download: true, point data_root at a local copy, or remove it"
                    + (" (or: apt-get install dataset-fashion-mnist)" if name == "fashion_mnist" else "")
                )


def _check_cscore_file(config: dict, name: str, published: dict) -> None:
    """atypical.cscore_files.<name>: a local `file` that exists, or a `url` that rule
    fetch_cscores downloads (the file may be missing until then), and what aligns it."""
    key = f"atypical.cscore_files.{name}"
    if name not in config["atypical"]["datasets"]:
        raise ConfigError(f"{key}: {name!r} is not in atypical.datasets")
    path, url = published.get("file"), published.get("url")
    if bool(path) == bool(url):
        raise ConfigError(
            f"{key}: give either `url` (the published file, downloaded by rule fetch_cscores) or `file` (a local "
            f"copy), not {'both' if path else 'neither'}"
        )
    if path and not os.path.isfile(path):
        raise ConfigError(f"{key}.file: file {path!r} does not exist (or give the published `url` instead)")
    if path and (published.get("sha256") or published.get("md5")):
        raise ConfigError(f"{key}: sha256 / md5 check a download; they need `url`, not `file`")
    suffix = Path(path).suffix if path else url_suffix(url)
    if suffix not in CSCORE_SUFFIXES:
        raise ConfigError(f"{key}: {path or url} is not an .npz or .npy file")
    order = published.get("order")
    if suffix == ".npy" and not order:
        raise ConfigError(
            f"{key}.order: {path or url} is a bare score array (MNIST's is in TFDS order); give order: tfds, or "
            f"an .npy file mapping its positions to the dataset's indices"
        )
    if order and order != TFDS_ORDER and not os.path.isfile(order):
        raise ConfigError(f"{key}.order: file {order!r} does not exist (order: tfds derives TFDS's order)")


def _check_shards(config: dict, section: str) -> None:
    """<section>.shards against the 2 x examples_per_group examples the shards divide (flipping,
    localization)."""
    part = config[section]
    if part["shards"] > 2 * part["examples_per_group"]:
        raise ConfigError(
            f"{section}.shards ({part['shards']}) exceeds the {2 * part['examples_per_group']} selected examples "
            f"(2 x {section}.examples_per_group): some shards would be empty"
        )


def _check_layer_experiments(config: dict) -> None:
    last = config["train"]["epochs"]
    late = [t for t in config["rewinding"]["epochs"] or [] if t > last]
    if late:
        raise ConfigError(f"rewinding.epochs: {late} after the last checkpoint (train.epochs = {last})")


def _check_dropout(config: dict) -> None:
    drop = config["dropout"]
    if drop.get("model") is not None:  # the study's model with its dropout layers, built on the meta device
        _check_dropout_placement(config, drop)


def _check_dropout_placement(config: dict, drop: dict) -> None:
    """dropout.model takes dropout layers (memloc.dropout.placement), as the study's first run
    has them: its dropout_after names modules whose units can be told, or its layer rule gives
    some."""
    from memloc.core.models.build import meta_model
    from memloc.core.models.config import planning_config
    from memloc.dropout import plan
    from memloc.dropout.model import DropoutModelConfig

    run = plan.dropout_runs(config)[0]
    base = planning_config(config, drop["model"], drop["datasets"][0])
    dropout = plan.model_settings(config, drop["model"], run["dropout"], run["seed"])["dropout"]
    cfg = DropoutModelConfig(**{**asdict(base), "dropout": dropout})
    try:
        meta_model(cfg)
    except ValueError as e:
        raise ConfigError(f"dropout.model: {drop['model']!r} with dropout layers: {e}") from e
