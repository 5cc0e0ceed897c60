"""The checks of memloc.config_checks.check_config that take the plan's view: every settings object
the planned jobs build, built when the DAG is parsed; the values that the data bound; the
primary setting beside the noise grid.

A settings object checks the relations between its own fields (TrainConfig: a one-cycle
schedule's peak before its last epoch; DropoutConfig, HoldoutConfig: theirs).  `check_settings`
builds each one that a job of the plan builds, from the fields the job gets (the same
memloc.*.plan functions make them), so every relation is checked once, in that one place,
before any job starts; an error is re-raised as ConfigError naming the config keys that the
offending fields came from.

`check_sizes` stops values larger than the data, with the size: train_subset above a
dataset's training split, flipping.examples_per_group above the smaller group of the primary
setting's corrupted training set (exactly what memloc.core.data.noise's corruption makes of it).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import fields as dataclass_fields
from pathlib import Path

from memloc.config import INHERITED, ConfigError
from memloc.core.data.builtin import SPLIT_SIZES
from memloc.core.data.noise import noisy_count
from memloc.core.paths import DATASET_INFO, noise_label


def named(keys: dict[str, str], field: str, value) -> str:
    """`key = value` of a settings field's config key, with what the key's null stands for."""
    key = keys.get(field, field)
    source = INHERITED.get(tuple(key.split(".")))
    return f"{key} = {value!r}" + (f" (null means {'.'.join(source)})" if source else "")


def build(cls: type, fields: dict, keys: dict[str, str], what: str):
    """cls(**fields), or a ConfigError naming the config keys (keys: field -> config key) of
    the fields whose relation fails (what: which jobs build it)."""
    from memloc.core.train.config import SettingsError

    try:
        return cls(**fields)
    except SettingsError as err:
        raise ConfigError(f"{', '.join(named(keys, f, fields[f]) for f in err.fields)} ({what}): {err}") from err
    except (TypeError, ValueError) as err:  # a message without the fields: it names their section, or we do
        section = os.path.commonprefix(sorted(keys.values())).rstrip(".")
        if section and str(err).startswith(section):
            raise ConfigError(f"{err} ({what})") from err
        raise ConfigError(f"{', '.join(sorted(set(keys.values())))} ({what}): {err}") from err


def train_keys(config: dict, **keys: str) -> dict[str, str]:
    """{TrainConfig field: config key}: the `train` section's, then `keys`."""
    return {**{f: f"train.{f}" for f in config["train"]}, **keys}


def build_training(fields: dict, keys: dict[str, str], what: str, examples: int | None) -> None:
    """The TrainConfig of `fields` (build), and its one-cycle schedule over `examples` training
    examples (memloc.core.train.config.check_warmup, as the job's scheduled_sgd checks it; None: a
    dataset of unknown size, the job checks it)."""
    from memloc.core.train.config import SettingsError, TrainConfig, check_warmup, steps_per_epoch

    cfg = build(TrainConfig, fields, keys, what)
    if examples is None:
        return
    try:
        check_warmup(cfg, steps_per_epoch(examples, cfg.batch_size))
    except SettingsError as err:
        names = ", ".join(named(keys, f, fields[f]) for f in err.fields)
        raise ConfigError(f"{names} ({what}, on {examples} training examples): {err}") from err


def check_settings(config: dict) -> None:
    """Build every settings object the plan's jobs build (module docstring); after
    check_sizes, which bounds train_subset."""
    _check_runs(config)
    _check_retraining(config)
    _check_dropout_runs(config)
    _check_flipping_runs(config)
    _check_holdout(config)


def run_examples(config: dict, dataset: str) -> int | None:
    """Training examples of a run on `dataset`: train_subset, else the whole split (None: unknown)."""
    subset = config["train_subset"]
    return subset if subset is not None else training_examples(config, dataset)


def clean_examples(config: dict, run: dict) -> int | None:
    """Examples of a run's group False, which retraining trains on: a label-noise run's clean
    ones (memloc.core.data.noise.noisy_count at the noise its path says); None for a typical/atypical
    run (its groups come from C-scores)."""
    n = run_examples(config, run["dataset"])
    if n is None or run.get("variant") == "atypical":
        return None
    return n - noisy_count(n, float(noise_label(run["noise"])))


def _variant(run: dict) -> str:
    return run.get("variant") or f"noise{noise_label(run['noise'])}"


def _in_order(planned: set[tuple]) -> list[tuple]:
    """(variant, seed, ...) tuples, the label-noise runs first: a bad value is reported as
    the main runs meet it, the same on every parse."""
    return sorted(planned, key=lambda t: (t[0] == "atypical", str(t)))


def _check_runs(config: dict) -> None:
    """Every run rule `train` trains: the gradient runs, the rewound, retrained and flipped
    ones, and the typical/atypical runs of every seed list they use."""
    from memloc.atypical.plan import atypical_runs
    from memloc.flipping.plan import flip_runs
    from memloc.layers.plan import retraining_runs, rewinding_runs
    from memloc.runs.plan import gradient_runs, train_settings

    runs = gradient_runs(config) + rewinding_runs(config) + retraining_runs(config) + flip_runs(config)
    for seeds in (config["seeds"], config["rewinding"]["seeds"], config["retraining"]["seeds"]):
        runs += atypical_runs(config, seeds)
    keys = train_keys(config, seed="seeds")
    for variant, seed, dataset in _in_order({(_variant(r), r["seed"], r["dataset"]) for r in runs}):
        build_training(train_settings(config, variant, seed), keys, f"the training of run {dataset} {variant} "
                       f"seed {seed}", run_examples(config, dataset))


def _check_retraining(config: dict) -> None:
    """As memloc.layers.jobs.retrain_layer builds it (the groups: the run's, by variant), on
    the run's group False."""
    from memloc.atypical.plan import atypical_runs
    from memloc.layers.plan import retraining_runs, retraining_settings
    from memloc.runs.plan import run_groups

    schedule = {k: f"retraining.{k}" for k in ("epochs", "peak_epoch", "peak_lr", "batch_size")}
    keys = train_keys(config, seed="retraining.seeds", **schedule)
    runs = retraining_runs(config) + atypical_runs(config, config["retraining"]["seeds"])
    for variant, seed, examples in _in_order({(_variant(r), r["seed"], clean_examples(config, r)) for r in runs}):
        fields = {**retraining_settings(config, seed), "group_names": tuple(run_groups(variant)["group_names"])}
        build_training(fields, keys, f"the layer retraining of the {variant} runs, seed {seed}", examples)


def _check_dropout_runs(config: dict) -> None:
    """Each run of the dropout study: its training (rule train_dropout) and its dropout layers
    (memloc.dropout.tied.DropoutConfig, from the run's model settings)."""
    from memloc.dropout import plan
    from memloc.dropout.tied import DropoutConfig

    tied = train_keys(config, epochs="dropout.epochs", seed="dropout.seeds")
    baseline = {**tied, "epochs": "dropout.baselines.epochs", "peak_epoch": "dropout.baselines.peak_epoch"}
    layers = {f.name: f"dropout.{f.name}" for f in dataclass_fields(DropoutConfig)}
    layers.update(kind="dropout.grid", seed="dropout.seeds")
    for run in plan.dropout_runs(config):
        what = f"the dropout run {run['dropout']} on {run['dataset']}, seed {run['seed']}"
        keys = baseline if plan.is_baseline(run["dropout"]) else tied
        fields = plan.train_settings(config, run["seed"], run["dropout"])
        build_training(fields, keys, what, run_examples(config, run["dataset"]))
        dropout = plan.model_settings(config, run["model"], run["dropout"], run["seed"])["dropout"]
        build(DropoutConfig, dropout, layers, what)


def _check_flipping_runs(config: dict) -> None:
    """Per flipped run: its flip_shard jobs' FlipConfig, and the second split's two trainings
    as memloc.flipping.jobs / memloc.flipping.second_split build them (B: A's fields with the
    fine-tuning's replaced, what dataclasses.replace builds) on split A's / B's examples."""
    from memloc.flipping.objective import FlipConfig
    from memloc.flipping.plan import flip_runs, flip_settings, second_split_settings
    from memloc.flipping.second_split import split_rows

    flip_keys = {f: f"flipping.{f}" for f in flip_settings(config, 0)} | {"seed": "flipping.seeds"}
    ss, split = "detection.second_split", config["detection"]["second_split"]
    first = train_keys(config, seed="flipping.seeds", epochs=f"{ss}.epochs_first", peak_epoch=f"{ss}.peak_epoch_first")
    second = {**first, "epochs": f"{ss}.epochs_second", "peak_epoch": f"{ss}.peak_epoch_second"}
    n = run_examples(config, config["primary"]["dataset"])
    size_a = None if n is None else len(split_rows(n, split["fraction"], split["seed"]))
    size_b = None if n is None else n - size_a
    for run in flip_runs(config):
        seed = run["seed"]
        build(FlipConfig, flip_settings(config, seed), flip_keys, f"the neuron flipping of seed {seed}")
        settings = second_split_settings(config, seed)
        split_a = settings.first
        on = f"{ss}.fraction = {split['fraction']}"
        build_training(split_a, first, f"the second split's training on split A ({on}), seed {seed}", size_a)
        build_training({**split_a, **settings.second}, second, f"the second split's fine-tuning on split B ({on}), "
                                                                 f"seed {seed}", size_b)


def _check_holdout(config: dict) -> None:
    """The hold-out C-score estimate of every typical/atypical dataset without published
    scores: its scheme and each subset model's training (memloc.atypical.jobs.train_holdout_model)
    on its subset."""
    from memloc.atypical.cscores import HoldoutConfig, holdout_subset
    from memloc.atypical.plan import holdout_settings

    atypical = config["atypical"]
    estimated = [d for d in atypical["datasets"] if d not in atypical["cscore_files"]]
    if not estimated:
        return
    holdout = atypical["holdout"]
    cfg = build(HoldoutConfig, holdout, {f: f"atypical.holdout.{f}" for f in holdout}, "the hold-out models")
    keys = train_keys(config, seed="atypical.holdout.seed")
    for dataset in estimated:
        n = run_examples(config, dataset)
        # a subset's size depends on the model only through its parity (the half of its pair)
        sizes = [None] * 2 if n is None else [int(holdout_subset(n, k, cfg).sum()) for k in (0, 1)]
        for k in range(cfg.models):
            fields = {**holdout_settings(config), "seed": cfg.seed * 1000 + k}
            build_training(fields, keys, f"the training of hold-out model {k} on {dataset}", sizes[k % 2])


# -- values the data bound ---------------------------------------------------------------


def training_examples(config: dict, dataset: str) -> int | None:
    """The size of a dataset's training split where planning knows it cheaply: a built-in's
    (memloc.core.data.builtin.SPLIT_SIZES), a declared one's from its fetch_dataset record (once that
    job ran) or its .npz headers; else None (an ImageFolder's files are not counted when the
    DAG is parsed, a torchvision class is not loaded: the corrupt_data job stops instead)."""
    if dataset in SPLIT_SIZES:
        return SPLIT_SIZES[dataset][0]
    record = Path(DATASET_INFO.format(dataset=dataset))
    if record.exists():
        return json.loads(record.read_text())["n_train"]
    definition = config["dataset_definitions"].get(dataset, {})
    if definition.get("format") == "npz":
        from memloc.core.data.declared_files import npz_headers

        return npz_headers(Path(definition["path"]))["x_train"][0][0]  # check_declared read them already
    if definition.get("export_from") and not Path(definition["path"]).exists():  # fetch_dataset exports it
        return SPLIT_SIZES[definition["export_from"]][0]
    return None


def check_sizes(config: dict) -> None:
    """train_subset and flipping.examples_per_group against the data (module docstring)."""
    subset = config["train_subset"]
    keys = (("primary.dataset", [config["primary"]["dataset"]]), ("datasets", config["datasets"]),
            ("atypical.datasets", config["atypical"]["datasets"]), ("dropout.datasets", config["dropout"]["datasets"]))
    for key, names in keys:
        for name in names:
            size = training_examples(config, name)
            if subset is not None and size is not None and subset > size:
                raise ConfigError(f"train_subset ({subset}) is larger than the training split of {name} ({size} "
                                  f"examples; in {key}): lower it, or null = the whole split")
    _check_flip_groups(config)
    _check_localization_groups(config)


def _check_localization_groups(config: dict) -> None:
    """localization.examples_per_group against the clean and noisy examples of each track's
    training set (deletion: the primary setting; ground truth: the dropout study's noise on
    its first dataset)."""
    loc, subset = config["localization"], config["train_subset"]
    settings = {"deletion": (config["primary"]["dataset"], config["primary"]["noise"]),
                "ground_truth": (config["dropout"]["datasets"][0], config["dropout"]["noise"])}
    for track in loc["tracks"]:
        dataset, noise = settings[track]
        n = subset if subset is not None else training_examples(config, dataset)
        if n is None:
            continue
        noisy = noisy_count(n, float(noise_label(noise)))
        smaller = min(noisy, n - noisy)
        if loc["examples_per_group"] > smaller:
            raise ConfigError(f"localization.examples_per_group ({loc['examples_per_group']}) is larger than the "
                              f"{smaller} examples of the smaller group of the {track} track's training set ({noisy} "
                              f"of {n} mislabelled at noise {noise} on {dataset})")


def _check_flip_groups(config: dict) -> None:
    """flipping.examples_per_group against the clean and noisy examples of the flipped runs'
    training set: train_subset (or all) examples of primary.dataset, noisy_count of them
    mislabelled at primary.noise (as the corrupt_data job reads it back from its path)."""
    p, subset = config["primary"], config["train_subset"]
    n = subset if subset is not None else training_examples(config, p["dataset"])
    if n is None:  # a declared dataset of unknown size: select_flip_examples stops instead
        return
    noisy = noisy_count(n, float(noise_label(p["noise"])))
    group, smaller = min((("noisy", noisy), ("clean", n - noisy)), key=lambda g: g[1])
    per_group = config["flipping"]["examples_per_group"]
    if per_group > smaller:
        size = f"train_subset = {subset}" if subset is not None else f"the whole split of {p['dataset']}"
        raise ConfigError(f"flipping.examples_per_group ({per_group}) is larger than the {smaller} {group} examples "
                          f"of the primary setting ({noisy} of {n} training examples mislabelled at primary.noise = "
                          f"{p['noise']}, {size})")


def announce_primary_noise(config: dict) -> None:
    """primary.noise need not be in noise_rates: the runs of the primary setting are planned
    on their own.  Says so on stderr when the DAG is parsed, as the grids leave it out."""
    p = config["primary"]
    if noise_label(p["noise"]) not in {noise_label(n) for n in config["noise_rates"]}:
        print(f"memloc: primary.noise ({p['noise']}) is not in noise_rates {config['noise_rates']}: the primary "
              f"setting's runs (fig01-fig04, fig10, flipping, detection, claims) are trained on their own, "
              f"and the model x noise-rate grids (fig12-fig18) leave it out", file=sys.stderr)
