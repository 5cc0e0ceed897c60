"""How many input rows one pass of the batched search may hold: a memory budget.

What a masked forward + backward pass keeps alive is, above all, the tensors autograd
saves for the backward pass; they grow linearly with the rows of the pass.  So the bytes
per row are measured on the model itself, at the job's precision and device, with
torch.autograd.graph.saved_tensors_hooks (unique storages: views and a tensor saved twice
count once): two masked passes of the example term (1 and 2 owners x noise_copies rows)
give the slope (bytes per row, per-owner masks included) and the rest (the parameters the
pass saves, resident anyway).  Then

    rows = min(max_rows, floor((budget - rest) / per_row) - population rows)

where the population rows (population_batch x noise_copies) are the unmasked shared pass
memloc.flipping.population keeps while it runs the masked chunks, and the budget is
`memory_gb` when set, else the free CUDA memory x CUDA_SAFETY; with neither (a CPU job and
no memory_gb) max_rows alone bounds a pass.  The row budget only chunks the owners of a
pass (memloc.flipping.masks.owner_chunks): results do not depend on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from memloc.core.train.evaluation import prepare_batch
from memloc.flipping.masks import full_masks, mask_gradients
from memloc.flipping.objective import FlipConfig, FlippingProblem, noisy_copies

CUDA_SAFETY = 0.75  # share of the free CUDA memory a job's passes may fill (the rest: allocator slack, transients)
GIB = 2**30


class SavedBytes:
    """Inside `with SavedBytes() as s:`, s.total counts the bytes of the distinct storages
    autograd saves for backward.  For one pass that is what it holds at the end of its
    forward (all it saves lives until its backward); over several passes, the sum of theirs
    (an upper bound of their peak: the storages are kept until the block ends, so that no
    address is reused and counted once)."""

    def __init__(self):
        self.storages: dict[int, int] = {}
        self._alive: list = []
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in self.storages:
            self.storages[s.data_ptr()] = s.nbytes()
            self._alive.append(s)
        return t

    @property
    def total(self) -> int:
        return sum(self.storages.values())

    def __enter__(self) -> SavedBytes:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)
        self._alive.clear()


@dataclass
class RowCost:
    per_row: float  # saved bytes per input row of a masked forward + backward pass
    rest: int  # saved bytes that do not grow with the rows (parameters)


def pass_saved_bytes(model, units, x: torch.Tensor, labels: torch.Tensor, rows: int, copies: int) -> int:
    """Saved bytes of one masked forward + backward pass (memloc.flipping.masks.mask_gradients)
    over x [owners * rows, ...] with all-ones masks."""
    masks = full_masks(units, len(x) // rows, x.device, x.dtype)
    with SavedBytes() as saved:
        mask_gradients(model, units, masks, x, labels, rows, copies)
    return saved.total


def row_cost(problem: FlippingProblem) -> RowCost:
    """The saved bytes of the example term's masked pass per row, measured on training row 0
    (1 and 2 owners of noise_copies rows each; the shapes, not the values, matter)."""
    p, K = problem, problem.cfg.noise_copies
    x = noisy_copies(prepare_batch(p.data.images[:1], p.device).to(p.dtype), [0], 0, p.cfg)
    y = p.data.labels[:1].to(p.device)
    one = pass_saved_bytes(p.model, p.units, x, y, K, K)
    two = pass_saved_bytes(p.model, p.units, x.repeat(2, *([1] * (x.ndim - 1))), y.repeat(2), K, K)
    per_row = max(two - one, 1) / K
    return RowCost(per_row, max(0, int(one - K * per_row)))


def memory_budget(memory_gb: float | None, device: torch.device) -> int | None:
    """Bytes a pass may save: memory_gb when set, else CUDA_SAFETY of the device's free CUDA
    memory, else (CPU) None: no cap."""
    if memory_gb is not None:
        return int(memory_gb * GIB)
    if torch.device(device).type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0] * CUDA_SAFETY)
    return None


def budget_rows(cost: RowCost, budget: int, cfg: FlipConfig) -> int:
    """Rows per pass within `budget` bytes, beside the population term's shared pass; a
    clear error when not even one owner's rows fit."""
    population = cfg.population_batch * cfg.noise_copies
    rows = math.floor((budget - cost.rest) / cost.per_row) - population
    if rows < population:
        need = cost.rest + 2 * population * cost.per_row
        raise ValueError(f"flipping.memory_gb: {budget / GIB:.3g} GiB holds {max(rows, 0)} rows of "
                         f"{cost.per_row / 2**20:.3g} MiB per pass beside the population pass, fewer than one "
                         f"population state (population_batch x noise_copies = {population} rows); give at least "
                         f"{need / GIB:.3g} GiB or lower flipping.population_batch")
    return min(cfg.max_rows, rows)


def row_budget(problem: FlippingProblem) -> int:
    """max_rows, or fewer where the memory budget (memory_gb / free CUDA memory) says so."""
    budget = memory_budget(problem.cfg.memory_gb, problem.device)
    if budget is None:
        return problem.cfg.max_rows
    return budget_rows(row_cost(problem), budget, problem.cfg)
