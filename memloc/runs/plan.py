"""Which training runs exist: the label-noise runs every gradient-accounting figure needs
(primary, noise sweep, the per-dataset grids), planned from the validated config.  Only
the workflow's .smk files call this module."""

from __future__ import annotations

from memloc.core.paths import noise_label, run_dir  # noqa: F401  (re-exported for the rules)


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
