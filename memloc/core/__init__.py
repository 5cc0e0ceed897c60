"""The shared machinery every experiment builds on: data (label noise, subsets), blocks and
models (with their partition into layers), the example-tied dropout layer, the SGD loop,
training with per-epoch checkpoints and gradient accounting, evaluation, and the path
templates of results/.  Imports no experiment package and no planning.
"""
