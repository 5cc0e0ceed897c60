"""The shared machinery every experiment builds on: data (core.data: built-in and declared
datasets, their cache, label noise, a run's tensors), models and their partition into layers
(core.models), training (core.train: settings, the one SGD loop, gradient accounting,
evaluation, checkpoints, a run's tables), the protocol of layers that read the batch's
example indices (example_index), where and how a job computes (device, job), the path
templates of results/ (paths), atomic files (files), provenance and display names (titles).
Imports no experiment package and no planning.
"""
