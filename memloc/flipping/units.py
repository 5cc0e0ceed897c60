"""Which units neuron flipping may zero, for any model: derived from the module tree, or named.

Sec. 6.1 of the paper zeroes "a complete channel" of a convolution layer and "a single
weight" of a linear layer, and zeroes "the activation before propagating to the next
layer" (the layer's z_l, Sec. 3: after its normalization and nonlinearity).  So:

- *Conv blocks*: a Conv1d/2d/3d and the modules registered right after it in the same
  parent that are a normalization and/or an activation (at most one of each, in either
  order; nn.Identity and dropout, identities in eval mode, may sit between) form a block;
  its units are the conv's output channels, masked on the output of the block's last
  module.  A block that is the whole of an nn.Sequential (ResNet-9's ConvBN) is masked on
  the container's output (the same tensor).  A conv with no such modules: its own output.
- *Hidden Linear layers*: the same rule; their units are output features (the last
  dimension), masked after their norm/activation.
- *The final classifier* (the model's last Conv/Linear, when it is an nn.Linear): its
  single weights, as the paper ("in the case of linear layers, we zero-out a single
  weight") and ResNet-9's search do; zeroing one of its output features would zero a
  logit, a trivial flip.  The paper's models have no other Linear; for hidden ones the
  issue's "features" (the paper's neurons [z_l]_j, Sec. 3) keep the candidates few.

Registration order stands in for data flow here.  An activation applied functionally
(F.relu in forward) is not in the module tree: the mask then scales the pre-activation
output (conv/BN output), which for ReLU is the same thing: ReLU(m z) = m ReLU(z) for a mask
m in {0, 1} (positive homogeneity), and d/dm ReLU(m z) at m = 1 is z 1[z > 0] = ReLU(z), the
derivative of m ReLU(z); the same values and scores.  For GELU, SiLU etc. it is not: name
the modules (below).  A module run twice per forward (one `self.relu` shared by several
layers, as in torchvision's ResNets) cannot carry one unit's mask: `check_units` detects it.

Override: a model attribute `memloc_flip_modules` (dotted module names; build_model sets
it from config `model_definitions.<name>.flip_modules`).  A named Conv/Linear counts with
its derived block; any other named module (a container such as a ConvBN, a BatchNorm) is
masked on its own output, its units those of the last Conv/Linear inside it, else of the
last one registered before it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from memloc.core.models.layer_rule import model_layers, named_modules_or_error

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm1d,
         nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LocalResponseNorm)
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
               nn.Hardswish, nn.Hardtanh, nn.Tanh, nn.Sigmoid, nn.Softplus)
PASSING = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)  # identities in eval mode
OVERRIDE = "memloc_flip_modules"
OVERRIDE_KEY = "memloc_flip_modules (config model_definitions.<model>.flip_modules)"


@dataclass
class Unit:
    """The candidates of one module: the output channels of a conv block, the output
    features of a hidden Linear's block, or the weights of the final Linear."""

    layer: str  # memloc.core.models.layer_rule.model_layers name (else the conv/Linear's dotted name)
    module: nn.Module  # the module whose output (channel/feature) or weight (weight) the mask scales
    kind: str  # "channel" (dim 1) | "feature" (last dim) | "weight"
    shape: tuple[int, ...]  # mask shape of one example: (channels,), (features,) or (out, in)
    offset: int = 0  # position of its first candidate in the model's flat candidate list
    name: str = ""  # dotted name of `module` in the model (to find it in a copy)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


def _heads(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every Conv and Linear the model calls as a module, in registration
    order (a MultiheadAttention uses its out_proj's weights functionally: never a unit)."""
    hidden = {id(m.out_proj) for m in model.modules() if isinstance(m, nn.MultiheadAttention)}
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (*CONVS, nn.Linear)) and id(m) not in hidden]


def _block_output(model: nn.Module, name: str) -> str:
    """The dotted name of the module whose output is head `name`'s block output."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    children = list(parent.named_children())
    i = [n for n, _ in children].index(child)
    last, seen_norm, seen_act = i, False, False
    for j in range(i + 1, len(children)):
        m = children[j][1]
        if isinstance(m, NORMS) and not seen_norm:
            seen_norm, last = True, j
        elif isinstance(m, ACTIVATIONS) and not seen_act:
            seen_act, last = True, j
        elif not isinstance(m, PASSING):
            break
    if isinstance(parent, nn.Sequential) and parent_name and i == 0 and last == len(children) - 1:
        return parent_name  # the block is the whole container (ResNet-9's ConvBN)
    return ".".join(filter(None, [parent_name, children[last][0]]))


def _layer_names(model: nn.Module) -> dict[int, str]:
    """id(module) -> its model_layers layer, for every module inside a layer ({} when the
    model has no layer rule)."""
    try:
        layers = model_layers(model)
    except (ValueError, AssertionError):
        return {}
    return {id(m): layer.name for layer in layers for top in layer.modules for m in top.modules()}


def candidate_units(model: nn.Module) -> list[Unit]:
    """The model's candidate units in registration order (forward order for the paper's
    models), with their flat offsets; see the module docstring for the rule and override."""
    heads = _heads(model)
    final = heads[-1][1] if heads and isinstance(heads[-1][1], nn.Linear) else None
    override = getattr(model, OVERRIDE, None)

    def block(name, head):  # the classifier's weights, never its logits
        return name if head is final else _block_output(model, name)

    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    if override is None:
        chosen = [(name, head, block(name, head)) for name, head in heads]
    else:
        chosen = []
        names = list(override)
        for name, module in zip(names, named_modules_or_error(model, names, OVERRIDE_KEY)):
            if isinstance(module, (*CONVS, nn.Linear)):
                chosen.append((name, module, block(name, module)))
                continue
            inner = [m for m in module.modules() if isinstance(m, (*CONVS, nn.Linear))]
            before = [m for n, m in heads if order[n] < order[name]]
            if not inner and not before:
                raise ValueError(f"{OVERRIDE_KEY}: {name!r} ({type(module).__name__}) holds no Conv or Linear "
                                 f"and follows none: its units are unknown")
            chosen.append((name, (inner or before)[-1], name))
    modules, layer_of = dict(model.named_modules()), _layer_names(model)
    head_name = {id(m): n for n, m in model.named_modules()}
    units, offset = [], 0
    for _, head, out_name in chosen:
        if head is final and modules[out_name] is head:
            kind, shape = "weight", tuple(head.weight.shape)
        elif isinstance(head, nn.Linear):
            kind, shape = "feature", (head.out_features,)
        else:
            kind, shape = "channel", (head.out_channels,)
        layer = layer_of.get(id(head), head_name[id(head)])
        units.append(Unit(layer, modules[out_name], kind, shape, offset, out_name))
        offset += units[-1].size
    if not units:
        raise ValueError(f"{type(model).__name__} has no Conv or Linear module: no units to flip")
    return units


def units_in(model: nn.Module, units: list[Unit]) -> list[Unit]:
    """The same units bound to the same-named modules of `model` (a copy of theirs)."""
    modules = dict(model.named_modules())
    return [Unit(u.layer, modules[u.name], u.kind, u.shape, u.offset, u.name) for u in units]


@torch.no_grad()
def check_units(model: nn.Module, units: list[Unit], x: torch.Tensor) -> None:
    """One forward pass of x (a row or a few): every unit's module runs exactly once and
    its output (or weight) has the unit's shape; else a clear error naming the module."""
    calls: dict[int, list] = {id(u.module): [] for u in units}
    handles = [u.module.register_forward_hook(lambda m, i, out: calls[id(m)].append(out)) for u in units]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    for u in units:
        outs = calls[id(u.module)]
        if len(outs) != 1:
            raise ValueError(f"flipping unit {u.name!r} ({type(u.module).__name__}) runs {len(outs)} times per forward "
                             f"pass, not once (a module shared by several layers, or not called as a module); "
                             f"name the modules to flip in {OVERRIDE_KEY}")
        out = outs[0]
        if u.kind == "weight":
            fits = out.ndim == 2  # one weight matrix per owner: [rows, in] inputs
        else:
            fits = out.ndim >= 2 and out.shape[1 if u.kind == "channel" else -1] == u.shape[0]
        if not fits:
            raise ValueError(f"flipping unit {u.name!r}: its output {tuple(out.shape)} does not fit its {u.kind} "
                             f"mask {u.shape}; name the modules to flip in {OVERRIDE_KEY}")
