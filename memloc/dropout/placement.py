"""Where the dropout layers of memloc.dropout.tied go: `add_dropout`.

ResNet-9 (the built-in nn.Sequential of ConvBN blocks) is rebuilt as an
`ExampleIndexedSequential`, its blocks with dropout layers between them where
`DropoutConfig.placement` says (layers numbered as in `model_layers`, so a position has the
same units in both placements):

- ``stages`` (the authors' code, 6 layers): after layers 1, 2, 4 (the first residual
  block, after the skip addition), 5 (before the max-pool), 7 (the second residual block,
  after the addition) and 8; none inside a residual body;
- ``blocks`` (8 layers): after every ConvBN block; in a residual block the dropout of the
  body's second block is moved after the skip addition, so the skip path cannot carry
  memorization units past it, and the body's first block keeps its own.

Any other model keeps its modules (and its state_dict keys: the layers hold no parameters or
buffers, so checkpoints load as before): a forward hook on each named module passes that
module's output through a dropout layer the module holds (memloc.core.example_index.HELD).  Which
modules (dotted names of `named_modules`): the model's attribute `memloc_dropout_after`
(memloc.core.models.build.build_model sets it from model_definitions.<name>.dropout_after), else
the last module of each layer of `model_layers` but the last (`default_after`; none after
a bare conv / Linear layer whose next layer is its norm: the one after the norm acts on the
same units).  The layers number 1, 2, ... in that order (the hash of the unit choice takes
the number).

Never after the last layer, the classifier: its outputs are the class logits, and dropping a
logit removes a class rather than a feature.  Note that a dropout inside a residual body
leaves the skip path free to carry the memorization units around it (ResNet-9's `blocks`
placement moves that one after the addition; name the residual block to do the same).

The units of a module's output are its dim 1 for conv outputs [B, C, H, W] and linear
outputs [B, F], its last dim for token outputs [B, T, D].  Their number is read off the
module (Conv out_channels, BatchNorm / GroupNorm channels, Linear out_features, LayerNorm
size, or a Sequential's last such module when only shape-keeping modules follow it), else
from a forward pass of a dummy input of the model's input shape on the meta device.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn

from memloc.core.example_index import HELD, example_index, held_layer, index_mode
from memloc.core.models.blocks import ConvBN, Residual
from memloc.core.models.layer_rule import model_layers, named_modules_or_error
from memloc.dropout.tied import DropoutConfig, ExampleTiedDropout, FixedSparseDropout

# Modules whose output has the units of their input (what may follow a Sequential's last
# unit-defining module without changing the count).
_SHAPE_KEEPING = (nn.ReLU, nn.GELU, nn.SiLU, nn.LeakyReLU, nn.ELU, nn.Tanh, nn.Sigmoid, nn.Hardswish, nn.Identity,
                  nn.Dropout, nn.Dropout2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


_WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear)
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def make_dropout(cfg: DropoutConfig, units: int, layer: int, dim: int = 1, after: str | None = None) -> nn.Module:
    """The dropout layer of `cfg.kind` for `units` units; `layer` numbers it (its unit choice)."""
    if cfg.kind == "example_tied":
        return ExampleTiedDropout(units, cfg, layer, dim=dim, after=after)
    if cfg.kind == "fixed_sparse":
        return FixedSparseDropout(units, cfg.p_gen, layer, cfg.seed)
    return nn.Dropout(cfg.p_gen)


# -- ResNet-9 ---------------------------------------------------------------------------


class ExampleIndexedSequential(nn.Sequential):
    """nn.Sequential whose forward takes the batch's example indices: model(x, index)
    (`takes_example_index` is what `forward_with_index` looks for).  Every example-tied
    dropout gets them, wherever it sits (after a residual sum too)."""

    takes_example_index = True

    def forward(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        with example_index(self, index):
            return super().forward(x)


def _insert(seq: nn.Sequential, cfg: DropoutConfig, layer_numbers, top: bool = True) -> list[nn.Module]:
    """`seq`'s modules with a dropout after each ConvBN block ("blocks"), or after each
    top-level ConvBN and residual block ("stages"); a residual block's dropout goes after
    the skip addition and carries the number of its body's last block."""
    out: list[nn.Module] = []
    for m in seq:
        if isinstance(m, ConvBN):
            number = next(layer_numbers)  # count every block, so that numbers follow model_layers
            out.append(m)
            if top or cfg.placement == "blocks":
                out.append(make_dropout(cfg, m[0].out_channels, number))
        elif isinstance(m, Residual) and isinstance(m.body, nn.Sequential) and isinstance(m.body[-1], ConvBN):
            body = _insert(m.body[:-1], cfg, layer_numbers, top=False) + [m.body[-1]]
            last = m.body[-1]
            out += [Residual(nn.Sequential(*body)), make_dropout(cfg, last[0].out_channels, next(layer_numbers))]
        else:
            out.append(m)
    return out


def is_resnet9(model: nn.Module) -> bool:
    return isinstance(model, nn.Sequential) and any(isinstance(m, ConvBN) for m in model)


# -- any model --------------------------------------------------------------------------


def default_after(model: nn.Module) -> list[str]:
    """The last module of each layer of `model_layers` but the last (the classifier); a
    conv / Linear layer whose next layer starts with a norm (a model's top-level conv1, bn1)
    gets none: the dropout after the norm acts on the same units."""
    names = {id(m): n for n, m in model.named_modules()}
    layers = model_layers(model)
    out = []
    for layer, after in zip(layers[:-1], layers[1:]):
        own = [m for m in layer.modules if id(m) in names]
        if not own:
            raise ValueError(f"layer {layer.name!r} of {type(model).__name__} has no module to put dropout after")
        if not (isinstance(own[-1], _WEIGHTED) and after.modules and isinstance(after.modules[0], _NORMS)):
            out.append(names[id(own[-1])])
    return out


def units_of(module: nn.Module) -> tuple[int, int] | None:
    """(number of units, their dim) of the module's output, read off the module, or None."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.out_channels, 1
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return module.num_features, 1
    if isinstance(module, nn.GroupNorm):
        return module.num_channels, 1
    if isinstance(module, nn.Linear):
        return module.out_features, -1
    if isinstance(module, nn.LayerNorm):
        return module.normalized_shape[-1], -1
    if isinstance(module, nn.Sequential):
        for child in reversed(module):
            found = units_of(child)
            if found is not None or not isinstance(child, _SHAPE_KEEPING):
                return found
    return None


def output_shapes(model: nn.Module, names: list[str], input_shape: tuple[int, ...]) -> dict[str, tuple]:
    """{name: shape of the named module's output} in a forward pass of a dummy batch of 2
    inputs of `input_shape` ([C, H, W]) through a copy of `model` on the meta device (no
    computation, no change to the model)."""
    meta = copy.deepcopy(model).to("meta").eval()
    modules = dict(meta.named_modules())
    shapes: dict[str, tuple] = {}

    def record(name):
        def hook(mod, inputs, out) -> None:  # (returns None: the output is left as it is)
            shapes.setdefault(name, tuple(out.shape) if torch.is_tensor(out) else None)

        return hook

    hooks = [modules[n].register_forward_hook(record(n)) for n in names]
    try:
        with torch.no_grad(), index_mode(meta, "all"):  # (dropout layers it has already need no indices)
            meta(torch.empty(2, *input_shape, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return shapes


def _units(name: str, module: nn.Module, shape: tuple | None, measured: bool) -> tuple[int, int]:
    """(units, dim) after `module`, from its output shape (None: not a tensor, or not
    `measured` by a meta pass) and the module itself; an error naming the module when
    neither tells."""
    structural = units_of(module)
    if shape is None:
        if structural is None:
            raise ValueError(f"cannot tell the units of module {name!r} ({type(module).__name__}) to put dropout "
                             f"after: " + ("its output is not one tensor" if measured else
                                           "not a conv / norm / linear layer (or a Sequential ending in "
                                           "one), and no forward pass of the model's input shape measured it"))
        return structural
    if len(shape) < 2:
        raise ValueError(f"cannot put dropout after module {name!r}: its output has shape {shape}, no unit dim")
    if structural is not None and shape[structural[1]] == structural[0]:
        return structural
    return (shape[-1], -1) if len(shape) == 3 else (shape[1], 1)  # tokens [B, T, D]: D; else dim 1


def add_dropout_after(model: nn.Module, cfg: DropoutConfig, names: list[str],
                      input_shape: tuple[int, ...] | None = None) -> nn.Module:
    """`model` itself, with a dropout layer acting on the output of each named module
    (module docstring); input_shape ([C, H, W]) lets the units be measured."""
    if not names:
        raise ValueError("dropout_after: the list of module names to put dropout after is empty")
    modules = dict(zip(names, named_modules_or_error(model, names, "dropout_after")))
    if len(set(names)) < len(names) or any(held_layer(modules[n]) is not None for n in names):
        raise ValueError(f"dropout_after: a module gets two dropout layers ({names})")
    shapes: dict[str, tuple] | None = None  # None: not measured
    if input_shape is not None:
        try:
            shapes = output_shapes(model, names, input_shape)
        except Exception as e:  # a model the meta device cannot run: read the units off the modules
            if any(units_of(modules[n]) is None for n in names):
                raise ValueError(f"cannot tell the units of the modules to put dropout after: a forward pass of "
                                 f"input shape {tuple(input_shape)} on the meta device failed ({e})") from e
    silent = [n for n in names if shapes is not None and n not in shapes]
    if silent:
        raise ValueError(f"dropout_after: module(s) {silent} are not called in {type(model).__name__}'s forward")
    for number, name in enumerate(names, 1):
        units, dim = _units(name, modules[name], (shapes or {}).get(name), shapes is not None)
        modules[name].__dict__[HELD] = make_dropout(cfg, units, number, dim, after=name)
        modules[name].register_forward_hook(_apply_held_dropout)
    return model


def _apply_held_dropout(module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
    layer = module.__dict__[HELD]
    layer.training = module.training  # nn.Dropout follows model.train() / eval()
    return layer(output)


def add_dropout(model: nn.Module, cfg: DropoutConfig | dict, input_shape: tuple[int, ...] | None = None) -> nn.Module:
    """`model` with dropout layers (module docstring): ResNet-9 rebuilt with them where
    `cfg.placement` puts them (sharing the given model's modules), any other model (or a
    ResNet-9 with `memloc_dropout_after`) with hooks after its named modules."""
    cfg = cfg if isinstance(cfg, DropoutConfig) else DropoutConfig(**cfg)
    after = getattr(model, "memloc_dropout_after", None)
    if after is None and is_resnet9(model):
        return ExampleIndexedSequential(*_insert(model, cfg, itertools.count(1)))
    return add_dropout_after(model, cfg, list(after) if after is not None else default_after(model), input_shape)
