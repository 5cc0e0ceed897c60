"""runs_per_job: a batch job (several runs of a setting in one process) writes exactly the
tables of one job per run, and a killed batch job resumes, losing at most an epoch of one run
(training) or one layer (rewinding)."""

import shutil

import pandas as pd
import pytest
import torch
from schema_defaults import model_settings

from memloc.core.files import partial_path
from memloc.core.models.build import ModelConfig
from memloc.core.train.checkpoints import list_checkpoints
from memloc.core.train.config import TrainConfig
from memloc.core.train.run import train
from memloc.layers.jobs import rewind_run, rewind_runs
from memloc.runs.jobs import train_run, train_runs

CPU = torch.device("cpu")
TABLES = ("metrics", "examples", "gradients")


def outputs(folder) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    return {**{t: str(folder / f"{t}.parquet") for t in TABLES}, "checkpoints": str(folder / "checkpoints.txt")}


@pytest.fixture(scope="module")
def seed1(trained_run, tmp_path_factory):
    """Seed 1 of the trained run's setting, trained by its own job."""
    settings = {**trained_run["train"], "seed": 1}
    out = outputs(tmp_path_factory.mktemp("seed1"))
    train_run(trained_run["inputs"], model_settings("resnet9", width=0.125), settings, out, CPU)
    return out


def test_a_killed_batch_job_resumes_and_writes_the_one_run_jobs_tables(trained_run, seed1, tmp_path):
    r, model = trained_run, model_settings("resnet9", width=0.125)
    runs = [(r["train"], outputs(tmp_path / "seed0")), ({**r["train"], "seed": 1}, outputs(tmp_path / "seed1"))]
    # killed in seed 1's second epoch: seed 0 trained (its tables deleted by Snakemake's rerun, its
    # checkpoints kept), seed 1 with the checkpoints of epochs 0 and 1
    shutil.copytree(r["checkpoints"].replace("checkpoints.txt", "checkpoints"), tmp_path / "seed0" / "checkpoints")
    cfg = ModelConfig.for_dataset(r["dataset"], r["inputs"].source, **model)
    train(cfg, TrainConfig(**runs[1][0]), r["inputs"].load(), tmp_path / "seed1" / "checkpoints", CPU,
          stop_after_epoch=1, progress=False)
    assert sorted(list_checkpoints(tmp_path / "seed1" / "checkpoints")) == [0, 1]
    train_runs(r["inputs"], model, runs, CPU)
    alone = [{t: r["checkpoints"].replace("checkpoints.txt", f"{t}.parquet") for t in TABLES}, seed1]
    for (_, batch), single in zip(runs, alone, strict=True):
        for t in TABLES:
            pd.testing.assert_frame_equal(pd.read_parquet(batch[t]), pd.read_parquet(single[t]))
    # seed 0 was not trained again: its checkpoints are the copied ones
    assert sorted(list_checkpoints(tmp_path / "seed0" / "checkpoints")) == [0, 1, 2]


def test_a_rewinding_batch_keeps_each_runs_layers_until_its_last_table(trained_run, seed1, tmp_path):
    r = trained_run
    manifests = [r["checkpoints"], seed1["checkpoints"]]
    alone = [rewind_run(r["inputs"], m, tmp_path / f"alone{i}.parquet", None, 256, CPU)
             for i, m in enumerate(manifests)]
    outs = [tmp_path / "seed0.parquet", tmp_path / "seed1.parquet"]
    outs[1].mkdir()  # the job dies writing its second table
    with pytest.raises(OSError):
        rewind_runs(r["inputs"], list(zip(manifests, outs)), None, 256, CPU)
    outs[1].rmdir()
    assert outs[0].exists() and partial_path(outs[0]).exists() and partial_path(outs[1]).exists()
    outs[0].unlink()  # Snakemake deletes a failed job's outputs; the rerun rebuilds them from the partial rows
    rewind_runs(r["inputs"], list(zip(manifests, outs)), None, 256, CPU)
    for out, table in zip(outs, alone, strict=True):
        pd.testing.assert_frame_equal(pd.read_parquet(out), table)
        assert not partial_path(out).exists()

