"""Models and guides by name or import path, and the record that rebuilds them.

A run directory must be able to rebuild its model and guide (``load_run``,
``pyro-aevb evaluate``), whether they were trained from the command line or
from Python.  Each is recorded as a *spec* -- a class and its constructor
arguments as JSON::

    {"model": "my_package.models:TwoLayerVAE", "model_kwargs": {"latent_dim": 10}}

A class is named ``package.module:Class`` (imported; the current directory is
searched as ``python -m`` would) or ``path/to/file.py:Class`` (loaded from the
file).  When its constructor takes ``data_dim`` and the kwargs do not give it,
it is filled in from the data.  When a *guide's* constructor takes ``model``,
it is given the model built for the same run -- so a guide can share a module
with the model (a VampPrior's prior p(z) = (1/K) sum_k q(z | u_k) runs the
guide's encoder: ``Guide(data_dim, model)`` keeps ``self.encoder =
model.encoder``); ``model`` is never recorded, and a run rebuilds the model
first and hands it to the guide again.  The built-in classes record their own
arguments (``init_kwargs``); for a class of yours, pass ``model_kwargs`` to the
:class:`~pyro_aevb.trainer.Trainer` or set ``self.init_kwargs`` in its
constructor (without ``model``).
"""

import functools
import importlib
import importlib.util
import inspect
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import torch

from .errors import AevbInputError


def class_spec(obj: Any) -> str:
    """``module:QualName`` of an object's class."""
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def is_import_path(spec: str) -> bool:
    return isinstance(spec, str) and ":" in spec


def resolve_spec(spec: str) -> str:
    """A file-path spec with its file made absolute (so the run reloads from any directory); others unchanged."""
    module, _, qualname = spec.partition(":")
    if module.endswith(".py"):
        return f"{Path(module).resolve()}:{qualname}"
    return spec


def import_object(spec: str) -> Any:
    """The object named by ``package.module:Name`` or ``path/file.py:Name``."""
    if not is_import_path(spec):
        raise AevbInputError(f"{spec!r} is not an import path: use package.module:Class or path/to/file.py:Class")
    module_name, _, qualname = spec.partition(":")
    if not qualname or not module_name:
        raise AevbInputError(f"{spec!r} names no {'class' if not qualname else 'module'}: write "
                             f"{module_name or 'package.module'}:{qualname or 'ClassName'}")
    if module_name == "__main__":
        raise AevbInputError(f"{spec} was defined in a notebook or script (__main__) and cannot be imported again: "
                             "move the class to a module, or pass model= and guide= instances to load_run")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise AevbInputError(f"model file not found: {path}")
            name = f"pyro_aevb_user_{path.stem}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            folder = str(path.resolve().parent)  # while it runs, its sibling modules import (as for `python file.py`)
            sys.path.insert(0, folder)
            try:
                module_spec.loader.exec_module(module)
            finally:
                sys.path.remove(folder)
        else:
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except AevbInputError:
        raise
    except Exception as e:  # noqa: BLE001 -- an import failure of the user's module is one clear line
        hint = (" (run from the directory that holds it, or add it to PYTHONPATH)"
                if isinstance(e, ModuleNotFoundError) and e.name == module_name.split(".")[0] else "")
        where = f" ({e.filename}, line {e.lineno})" if isinstance(e, SyntaxError) else ""
        raise AevbInputError(f"cannot import {module_name!r} for {spec}: {type(e).__name__}: "
                             f"{e.msg if isinstance(e, SyntaxError) else e}{where}{hint}") from e
    obj = module
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise AevbInputError(f"{module_name!r} has no {qualname!r} (from {spec})")
        obj = getattr(obj, part)
    return obj


def parse_kwargs(text: Optional[str], what: str, example: str = '{"latent_dim": 10}') -> dict:
    """JSON object text -> dict (``None`` or empty -> {})."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise AevbInputError(f"{what} must be a JSON object, e.g. '{example}': {e}") from None
    if not isinstance(value, dict):
        raise AevbInputError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def require_module(obj, role: str):
    """``obj`` (a model or guide, or None), refused unless it is a ``torch.nn.Module``."""
    if obj is not None and not isinstance(obj, torch.nn.Module):
        raise AevbInputError(f"the {role} must be a torch.nn.Module (e.g. a PyroModule) so that its parameters can "
                             f"be trained and checkpointed, got {type(obj).__name__}")
    return obj


def build(spec: str, kwargs: Optional[dict], data_dim: Optional[int], role: str, model: Any = None):
    """Instantiate the class named by ``spec`` with ``kwargs`` (plus ``data_dim`` when it takes one, and the
    built ``model`` when a guide's constructor takes an argument of that name); it must build a ``torch.nn.Module``."""
    cls = import_object(spec)
    if not callable(cls):
        raise AevbInputError(f"{spec} is not a class or factory")
    kwargs = dict(kwargs or {})
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}
    if "data_dim" in params and "data_dim" not in kwargs and data_dim is not None:
        kwargs["data_dim"] = int(data_dim)
    if role == "guide" and "model" in params and model is not None:
        kwargs["model"] = model  # a module the guide shares with the model (never recorded: not JSON)
    try:
        built = cls(**kwargs)
    except AevbInputError:
        raise
    except Exception as e:  # noqa: BLE001 -- whatever the user's constructor raises is one line, status 2
        message = str(e).splitlines()[0] if str(e) else ""
        shown = {k: v for k, v in kwargs.items() if k != "model" or role != "guide"}
        raise AevbInputError(f"cannot build the {role} {spec} with {role}_kwargs {json.dumps(shown)}: "
                             f"{type(e).__name__}: {message}") from None
    return require_module(built, f"{role} {spec}")


def takes(spec: str, name: str) -> bool:
    """Whether the constructor of the class named by ``spec`` takes an argument ``name`` (or ``**kwargs``)."""
    try:
        params = inspect.signature(import_object(spec)).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())


def complete_kwargs(spec: str, kwargs: Optional[dict]) -> dict:
    """``kwargs`` with every other constructor argument of the class named by ``spec`` at its default (where the
    default is a JSON value; ``data_dim`` is left to the data, a guide's ``model`` to the built model): what the class was built with, so a run rebuilds
    the same network even if the defaults in its file change later."""
    kwargs = dict(kwargs or {})
    try:
        params = inspect.signature(import_object(spec)).parameters
    except (TypeError, ValueError):
        return kwargs
    defaults = {}
    for name, p in params.items():
        if name in kwargs or name in ("data_dim", "model") or p.default is inspect.Parameter.empty or p.kind in (
                inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        try:
            value = json.loads(json.dumps(p.default))
        except (TypeError, ValueError):
            continue  # not a JSON value: the class's own default it stays
        defaults[name] = value
    return {**defaults, **kwargs}


def _as_json(value):
    to_json = getattr(type(value), "__json__", None)
    if to_json is None:
        raise TypeError(f"{type(value).__name__} is not a JSON value")
    return to_json(value)


def records_arguments(cls):
    """Class decorator: after the constructor runs, ``self.init_kwargs`` holds the arguments it was called with,
    defaults included (tuples as lists), or ``None`` when one of them is not a JSON value -- what a run directory
    records to rebuild the module (``load_run``), kept by the class itself instead of written out by hand.  With
    subclasses that are decorated too, the outermost constructor's arguments are the ones kept."""
    init = cls.__init__
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = {name: value for name, value in list(bound.arguments.items())[1:]
                     if signature.parameters[name].kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                                inspect.Parameter.VAR_KEYWORD)}
        try:  # a value with __json__ (a built-in likelihood: its name) is recorded as what that gives
            self.init_kwargs = json.loads(json.dumps(arguments, default=_as_json))
        except (TypeError, ValueError):
            self.init_kwargs = None  # e.g. a likelihood object: load_run then needs the instances

    cls.__init__ = __init__
    return cls


def recorded_kwargs(obj: Any, given: Optional[dict]) -> Optional[dict]:
    """The constructor arguments to record for ``obj``: ``given``, else its ``init_kwargs``, else ``{}`` for a class
    whose constructor takes none, else None (unknown)."""
    if given is not None:
        return dict(given)
    kwargs = getattr(obj, "init_kwargs", None)
    if kwargs is None:
        try:
            takes_none = not inspect.signature(type(obj)).parameters
        except (TypeError, ValueError):  # no signature to read: unknown
            takes_none = False
        return {} if takes_none else None
    try:
        json.dumps(kwargs)
    except TypeError:
        return None
    return dict(kwargs)
