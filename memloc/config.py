"""What the workflow does with its configuration before planning: resolve, then check.

`snakemake.utils.validate` checks types, ranges and enums against
workflow/schemas/config.schema.yaml and fills in its defaults (the only place a default is
written); `resolve_config` replaces the nulls that mean "the value of another key", so no
planning code falls back on its own; memloc.config_checks.check_config then checks the
relations between keys and that the data can be found, so a bad value stops the run before
any job starts, with a message that names the key (ConfigError).  The relations within a
settings object are checked by the object itself: memloc.config_settings builds every one
that the plan's jobs build (and checks the values that the data bound against its sizes).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key."""


# Keys whose null means "the value of another key" (the schema's descriptions say so):
# key path -> path of the key it takes its value from.
INHERITED = {
    ("dropout", "epochs"): ("train", "epochs"),
    ("dropout", "baselines", "epochs"): ("dropout", "epochs"),  # after dropout.epochs: resolved in this order
    ("dropout", "baselines", "peak_epoch"): ("train", "peak_epoch"),
    ("dropout", "model"): ("primary", "model"),
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
    """Replace every null of INHERITED by the value it stands for, then a null flipping.shards
    by the number sized by the work (memloc.plan.resources.flip_shards), in place (and return
    the config).  Run once, after validation filled in the defaults; running it again changes
    nothing.  Copies, so that no two keys share a list."""
    for path, source in INHERITED.items():
        *parents, key = path
        section = _lookup(config, tuple(parents))
        if section[key] is None:
            section[key] = copy.deepcopy(_lookup(config, source))
    if config["flipping"]["shards"] is None:
        from memloc.plan.resources import flip_shards

        config["flipping"]["shards"] = flip_shards(config)
    return config


def load_config(path: str | os.PathLike, schema: str | os.PathLike = SCHEMA) -> dict:
    """A config file as the Snakefile has it before planning: validated against the schema
    (defaults filled in) and resolved (for tests and notebooks; the data is not checked)."""
    import yaml
    from snakemake.utils import validate

    config = yaml.safe_load(Path(path).read_text()) or {}
    validate(config, str(schema))
    resolve_factories(config, [path])
    return resolve_config(config)


def resolve_factories(config: dict, config_files: list) -> dict:
    """Make every model_definitions.<name>.factory file path absolute, in place (and return
    the config): a relative path is found in the working directory, else next to one of
    `config_files` (the Snakefile's workflow.configfiles), so that jobs and checkpoints find
    the file from anywhere (memloc.core.models.factory.resolve_factory).  Idempotent."""
    from memloc.core.models.factory import resolve_factory

    for name, definition in config.get("model_definitions", {}).items():
        key = f"model_definitions.{name}.factory"
        try:
            definition["factory"] = resolve_factory(definition["factory"], config_files, key)
        except ValueError as e:
            raise ConfigError(str(e)) from e
    return config
