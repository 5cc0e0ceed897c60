"""The memorization atlas as the workflow plans it: which run it describes, the files it joins
and its targets.  Only workflow/rules/atlas.smk calls this module.

One atlas, of the primary setting (primary.dataset / model / noise).  Its run is the first of
the configured `seeds` that neuron flipping also trained (flipping.seeds), so that the run's
per-epoch records, its second-split forgetting time and its final model (the neighbours) are
of the same training; where no configured seed is a flipping seed, the first flipping seed.
The flipping columns come from every flipping seed."""

from __future__ import annotations

from memloc.core.paths import ATLAS_DIR, DATA_TABLE, DETECTION_DIR, VARIANT_TABLE, noise_label, run_dir, table
from memloc.dropout import plan as dropout_plan


def atlas_run(config: dict) -> dict:
    """The run the atlas describes: {dataset, model, noise, seed}."""
    p, flip_seeds = config["primary"], config["flipping"]["seeds"]
    seed = next((s for s in config["seeds"] if s in flip_seeds), flip_seeds[0])
    return {"dataset": p["dataset"], "model": p["model"], "noise": float(p["noise"]), "seed": int(seed)}


def atlas_path(config: dict, name: str) -> str:
    """results/atlas/{dataset}/{model}/noise{f}/<name> (atlas.parquet, neighbours.parquet, page)."""
    run = atlas_run(config)
    return f"{ATLAS_DIR.format(dataset=run['dataset'], model=run['model'], noise=noise_label(run['noise']))}/{name}"


def run_file(config: dict, name: str) -> str:
    """A file of the atlas's training run (checkpoints.txt, examples.parquet)."""
    return f"{run_dir(**atlas_run(config))}/{name}"


def tied_run(config: dict) -> dict | None:
    """The example-tied dropout run of the atlas's setting (the study's dataset, model and noise
    rate match the primary ones; its first seed), or None."""
    run = atlas_run(config)
    d = config["dropout"]
    if run["dataset"] not in d["datasets"] or dropout_plan.study_model(config) != run["model"] or \
            float(d["noise"]) != run["noise"]:
        return None
    return next(r for r in dropout_plan.table_runs(config, "tab1") if r["dataset"] == run["dataset"])


def table_inputs(config: dict) -> dict[str, str]:
    """The files rule atlas_table joins (memloc.atlas.jobs.write_atlas_table): data, examples,
    neighbours, flipping, second_split, and where configured atypical and dropout."""
    run = atlas_run(config)
    noise = noise_label(run["noise"])
    files = {
        "data": DATA_TABLE.format(dataset=run["dataset"], noise=noise),
        "examples": f"{run_dir(**run)}/examples.parquet",
        "neighbours": atlas_path(config, "neighbours.parquet"),
        "flipping": table("flipping"),
        "second_split": f"{DETECTION_DIR.format(**{**run, 'noise': noise})}/second_split.parquet",
    }
    if run["dataset"] in config["atypical"]["datasets"]:
        files["atypical"] = VARIANT_TABLE.format(dataset=run["dataset"], variant="atypical")
    tied = tied_run(config)
    if tied is not None:
        files["dropout"] = f"{dropout_plan.run_dir(tied)}/examples.parquet"
    return files


def title(config: dict) -> str:
    run = atlas_run(config)
    return (f"Memorization atlas: {run['dataset']}, {run['model']}, {run['noise']:g} label noise, "
            f"training seed {run['seed']}")


# rule atlas_summary's outputs (memloc.atlas.jobs.write_atlas_summaries), in the report
SUMMARY_FILES = {"data_map": "data_map.csv", "data_map_md": "data_map.md", "layers": "single_removal_layers.csv",
                 "layers_md": "single_removal_layers.md"}


def targets(config: dict) -> list[str]:
    """What the atlas's part of rule `all` makes: the table and the page folder (none when
    atlas.enabled is false)."""
    if not config["atlas"]["enabled"]:
        return []
    return [atlas_path(config, "atlas.parquet"), atlas_path(config, "page"),
            *(atlas_path(config, f) for f in SUMMARY_FILES.values())]
