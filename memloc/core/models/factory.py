"""Models declared in the config (`model_definitions`): a factory named by an import path.

A factory spec is ``"package.module:callable"`` (a module on the Python path, PYTHONPATH) or
``"path/to/file.py:callable"`` (a Python file).  `resolve_factory` makes a relative file
path absolute -- found in the working directory, else next to one of the config files --
so that jobs and checkpoints, which rebuild a model from its ModelConfig, find the file
from any directory.  The factory is called
``factory(num_classes=..., in_channels=..., image_size=..., **settings)`` and returns an
nn.Module.  Every error names the config key (`key`) it comes from.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from torch import nn


def split_spec(spec: str, key: str = "factory") -> tuple[str, str]:
    """(module or file, callable name) of a factory spec."""
    source, sep, name = str(spec).rpartition(":")
    if not sep or not source or not name.isidentifier():
        raise ValueError(f"{key}: {spec!r} is neither 'package.module:callable' nor 'path/to/file.py:callable'")
    return source, name


def is_file(source: str) -> bool:
    return source.endswith(".py")


def resolve_factory(spec: str, config_files: Sequence[str | os.PathLike] = (), key: str = "factory") -> str:
    """`spec` with its file path absolute: a relative path is looked up in the working
    directory, then in the directories of `config_files` (the last first: it overrides the
    others); module specs and absolute paths are returned as they are."""
    source, name = split_spec(spec, key)
    if not is_file(source) or os.path.isabs(source):
        return spec
    dirs = [Path.cwd(), *(Path(f).resolve().parent for f in reversed(list(config_files)))]
    for folder in dirs:
        if (folder / source).is_file():
            return f"{(folder / source).resolve()}:{name}"
    raise ValueError(f"{key}: file {source!r} is neither in the working directory nor next to a config file "
                     f"(looked in {', '.join(map(str, dict.fromkeys(dirs)))})")


def _load_file(path: Path, key: str) -> ModuleType:
    """The module of a Python file, loaded once per process under a name unique to its path
    (so two files called net.py do not collide, and every build shares its classes)."""
    if not path.is_file():
        raise ValueError(f"{key}: file {str(path)!r} does not exist")
    name = f"memloc_factory_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise ValueError(f"{key}: running {path} raised {type(e).__name__}: {e}") from e
    return module


def _import(source: str, key: str) -> ModuleType:
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as e:
        if e.name and (source == e.name or source.startswith(e.name + ".")):
            raise ValueError(f"{key}: no module {source!r} on the Python path; add its folder to PYTHONPATH, "
                             f"or name a file: 'path/to/file.py:callable'") from e
        raise ValueError(f"{key}: importing {source!r} raised {type(e).__name__}: {e}") from e
    except Exception as e:
        raise ValueError(f"{key}: importing {source!r} raised {type(e).__name__}: {e}") from e


def load_factory(spec: str, key: str = "factory") -> Callable[..., nn.Module]:
    """The callable a spec names (importing its module or running its file once)."""
    source, name = split_spec(spec, key)
    module = _load_file(Path(source).resolve(), key) if is_file(source) else _import(source, key)
    factory = getattr(module, name, None)
    if factory is None:
        raise ValueError(f"{key}: {source} has no {name!r}")
    if not callable(factory):
        raise ValueError(f"{key}: {source}:{name} is a {type(factory).__name__}, not a callable")
    return factory


def call_factory(spec: str, num_classes: int, in_channels: int, image_size, settings: dict,
                 key: str = "factory") -> nn.Module:
    """factory(num_classes=..., in_channels=..., image_size=..., **settings), checked to be an nn.Module."""
    factory = load_factory(spec, key)
    call = f"{spec}(num_classes={num_classes}, in_channels={in_channels}, image_size={image_size}" + "".join(
        f", {k}={v!r}" for k, v in settings.items()) + ")"
    try:
        model = factory(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **settings)
    except TypeError as e:  # most often a keyword the factory does not take
        raise ValueError(f"{key}: {call} raised TypeError: {e}") from e
    if not isinstance(model, nn.Module):
        raise ValueError(f"{key}: {call} returned a {type(model).__name__}, not a torch.nn.Module")
    return model
