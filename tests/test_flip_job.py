"""The flip_shard job on a real (tiny) trained run: a shard is flipped in parts, each part's
results kept until the table is written, so a job that dies loses at most one part."""

import json

import pandas as pd
import pytest
import torch
from schema_defaults import flip_config

from memloc.core.files import partial_path
from memloc.flipping.jobs import RESUME_BATCHES, flip_shard, write_selection

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def selection(trained_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("flip") / "examples.parquet"
    write_selection(trained_run["data_table"], path, per_group=5, seed=0, shards=1)  # 10 examples, one shard
    return path


def test_a_shard_resumes_at_its_first_unfinished_part(trained_run, selection, tmp_path):
    settings = {**flip_config(max_removals=8, population_batch=8, examples_per_batch=1, accuracy_examples=50,
                              seed=0).__dict__}
    size = RESUME_BATCHES  # examples per part: 1 a batch -> parts of 8 and 2 examples
    args = (trained_run["inputs"], trained_run["checkpoints"], selection, 0)
    whole = flip_shard(*args, tmp_path / "whole.parquet", settings, CPU)
    assert len(whole) == 10 and not partial_path(tmp_path / "whole.parquet").exists()
    # the same rows as one search of all the examples (results do not depend on the parts)
    one = flip_shard(*args, tmp_path / "one.parquet", {**settings, "examples_per_batch": 10}, CPU)
    pd.testing.assert_frame_equal(one, whole)

    died = tmp_path / "died.parquet"
    died.mkdir()  # the table cannot be written: the job dies after its last part
    with pytest.raises(OSError):
        flip_shard(*args, died, settings, CPU)
    died.rmdir()
    saved = json.loads(partial_path(died).read_text())
    assert [len(saved["layers"][k]) for k in sorted(saved["layers"])] == [size, 10 - size]
    # as if killed during the second part: the first part kept (marked), the second not
    saved["layers"] = {"0": [{**row, "accuracy_train": 0.125} for row in saved["layers"]["0"]]}
    partial_path(died).write_text(json.dumps(saved))
    resumed = flip_shard(*args, died, settings, CPU)
    assert (resumed["accuracy_train"].iloc[:size] == 0.125).all()  # the first part was not flipped again
    pd.testing.assert_frame_equal(resumed.iloc[size:], whole.iloc[size:])
    pd.testing.assert_frame_equal(resumed.drop(columns="accuracy_train"), whole.drop(columns="accuracy_train"))
    assert not partial_path(died).exists()
