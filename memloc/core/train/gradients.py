"""Gradient accounting (Sec. 4 and App. A of the paper).

For a batch B split into two groups A and G (clean / noisy, or typical / atypical) the
batch's mean loss is split as

    L_B = (1/|B|) sum_{i in A} l_i  +  (1/|B|) sum_{i in G} l_i  =  L_A + L_G,

so the two group gradients add up to the gradient the optimizer uses (App. A.2: the
contributions are *not* normalised by group size).  Two backward passes through one
forward graph give g_A and g_G; the step uses g_A + g_G.

Per epoch (what the paper measures, Sec. 4.1): each group's gradient is accumulated over
ALL batches of the epoch, on the device (one `_foreach_add_` per group and batch into
per-parameter buffers; no CPU copy until the epoch ends).  The epoch gradient of a group is
the *mean* over the epoch's b batches, G_A = (1/b) sum_B g_A(B), so its scale is that of one
batch's gradient (the authors' code sums, without the 1/b: ratios and cosines are the same,
absolute norms are b times smaller here).  G_A + G_G = G_total exactly, as per batch.  Per
layer l with P_l parameters (the layer's tensors concatenated into one vector):

    norm_a = ||G_A,l|| / sqrt(P_l),  norm_b = ||G_G,l|| / sqrt(P_l),
    norm_total = ||G_A,l + G_G,l|| / sqrt(P_l),  cosine = cos(G_A,l, G_G,l).

Incoherent per-batch parts cancel in these sums, which is why the total can be smaller than
both groups (the paper's Fig. 1).  The per-batch statistics are kept as extra rows for
comparison (they cost three fused norms per batch): batch_norm_* is the mean over the epoch's
batches of ||g_l|| / sqrt(P_l) (a batch without a group's example counts 0 for that group:
its contribution to the step is 0), and batch_cosine the mean per-batch cosine over the
batches that contain both groups only (NaN when none does).
"""

from __future__ import annotations

import torch
from torch import nn

from memloc.core.models.layer_rule import model_layers

EPOCH_STATISTICS = ("norm_a", "norm_b", "norm_total", "cosine")  # of the epoch gradients
BATCH_STATISTICS = tuple(f"batch_{name}" for name in EPOCH_STATISTICS)  # means of per-batch values
STATISTICS = EPOCH_STATISTICS + BATCH_STATISTICS


class GradientAccountant:
    """Splits each batch's gradient into two groups; accumulates each group's epoch gradient
    (per parameter) and the per-batch statistics (per layer) on `device`."""

    def __init__(self, model: nn.Module, device: torch.device):
        self.params = [p for p in model.parameters() if p.requires_grad]
        layers = model_layers(model)
        owner = {id(p): i for i, layer in enumerate(layers) for p in layer.parameters()}
        self.layer_of_param = torch.tensor([owner[id(p)] for p in self.params], device=device)
        self.num_layers = len(layers)
        self.layer_names = [layer.name for layer in layers]
        numel = torch.tensor([float(p.numel()) for p in self.params], device=device)
        self.root_numel = self._per_layer(numel).sqrt()  # [L] sqrt(P_l)
        # the epoch's running sums of each group's gradient, one buffer per parameter tensor
        self.sum_a = [torch.zeros_like(p) for p in self.params]
        self.sum_g = [torch.zeros_like(p) for p in self.params]
        self.reset()

    def reset(self) -> None:
        """Start an epoch."""
        torch._foreach_zero_(self.sum_a)
        torch._foreach_zero_(self.sum_g)
        device = self.root_numel.device
        self.batch_sums = torch.zeros(len(BATCH_STATISTICS), self.num_layers, device=device)
        self.both_groups = torch.zeros((), device=device)  # batches holding examples of both groups
        self.batches = 0

    def _per_layer(self, per_param: torch.Tensor) -> torch.Tensor:
        """Sum per-parameter-tensor scalars into their layers: [P] -> [L]."""
        out = torch.zeros(self.num_layers, dtype=per_param.dtype, device=per_param.device)
        return out.index_add_(0, self.layer_of_param, per_param)

    def _squared_norms(self, tensors) -> torch.Tensor:
        """[L] squared L2 norm of each layer's tensors concatenated (one fused norm call)."""
        return self._per_layer(torch.stack(torch._foreach_norm(tensors)).square())

    def backward(self, per_example_loss: torch.Tensor, in_group: torch.Tensor, loss_scale: float = 1.0) -> torch.Tensor:
        """Two backward passes; sets p.grad = g_A + g_G and accumulates.

        per_example_loss: [B] with a graph; in_group: [B] bool (True = group G).
        loss_scale: the factor fp16 training's GradScaler multiplied per_example_loss by: p.grad
        keeps it (GradScaler.step unscales it), the accounted gradients do not, and a batch whose
        scaled gradients overflowed (GradScaler skips its step) is not accounted.
        Returns the batch's mean loss (detached, unscaled).
        """
        b = per_example_loss.shape[0]
        weight_g = in_group.float() / b  # App. A.2: 1/|B| for both groups, so L_A + L_G = L_B
        loss_g = (per_example_loss * weight_g).sum()
        loss_a = (per_example_loss * (1.0 / b - weight_g)).sum()
        grads_a = torch.autograd.grad(loss_a, self.params, retain_graph=True)
        grads_g = torch.autograd.grad(loss_g, self.params)
        grads_total = torch._foreach_add(grads_a, grads_g)  # what the optimizer steps on
        for p, total in zip(self.params, grads_total):
            p.grad = total
        if loss_scale != 1.0:
            grads_a, grads_g = torch._foreach_div(grads_a, loss_scale), torch._foreach_div(grads_g, loss_scale)
            grads_total = torch._foreach_add(grads_a, grads_g)
            if not torch.stack(torch._foreach_norm(grads_total)).isfinite().all():  # a host sync, as GradScaler's
                return (loss_a + loss_g).detach() / loss_scale
        torch._foreach_add_(self.sum_a, grads_a)
        torch._foreach_add_(self.sum_g, grads_g)
        self._add_batch_statistics(grads_a, grads_g, grads_total, in_group)
        return (loss_a + loss_g).detach() / loss_scale

    def _add_batch_statistics(self, grads_a, grads_g, grads_total, in_group: torch.Tensor) -> None:
        """Per-batch norms and cosine into the running sums, without a host sync."""
        sq_a, sq_g, sq_total = (self._squared_norms(gs) for gs in (grads_a, grads_g, grads_total))
        dot = (sq_total - sq_a - sq_g) / 2  # <g_A, g_G> from ||g_A + g_G||^2
        cosine = dot / (sq_a.sqrt() * sq_g.sqrt()).clamp_min(1e-30)
        both = (in_group.any() & (~in_group).any()).float()  # a one-group batch has no cosine
        norms = torch.stack([sq_a, sq_g, sq_total]).sqrt() / self.root_numel
        self.batch_sums += torch.cat([norms, (cosine * both)[None]]).float()
        self.both_groups += both
        self.batches += 1

    def epoch_gradients(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Each group's epoch gradient per parameter tensor: the mean over the epoch's batches."""
        n = max(self.batches, 1)
        return torch._foreach_div(self.sum_a, n), torch._foreach_div(self.sum_g, n)

    def epoch_statistics(self) -> dict[str, torch.Tensor]:
        """{statistic: [L] per layer} (names: STATISTICS), on the CPU: the epoch's only host
        copies."""
        mean_a, mean_g = self.epoch_gradients()
        sq_a, sq_g = self._squared_norms(mean_a), self._squared_norms(mean_g)
        sq_total = self._squared_norms(torch._foreach_add(mean_a, mean_g))
        dot = self._per_layer(torch.stack([(a * g).sum() for a, g in zip(mean_a, mean_g)]))
        epoch = torch.stack([
            sq_a.sqrt() / self.root_numel,
            sq_g.sqrt() / self.root_numel,
            sq_total.sqrt() / self.root_numel,
            dot / (sq_a.sqrt() * sq_g.sqrt()),  # NaN when a group had no example all epoch
        ])
        batch = self.batch_sums / max(self.batches, 1)
        batch[3] = self.batch_sums[3] / self.both_groups  # over the batches with both groups only
        return {**dict(zip(EPOCH_STATISTICS, epoch.cpu())), **dict(zip(BATCH_STATISTICS, batch.cpu()))}
