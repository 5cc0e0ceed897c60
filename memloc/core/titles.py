"""The names figures and tables show for datasets, models and classes (plans build titles and
scale text from them while Snakemake parses the DAG; memloc.report draws them)."""

from __future__ import annotations

DATASET_TITLES = {"cifar10": "CIFAR-10", "mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "svhn": "SVHN"}
MODEL_TITLES = {"resnet9": "ResNet-9", "resnet50": "ResNet-50", "vit_small": "ViT-small"}
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
