"""A model's layers, derived from its module tree (or named), and named-module lookups.

A *layer* is the unit that gradient accounting, rewinding and retraining act on; every
parameter belongs to exactly one layer (`model_layers` checks it).

The default rule (`rule_layers`), for any nn.Module:

- the model's top-level children that hold parameters are its layers, in registration
  order (which stands in for the forward order);
- a *container of repeated blocks* -- an nn.Sequential / nn.ModuleList whose
  parameter-holding children are >= 2 *blocks* (modules whose parameters sit in
  submodules, not leaf layers such as a Conv2d or Linear) of one type -- is split into
  those blocks, and so is every module that holds such a container at any depth (a
  wrapper such as ResNet-9's residual connection, or the ViT's encoder, opens up down to
  its blocks); the rule applies again inside each part;
- parameters held directly by a module that is split (the ViT's class token and position
  embedding) join the layer just before its first part, or the model's first layer where
  there is none before: such parameters act on the input of the module;
- a layer is named by its module's dotted name (``features.0``, ``classifier``).

An MLP's Sequential of Linear layers is not split (its children are leaf layers, not
blocks), nor is a conv-BN-ReLU Sequential (its parameter-holding children differ in type).
On the built-in models the rule gives: ResNet-9, its 8 conv-BN blocks and the final Linear
(the residual bodies open up); torchvision's ResNet-50, conv1, bn1, every bottleneck block
and fc; the ViT, the embedding (patch conv + class token + position embedding), every
transformer block, the final norm and the head.  The built-in models keep their historical
names and groups (ResNet-9's layer1..layer9, ResNet-50's stem/layer1-4/fc, the ViT's
embedding/blockN/head: memloc.core.models.zoo.builtin_layers), each a union of consecutive
rule layers (tests/test_models.py).

Override: a model attribute ``memloc_layers`` (memloc.core.models.build.build_model sets it from
config ``model_definitions.<name>.layers``): a list of dotted module names, each one layer
named by itself, or {layer name: [dotted module or parameter names]}.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

OVERRIDE = "memloc_layers"
CONTAINERS = (nn.Sequential, nn.ModuleList)


@dataclass
class Layer:
    """A named group of modules; its parameters are those of its modules."""

    name: str
    modules: list[nn.Module]
    paths: list[str] = field(default_factory=list)  # dotted names of `modules` in the model ("" = the model)

    def named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for m in self.modules for n, p in m.named_parameters()]

    def parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_parameters()]

    def numel(self) -> int:
        return sum(p.numel() for p in self.parameters())


class ParamHolder(nn.Module):
    """Wraps bare parameters (the ViT's class token, position embedding) as a module, so that
    a Layer holds only modules; shares them with the model."""

    def __init__(self, **params: nn.Parameter):
        super().__init__()
        for name, p in params.items():
            self.register_parameter(name, p)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _holds_params(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def _kids(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    """(dotted name, module) of the parameter-holding children, in registration order."""
    return [(_join(prefix, n), c) for n, c in module.named_children() if _holds_params(c)]


def _is_block(module: nn.Module) -> bool:
    return any(_holds_params(c) for c in module.children())


def repeats_blocks(module: nn.Module) -> bool:
    """Whether `module` is a container of repeated blocks (module docstring)."""
    kids = [c for _, c in _kids(module, "")]
    return (isinstance(module, CONTAINERS) and len(kids) >= 2 and len({type(c) for c in kids}) == 1
            and all(_is_block(c) for c in kids))


def _splits(module: nn.Module) -> bool:
    """Whether the rule splits `module`: it is, or holds at any depth, a container of repeated blocks."""
    return any(repeats_blocks(m) for m in module.modules())


def _bare(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    """The parameters `module` holds directly, each as a ParamHolder with its dotted name."""
    return [(_join(prefix, n), ParamHolder(**{n: p})) for n, p in module.named_parameters(recurse=False)]


def rule_layers(model: nn.Module) -> list[Layer]:
    """The model's layers by the default rule (module docstring), named by dotted module names."""
    layers: list[Layer] = []
    pending: list[tuple[str, nn.Module]] = []  # bare parameters before the first layer

    def visit(prefix: str, module: nn.Module, top: bool) -> None:
        if not (top or _splits(module)):
            layers.append(Layer(prefix, [module], [prefix]))
            return
        for path, holder in _bare(module, prefix):  # join the layer before (or the first one)
            if layers:
                layers[-1].modules.append(holder)
                layers[-1].paths.append(path)
            else:
                pending.append((path, holder))
        for path, child in _kids(module, prefix):
            visit(path, child, False)

    visit("", model, True)
    if pending:
        if not layers:  # a model of bare parameters only: one layer
            layers.append(Layer("model", [], []))
        first = layers[0]
        first.modules[:0], first.paths[:0] = [h for _, h in pending], [p for p, _ in pending]
    return layers


def _listing(names: list[str], limit: int = 60) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def named_modules_or_error(model: nn.Module, names: list[str], key: str) -> list[nn.Module]:
    """The modules of `model` with these dotted names, in order; a ValueError naming `key`,
    the unknown name and the model's module names where one is missing."""
    modules = dict(model.named_modules())
    for name in names:
        if name not in modules or not name:
            valid = [n for n in modules if n]
            raise ValueError(f"{key}: {type(model).__name__} has no module {name!r}; its modules: {_listing(valid)}")
    return [modules[n] for n in names]


def _members(model: nn.Module, names: list[str], key: str) -> list[nn.Module]:
    """Modules for dotted module names, ParamHolders for dotted parameter names."""
    params, modules = dict(model.named_parameters()), dict(model.named_modules())
    out = []
    for name in names:
        if name and name in params and name not in modules:
            owner, _, attr = name.rpartition(".")
            if attr not in model.get_submodule(owner)._parameters:
                raise ValueError(f"{key}: {name!r} is not a parameter of {owner or 'the model'}")
            out.append(ParamHolder(**{attr: params[name]}))
        else:
            out += named_modules_or_error(model, [name], key)
    return out


def declared_layers(model: nn.Module, spec: list[str] | dict[str, list[str]], key: str = OVERRIDE) -> list[Layer]:
    """Layers named in `spec`: a list of module names (each one layer) or {layer: [names]}."""
    groups = dict(spec) if isinstance(spec, dict) else {name: [name] for name in spec}
    if not groups:
        raise ValueError(f"{key}: no layers named")
    return [Layer(layer, _members(model, list(names), key), list(names)) for layer, names in groups.items()]


def check_partition(model: nn.Module, layers: list[Layer], key: str = OVERRIDE) -> None:
    """A ValueError naming `key` unless every parameter of `model` is in exactly one layer."""
    seen: dict[int, str] = {}
    for layer in layers:
        for _, p in layer.named_parameters():
            if id(p) in seen:
                raise ValueError(f"{key}: a parameter is in both layer {seen[id(p)]!r} and layer {layer.name!r}")
            seen[id(p)] = layer.name
    missing = [n for n, p in model.named_parameters() if id(p) not in seen]
    if missing:
        raise ValueError(f"{key}: parameters in no layer: {_listing(missing, 20)}")
    empty = [layer.name for layer in layers if not layer.parameters()]
    if empty:
        raise ValueError(f"{key}: layers without parameters: {', '.join(empty)}")


def model_layers(model: nn.Module) -> list[Layer]:
    """The model's layers in forward order: `memloc_layers` where the model has it, else the
    default rule; checks that they partition its parameters."""
    spec = getattr(model, OVERRIDE, None)
    layers = rule_layers(model) if spec is None else declared_layers(model, spec)
    check_partition(model, layers)
    return layers


def layer_index_of_parameters(model: nn.Module) -> list[int]:
    """For each parameter of model.parameters(), in order, the index of its layer."""
    owner = {id(p): i for i, layer in enumerate(model_layers(model)) for p in layer.parameters()}
    return [owner[id(p)] for p in model.parameters()]
