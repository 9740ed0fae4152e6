"""The models a run may name: one declaration per model, built-in or from a package of the user's.

A run names its model (``--model NAME`` / ``RunConfig(model=NAME)``) either by import path, ``pkg.module:Class``
or ``file.py:Class`` (:mod:`pyro_aevb.specs`), or by a short name registered here.  A registration
(:class:`ModelEntry`) holds everything the command line, :class:`~pyro_aevb.config.RunConfig` and ``load_run``
need to know about the model, and nothing else does:

* ``build(config, data_dim, init) -> (model, own_guide)``: the model from the run's settings (``init``: the
  initialisation to use, ``--init`` or the registration's own), and the guide it brings
  (``None``: it is paired with the q(z|x) ``--guide`` names, built from the same settings);
* which settings size it (``settings``), which ``--model-kwargs`` it takes, whether it brings its own guide, takes
  ``--guide-kwargs``, models sequences, can have a Bayesian decoder (``wrap_guide``), and its default
  initialisation;
* a one-line ``summary`` for the command line's help.

The built-in models (``mlp``, ``conv``, ``two_layer``, ``dmm``, ``m2``) are registered in
:mod:`pyro_aevb.builtin_models` like any other.  A package of the user's registers its own with an entry point
in the group ``pyro_aevb.models`` whose object is a :class:`ModelEntry` (``[project.entry-points."pyro_aevb.models"]
beta_vae = "my_package.models:BETA_VAE"`` in its ``pyproject.toml``), or by calling :func:`register_model` before
the run is built; then ``pyro-aevb train --model beta_vae`` works as for a built-in.
"""

import inspect
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Callable, Dict, FrozenSet, Optional, Tuple

from .errors import AevbInputError

#: the settings that size a network (``--latent-dim`` ...)
SHAPE_SETTINGS = ("latent_dim", "hidden_dim", "num_hidden_layers", "activation", "likelihood", "min_scale")
ENTRY_POINT_GROUP = "pyro_aevb.models"


@dataclass(frozen=True)
class ModelEntry:
    """Everything a run needs to know about a model it names by a short name.

    :param name: the short name (``--model NAME``).
    :param build: ``build(config, data_dim, init) -> (model, own_guide)``; ``own_guide`` is ``None`` when the model is
        paired with the q(z|x) that ``--guide`` names.
    :param summary: one line for the command line's help.
    :param own_guide: what guide it brings (e.g. ``"M2Guide: q(y|x) q(z|x,y)"``); ``--guide`` then takes only a
        class of yours, which replaces it.
    :param init: its initialisation when ``--init`` is not given (``"paper"`` or ``"torch"``).
    :param settings: the shape settings that size it; another one set away from its default is refused, with
        ``sized_by`` saying what sizes it instead.
    :param model_kwargs: the ``--model-kwargs`` it takes (``None``: any, passed to its constructors).
    :param guide_kwargs: whether ``--guide-kwargs`` go to its own guide.
    :param sequences: ``True`` it models sequences (``--seq-len`` required), ``False`` i.i.d. rows (refused),
        ``None`` either.
    :param wrap_guide: ``wrap_guide(config, model, guide, data_dim) -> guide`` after the guide is chosen (the
        MLP's Bayesian decoder, appendix F); its presence allows ``--bayesian-decoder``.
    """

    name: str
    build: Callable
    summary: str
    own_guide: Optional[str] = None
    init: str = "paper"
    settings: FrozenSet[str] = field(default_factory=lambda: frozenset(SHAPE_SETTINGS))
    sized_by: str = ""
    model_kwargs: Optional[Tuple[str, ...]] = ()
    guide_kwargs: bool = False
    sequences: Optional[bool] = False
    wrap_guide: Optional[Callable] = None


_MODELS: Dict[str, ModelEntry] = {}
_scanned_path: Optional[Tuple[str, ...]] = None  # sys.path when the plug-ins were last looked for


def register_model(entry: ModelEntry) -> ModelEntry:
    """Add ``entry`` to the registry (a short name may be registered once)."""
    if not isinstance(entry, ModelEntry):
        raise AevbInputError(f"a registration is a pyro_aevb.registry.ModelEntry, got {type(entry).__name__}")
    try:
        inspect.signature(entry.build).bind(None, None, None)
    except TypeError:
        raise AevbInputError(f"the build of model {entry.name!r} must take (config, data_dim, init) and return "
                             "(model, own_guide or None)") from None
    except ValueError:  # a callable without a signature: called as documented
        pass
    if not entry.name or ":" in entry.name:
        raise AevbInputError(f"a registered model needs a short name without ':' (that is an import path), got "
                             f"{entry.name!r}")
    if _MODELS.get(entry.name, entry) is not entry:
        raise AevbInputError(f"a model named {entry.name!r} is registered already")
    _MODELS[entry.name] = entry
    return entry


def _load_plugins() -> None:
    """Register the models that installed packages declare in the entry-point group ``pyro_aevb.models`` (again
    only when ``sys.path`` has changed)."""
    global _scanned_path
    if _scanned_path == tuple(sys.path):
        return
    _scanned_path = tuple(sys.path)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry = point.load()
        except Exception as e:  # noqa: BLE001 -- a broken plug-in is one line naming it, not a traceback
            raise AevbInputError(f"the model plug-in {point.name!r} ({point.value}) does not load: "
                                 f"{type(e).__name__}: {e}") from e
        if _MODELS.get(entry.name) is not entry:
            register_model(entry)


def model_names() -> Tuple[str, ...]:
    """The registered short names, built-in first."""
    _load_plugins()
    return tuple(_MODELS)


def lookup(name: str) -> Optional[ModelEntry]:
    """The registration of ``name``, or ``None`` (an import path, or an unknown name)."""
    if not isinstance(name, str) or ":" in name:
        return None
    _load_plugins()
    return _MODELS.get(name)
