"""Nearest training neighbours in a trained model's penultimate features: the input of its last
Linear layer (ResNet-9's, ResNet-50's fc, the ViT's head), cosine similarity, the example
itself left out.  Whether an example's neighbours share its label says whether it sits among
its class or is an outlier of it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from memloc.core.train.evaluation import prepare_batch


def last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Linear layer: no penultimate features to take")
    return linears[-1]


@torch.no_grad()
def penultimate_features(model: nn.Module, images: torch.Tensor, device: torch.device,
                         batch_size: int = 1024) -> torch.Tensor:
    """[n, d] float32 on the CPU: the input of the model's last Linear layer, in eval mode."""
    captured = []
    hook = last_linear(model).register_forward_hook(lambda m, inputs, output: captured.append(inputs[0].float()))
    model.eval()
    try:
        for start in range(0, len(images), batch_size):
            model(prepare_batch(images[start:start + batch_size], device))
    finally:
        hook.remove()
    return torch.cat([c.flatten(1) for c in captured]).cpu()


def nearest(features: torch.Tensor, k: int, block: int = 4096) -> pd.DataFrame:
    """index, neighbours (the k most cosine-similar other rows, most similar first)."""
    f = torch.nn.functional.normalize(features.float(), dim=1)
    k = min(k, len(f) - 1)
    rows = []
    for start in range(0, len(f), block):
        sim = f[start:start + block] @ f.T
        sim[torch.arange(len(sim)), torch.arange(start, start + len(sim))] = float("-inf")
        rows.append(sim.topk(k, dim=1).indices.numpy())
    top = np.concatenate(rows) if rows else np.zeros((0, k), dtype=np.int64)
    return pd.DataFrame({"index": np.arange(len(f)), "neighbours": [r.astype(np.int64) for r in top]})
