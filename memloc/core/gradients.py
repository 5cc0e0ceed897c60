"""Gradient accounting (Sec. 4 and App. A of the paper).

For a batch B split into two groups (e.g. clean / noisy, or typical / atypical) the mean
loss is split as

    L = (1/|B|) sum_{i in A} l_i  +  (1/|B|) sum_{i in G} l_i  =  L_A + L_G,

so the two group gradients add up to the gradient the optimizer uses (App. A.2: the
contributions are *not* normalised by group size).  Two backward passes through one
forward graph give g_A and g_G; the step uses g_A + g_G.  Per layer l we accumulate, on
the device and without per-batch CPU copies,

    ||g_A,l|| / sqrt(P_l),  ||g_G,l|| / sqrt(P_l),  ||g_A,l + g_G,l|| / sqrt(P_l),
    cos(g_A,l, g_G,l),

averaged over the batches of an epoch.
"""

from __future__ import annotations

import torch
from torch import nn

from memloc.core.models import model_layers

STATISTICS = ("norm_a", "norm_b", "norm_total", "cosine")


class GradientAccountant:
    """Splits each batch's gradient into two groups and accumulates per-layer statistics."""

    def __init__(self, model: nn.Module, device: torch.device):
        self.params = [p for p in model.parameters() if p.requires_grad]
        layers = model_layers(model)
        owner = {id(p): i for i, layer in enumerate(layers) for p in layer.parameters()}
        self.layer_of_param = torch.tensor([owner[id(p)] for p in self.params], device=device)
        self.num_layers = len(layers)
        self.layer_names = [layer.name for layer in layers]
        self.layer_numel = torch.zeros(self.num_layers, device=device).index_add_(
            0, self.layer_of_param, torch.tensor([float(p.numel()) for p in self.params], device=device)
        )
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(len(STATISTICS), self.num_layers, device=self.layer_numel.device)
        self.batches = 0

    def _per_layer(self, per_param: list[torch.Tensor]) -> torch.Tensor:
        """Sum per-parameter scalars into their layers: [P] -> [L]."""
        return torch.zeros(self.num_layers, device=self.layer_numel.device).index_add_(
            0, self.layer_of_param, torch.stack(per_param).float()
        )

    def backward(self, per_example_loss: torch.Tensor, in_group: torch.Tensor) -> torch.Tensor:
        """Two backward passes; sets p.grad = g_A + g_G, accumulates the statistics.

        per_example_loss: [B] with a graph; in_group: [B] bool (True = group G).
        Returns the batch's mean loss (detached).
        """
        b = per_example_loss.shape[0]
        weight_g = in_group.float() / b
        loss_g = (per_example_loss * weight_g).sum()
        loss_a = (per_example_loss * (1.0 / b - weight_g)).sum()
        grads_a = torch.autograd.grad(loss_a, self.params, retain_graph=True)
        grads_g = torch.autograd.grad(loss_g, self.params)
        grads_total = torch._foreach_add(grads_a, grads_g)  # what the optimizer steps on
        # squared norms per layer; one fused call per group instead of a kernel per tensor
        sq_a, sq_g, sq_total = (self._per_layer([n.square() for n in torch._foreach_norm(gs)])
                                for gs in (grads_a, grads_g, grads_total))
        dot = (sq_total - sq_a - sq_g) / 2  # <g_A, g_G> from |g_A + g_G|^2
        root_n = self.layer_numel.sqrt()
        cosine = dot / (sq_a.sqrt() * sq_g.sqrt()).clamp_min(1e-30)
        self.sums += torch.stack([sq_a.sqrt() / root_n, sq_g.sqrt() / root_n, sq_total.sqrt() / root_n, cosine])
        self.batches += 1
        for p, total in zip(self.params, grads_total):
            p.grad = total
        return (loss_a + loss_g).detach()

    def epoch_statistics(self) -> torch.Tensor:
        """[4, L] means over the epoch's batches (rows: STATISTICS), on the CPU."""
        return (self.sums / max(self.batches, 1)).cpu()
