"""What a job reads a run's data from (`RunInputs`): the data table, the dataset and where it
comes from, the test examples and the column that splits the examples in two groups.  Imports
no torch until it loads (the table jobs that name it start fast)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class RunInputs:
    """What a job reads a run's data from: its data table (a parquet of the corrupt_data or
    atypical_data job), the dataset and where it comes from (DataSource fields), how many test
    examples it is measured on, and the table's column that splits the examples in two groups."""

    table: str | os.PathLike
    dataset: str
    source: dict  # DataSource fields
    test_subset: int | None  # the first N of the test split; None: all
    group_column: str  # e.g. is_noisy (clean / noisy) or is_atypical (typical / atypical)

    def read_table(self) -> pd.DataFrame:
        return pd.read_parquet(self.table)

    def split(self, train: bool):
        """The dataset's training or test split, in memory (memloc.core.data.builtin.ImageData)."""
        from memloc.core.data.source import DataSource

        return DataSource(**self.source).load(self.dataset, train=train)

    def training_set(self):
        """The data table's examples, in its order (memloc.core.data.run_data.TrainingSet)."""
        from memloc.core.data.run_data import training_set

        return training_set(self.read_table(), self.split(train=True), self.group_column)

    def load(self):
        """The training set and the test images and labels (the first test_subset of the test split):
        memloc.core.data.run_data.RunData."""
        from memloc.core.data.run_data import RunData

        trainset = self.training_set()
        test = self.split(train=False)
        n_test = len(test) if self.test_subset is None else min(self.test_subset, len(test))
        return RunData(trainset, test.images[:n_test], test.labels[:n_test])
