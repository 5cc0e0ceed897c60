"""Which training runs exist, how each is trained, and what the gradient-accounting figures
select: the label-noise runs every gradient figure needs (primary, noise sweep, the
per-dataset grids), planned from the validated and resolved config (memloc.config).  Only
the workflow's .smk files call this module."""

from __future__ import annotations

from typing import NamedTuple

from memloc.core.paths import DATASET_SPLITS, figure_files, run_dir, table

GRADIENT_GRID_FIGURES = ("fig12", "fig13", "fig14")  # fig01 (all epochs) per model x noise rate, one per dataset


class GradientFigure(NamedTuple):
    """How a gradient-accounting figure is drawn from results/tables/gradients.parquet."""

    figure: str  # the memloc.report.figures function
    selection: dict  # its keyword arguments


def data_source(config: dict) -> dict:
    """memloc.core.data.source.DataSource settings of the jobs that read a dataset, with the
    config's declared datasets.  The fetch_dataset job (fetch_source) has fetched and checked
    each dataset before them (its results/data/{dataset}/dataset.json is their input), so
    they neither download nor check checksums again, and load the splits it wrote (cache)."""
    return {"root": config["data_root"], "download": False, "verify_checksums": False,
            "definitions": config["dataset_definitions"], "cache": DATASET_SPLITS}


def fetch_source(config: dict) -> dict:
    """memloc.core.data.source.DataSource settings of the fetch_dataset job: the only one that
    downloads (config key download) and checks checksums (verify_checksums)."""
    return {**data_source(config), "download": config["download"], "verify_checksums": config["verify_checksums"]}


def appendix_datasets(config: dict, figures: tuple[str, str, str] = GRADIENT_GRID_FIGURES) -> dict[str, str]:
    """{figure id: dataset} of the per-dataset appendix grids for CIFAR-10, MNIST and SVHN:
    the gradient grids fig12-14, or (figures=memloc.layers.plan.REWINDING_FIGURES) the
    rewinding grids fig15-17.

    The CIFAR-10 figure exists always; where the config has no CIFAR-10 it is drawn from the
    primary dataset (the offline default's Fashion-MNIST), and the title says which.  The
    MNIST and SVHN figures exist when those datasets are configured."""
    ds = config["datasets"]
    out = {figures[0]: "cifar10" if "cifar10" in ds else config["primary"]["dataset"]}
    for fig, name in zip(figures[1:], ("mnist", "svhn")):
        if name in ds:
            out[fig] = name
    return out


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
    return run_grid([p["dataset"]], [p["model"]], [p["noise"]], config["seeds"])


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


def gradient_run_files(config: dict, table: str) -> list[str]:
    """results/runs/.../{table}.parquet of every gradient run (table: gradients, metrics)."""
    return [f"{run_dir(**r)}/{table}.parquet" for r in gradient_runs(config)]


def unique_runs(runs: list[dict]) -> list[dict]:
    """The runs without repeats, in first-seen order."""
    return list({tuple(r.values()): r for r in runs}.values())


def run_groups(variant: str) -> dict:
    """The two groups of a run's examples, which follow its data variant: the data-table
    column that splits them and the names of group False / True."""
    if variant == "atypical":
        return {"group_column": "is_atypical", "group_names": ["typical", "atypical"]}
    return {"group_column": "is_noisy", "group_names": ["clean", "noisy"]}


def train_settings(config: dict, variant: str, seed: int | str) -> dict:
    """memloc.core.train.config.TrainConfig fields of a run (data variant noise{f} or atypical;
    seed: also as the {seed} wildcard's text), with gradient accounting."""
    groups = run_groups(variant)["group_names"]
    return {**config["train"], "seed": int(seed), "gradient_accounting": True, "group_names": groups}


def run_inputs(config: dict, dataset: str, variant: str) -> dict:
    """memloc.core.data.inputs.RunInputs fields of a job that reads a run's data, less its data
    table (the job's input): the dataset, where it comes from, the test examples and the
    group column of the data variant (noise{f} or atypical)."""
    return {"dataset": dataset, "source": data_source(config), "test_subset": config["test_subset"],
            "group_column": run_groups(variant)["group_column"]}


def model_settings(config: dict, model: str) -> dict:
    """memloc.core.models.build.ModelConfig fields of a run's model, less the dataset's shape."""
    from memloc.core.models.config import model_fields  # (torch: when a rule asks, not when the plan is imported)

    return {"name": model, **model_fields(config, model)}


def gradient_figure(config: dict, fig: str) -> GradientFigure:
    """The function and selection of a gradient-accounting figure (fig01, 02, 10-14).

    fig01 averages its configured epoch window (the paper's "epochs 15-20"); fig11-14
    average all epochs, as their captions in the paper say."""
    p = config["primary"]
    primary = dict(dataset=p["dataset"], model=p["model"], noise=float(p["noise"]))
    if fig in GRADIENT_GRID_FIGURES:
        grid = dict(models=config["models"], noise_rates=config["noise_rates"], seeds=config["seeds"])
        return GradientFigure("gradient_grid", dict(dataset=appendix_datasets(config)[fig], **grid))
    selections = {
        "fig01": dict(primary, window=config["figures"]["fig01"]["epochs"]),
        "fig02": primary,
        "fig10": dict(primary, window=config["figures"]["fig10"]["window"]),
        "fig11": dict(dataset=p["dataset"], model=p["model"], **config["figures"]["fig11"]),
    }
    return GradientFigure(fig, selections[fig])


def targets(config: dict) -> list[str]:
    """What the runs' part of rule `all` makes: the gradient-accounting figures (fig01, fig02,
    fig10, fig11 and the per-dataset grids) and the collected gradients and metrics tables."""
    figures = ["fig01", "fig02", "fig10", "fig11", *appendix_datasets(config)]
    return figure_files(figures) + [table("gradients"), table("metrics")]
