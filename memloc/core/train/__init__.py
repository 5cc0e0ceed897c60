"""Training: a run's settings (config), the SGD loop every training shares (sgd), gradient
accounting (gradients), per-example evaluation (evaluation), checkpoints (checkpoints), a
run trained with per-epoch checkpoints (run) and the tables assembled from them (tables)."""
