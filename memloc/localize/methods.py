"""The localization methods and their one interface.

`rank_units(method, context, examples)` -> scores [examples, candidates] (higher: more
responsible for the example's prediction of its training label), batched over the examples;
`reference=True` runs the method's plain version, one example at a time (the tests compare
them).  Each method's module cites its source and states its hyperparameters (config
localization.<method>)."""

from __future__ import annotations

import torch

from memloc.localize import (
    activations,
    hard_concrete,
    integrated_gradients,
    neuron_flipping,
    random_units,
    slimming,
    zero_out,
)
from memloc.localize.context import Context, Examples

METHODS = {
    "flipping": neuron_flipping,
    "zero_out": zero_out,
    "activations": activations,
    "integrated_gradients": integrated_gradients,
    "slimming": slimming,
    "hard_concrete": hard_concrete,
    "random": random_units,
}


def rank_units(method: str, context: Context, examples: Examples, reference: bool = False) -> torch.Tensor:
    if method not in METHODS:
        raise ValueError(f"localization.methods: unknown method {method!r}; known: {', '.join(METHODS)}")
    module = METHODS[method]
    scores = (module.rank_units_reference if reference else module.rank_units)(context, examples)
    return scores.float().to(context.device)


def top_units(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The k best-scored candidates of each row, [E, k] (ties: the first in flat order)."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    return order[:, :k]
