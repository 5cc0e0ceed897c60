"""The localization benchmark as the workflow plans it: which run each track localizes on,
its shards, the settings of a shard job and the merged table's identifying columns.  Only
workflow/rules/localize.smk calls this module (memloc.localize.jobs has the job steps).

- ground_truth: the tab1 run of the example-tied dropout study on its first dataset
  (memloc.dropout.plan.table_runs(config, "tab1")[0]: p_gen, p_mem, its first seed);
- deletion: the primary run of the first flipping seed (the run neuron flipping uses).
"""

from __future__ import annotations

from memloc.core.paths import (
    DATASET_INFO,
    DATASET_SPLITS,
    LOCALIZE_PART,
    display_table_files,
    figure_files,
    noise_label,
    run_dir,
    table,
)
from memloc.dropout import plan as dropout_plan
from memloc.flipping import plan as flipping_plan
from memloc.runs import plan as runs_plan

TRACKS = ("ground_truth", "deletion")


def track_run(config: dict, track: str) -> dict:
    """The run a track localizes on: {dataset, model, noise, seed, dir, data} (dir: its
    folder, data: its data table)."""
    if track == "ground_truth":
        run = dropout_plan.table_runs(config, "tab1")[0]
        return {"dataset": run["dataset"], "model": run["model"], "noise": run["noise"], "seed": run["seed"],
                "dir": dropout_plan.run_dir(run), "data": dropout_plan.data_table(run)}
    if track == "deletion":
        run = flipping_plan.flip_runs(config)[0]
        return {**run, "dir": run_dir(run["dataset"], run["model"], run["seed"], run["noise"]),
                "data": flipping_plan.flip_data_table(config)}
    raise ValueError(f"localization.tracks: unknown track {track!r}; known: {', '.join(TRACKS)}")


def parts(config: dict) -> list[dict]:
    """{path, run} of every shard job: run = the merged table's identifying columns."""
    loc = config["localization"]
    out = []
    for track in loc["tracks"]:
        run = track_run(config, track)
        cols = {"track": track, **{k: run[k] for k in ("dataset", "model", "noise", "seed")}}
        out += [{"path": LOCALIZE_PART.format(track=track, shard=k), "run": cols} for k in range(loc["shards"])]
    return out


def shard_inputs(config: dict, track: str) -> dict[str, str]:
    """The inputs of a shard job of `track`: the run's checkpoints, its data table, the dataset."""
    run = track_run(config, track)
    return {"checkpoints": f"{run['dir']}/checkpoints.txt", "data": run["data"],
            "fetched": DATASET_INFO.format(dataset=run["dataset"]),
            "splits": DATASET_SPLITS.format(dataset=run["dataset"])}


def run_inputs(config: dict, track: str) -> dict:
    """memloc.core.data.inputs.RunInputs fields (less the data table) of a shard job."""
    run = track_run(config, track)
    return runs_plan.run_inputs(config, run["dataset"], f"noise{noise_label(run['noise'])}")


def shard_settings(config: dict, track: str) -> dict:
    """The settings of a shard job: config localization, the track and the run's seed (the
    methods' random draws)."""
    return {**config["localization"], "track": track, "seed": int(track_run(config, track)["seed"])}


def targets(config: dict) -> list[str]:
    """What the benchmark's part of rule `all` makes: its figure, summary table and long table
    (none when localization.tracks is empty)."""
    if not config["localization"]["tracks"]:
        return []
    return figure_files(["localization"]) + display_table_files(["localization"]) + [table("localization")]
