"""Parameters belong to their modules, never to Pyro's global parameter store.

Pyro's :class:`~pyro.nn.PyroModule` registers every parameter it uses in the
global parameter store under its *name* (``"decoder.0.weight"``).  Two modules
with the same structure therefore collide: whichever registered first is the
tensor the other one's program reads, and an optimiser built on the second
module's own parameters trains nothing.  Every function of this library that
runs a model or a guide does so inside :func:`local_param_store` -- a fresh,
empty store (Pyro's public ``ParamStoreDict.scope``) that is discarded on exit
-- so the store only ever holds the module's own tensors and nothing leaks out
to the user's session.

The built-in models and guides also give themselves a name unique in the
process (``PyroModule(name=...)``), so that ``pyro.infer.SVI`` run by the user
on two of them trains exactly the one it is given.
"""

import contextlib
import itertools

import pyro

_COUNTER = itertools.count()


@contextlib.contextmanager
def local_param_store():
    """Run the enclosed Pyro programs against a fresh parameter store, restored on exit."""
    with pyro.get_param_store().scope():
        yield


def unique_name(obj_or_cls) -> str:
    """A process-unique Pyro name for a module instance, e.g. ``"VAEModel_3"``."""
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    return f"{cls.__name__}_{next(_COUNTER)}"
