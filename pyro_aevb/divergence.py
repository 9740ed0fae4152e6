"""Telling a diverged run from a bug, whatever code raised.

An update with a learning rate too high carries the parameters phi, theta where the numbers of the model stop
being numbers; the first symptom is often not a non-finite loss but an exception raised somewhere in the user's
own model or guide -- typically torch's validation ``ValueError: Expected parameter scale ... but found invalid
values`` when ``scale = exp(h)`` of a huge pre-activation h has overflowed to inf or underflowed to 0.  The
trainer decides "diverged" (status 3) from facts about the state, never from the exception's type or message:

1. a parameter of the model or guide is NaN or inf; or
2. an argument of one of the distributions the model and guide build from the parameters, at the minibatch that
   failed, is NaN or inf, or lies on the boundary of its support: a value v with
   ``biject_to(support).inv(v) = +-inf`` -- scale = 0 (log 0 = -inf), probs = 0 or 1 (logit = -+inf) -- which is
   what a map onto the support (exp, softplus, sigmoid) returns when its input has overflowed.  A value outside the
   support (a negative scale: inv(v) = NaN) is a bug, not a divergence.

Both count only after at least one update: the contract check ran the model and guide at the initial parameters,
so a failure before any update (a shape error at step 1, log of a zero in the data) is the code's, reported as
such.  Arguments are inspected by tracing the guide and the model again with validation off (in a forked RNG, so
the failed step's random stream is not disturbed); code that fails again without validation is a bug too.
"""

from typing import Callable, Iterator, Optional, Tuple

import pyro
import torch
from pyro import poutine
from torch.distributions import biject_to

from .params import local_param_store
from .rng import seeded


def _arguments(fn) -> Iterator[Tuple[str, torch.Tensor, object]]:
    """``(name, value, constraint)`` of the floating-point arguments a distribution was given, through wrappers
    (``Independent``, masks, expansions); lazily derived ones (``logits`` of a ``probs`` Bernoulli) are skipped."""
    while fn is not None:
        for name, constraint in getattr(fn, "arg_constraints", {}).items():
            value = vars(fn).get(name)
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                yield name, value, constraint
        fn = getattr(fn, "base_dist", None)


def _offending(value: torch.Tensor, constraint) -> Optional[str]:
    """How ``value`` shows a divergence -- ``"nan"``, ``"inf"``, ``"-inf"`` or a boundary value such as ``"0"`` --
    or ``None`` (valid, outside the support, or a constraint this cannot judge element by element)."""
    finite = torch.isfinite(value)
    if not bool(finite.all()):
        bad = value[~finite]
        return "nan" if bool(bad.isnan().any()) else f"{bad[0].item():g}"
    try:
        valid = constraint.check(value)
        if valid.shape != value.shape or bool(valid.all()):
            return None
        invalid = value[~valid]
        unconstrained = biject_to(constraint).inv(invalid)
    except (NotImplementedError, TypeError, RuntimeError):
        return None
    if bool(torch.isinf(unconstrained).all()):
        return f"{invalid[0].item():g} (the edge of its support)"
    return None


@torch.no_grad()
def diverged_argument(model: Callable, guide: Optional[Callable], x: torch.Tensor, idx=None,
                      num_data=None) -> Optional[Tuple[str, str]]:
    """``(what, value)`` for the first distribution argument of the guide's or the model's trace on ``x`` that is
    NaN/inf or on the edge of its support (rule 2 above), e.g. ``("the scale of the guide's site 'z'", "0 (...)")``;
    ``None`` if every argument is fine or the programs fail even without validation."""
    traces = []
    try:
        with seeded(None, x.device), local_param_store(), pyro.validation_enabled(False):
            if guide is not None:
                guide_trace = poutine.trace(guide).get_trace(x, idx, num_data)
                traces.append(("guide", guide_trace))
                model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x, idx, num_data)
            else:
                model_trace = poutine.trace(model).get_trace(x, idx, num_data)
            traces.append(("model", model_trace))
    except Exception:  # noqa: BLE001 -- fails without validation too: not a question of values
        return None
    for role, trace in traces:
        for name, site in trace.nodes.items():
            if site["type"] != "sample":
                continue
            for arg, value, constraint in _arguments(site["fn"]):
                shown = _offending(value, constraint)
                if shown is not None:
                    return f"the {arg} of the {role}'s site {name!r}", shown
    return None
