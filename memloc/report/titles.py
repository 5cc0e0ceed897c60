"""The names figures and tables show for datasets, models, dropout methods and classes.

Kept apart from memloc.report.plots so that a plan (which builds titles and scale text
while Snakemake parses the DAG) imports no plotting library."""

from __future__ import annotations

DATASET_TITLES = {"cifar10": "CIFAR-10", "mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "svhn": "SVHN"}
MODEL_TITLES = {"resnet9": "ResNet-9", "resnet50": "ResNet-50", "vit_small": "ViT-small"}
# The three methods of tab3 (the example-tied dropout study), formatted with p_gen, p_mem.
METHOD_TITLES = {
    "standard": "Standard dropout (p = {p_gen:g})",
    "fixed_sparse": "Sparse network (s = {p_gen:g})",
    "example_tied": "Example-tied (p_gen = {p_gen:g}, p_mem = {p_mem:g})",
}
# Class names by label, for the captions of fig07 (other datasets show the label number).
CLASS_NAMES = {
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
}


def dataset_title(dataset: str) -> str:
    return DATASET_TITLES.get(dataset, dataset)


def model_title(model: str) -> str:
    return MODEL_TITLES.get(model, model)


def run_title(dataset: str, model: str, noise: float | None = None) -> str:
    parts = [model_title(model), dataset_title(dataset)]
    if noise is not None:
        parts.append(f"{noise:.0%} label noise")
    return ", ".join(parts)
