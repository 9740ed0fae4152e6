"""Conditioning inputs: named per-row side arrays given to the model and guide as keyword arguments.

A conditional model p_theta(x | z, y) p(z) with a recognition model q_phi(z | x, y) -- y a class label, a
covariate, anything known for each datapoint and not modelled -- is written like any other, with the input
as a keyword argument of its ``forward`` (as Pyro's ``examples/cvae`` and ``ss_vae`` take ``ys``)::

    model(x, idx=None, num_data=None, y=None)
    guide(x, idx=None, num_data=None, y=None)

and bounds log p(x | y) instead of log p(x).  A :class:`~pyro_aevb.data.Dataset` carries its inputs beside
its rows (``train_inputs`` / ``test_inputs``: MNIST's digit label ``y``; an ``.npz`` with ``train_<name>`` /
``test_<name>`` arrays; a mapping of tensors from Python).  Wherever the library calls a model or guide it
passes, for each input its ``forward`` names, **the rows of that input that go with the rows of x**:

* with ``idx`` (the contract: the indices of the rows of x in the dataset) ``inputs[name][idx]``;
* without ``idx`` the whole array, which must then have one entry per row of x.

An input the data have and a program does not name is not passed to it (MNIST brings ``y``; the paper's VAE
ignores it).  An input a ``forward`` requires (no default) that the data do not have is refused by the
contract check with one line naming it.

**Labels of a latent are not conditions.**  A semi-supervised model (M2, Kingma et al. 2014) has a latent
class y that is *observed for some rows*: its guide takes ``y`` with -1 where the label is unknown.  Such an
input is declared, on the model or the guide, as ``label_inputs = ("y",)``; the library then gives it only in
training (the labels kept by ``--labels N``, -1 elsewhere; :mod:`pyro_aevb.labels`) and never in evaluation,
so every bound it reports is the unlabelled bound of log p(x).
"""

import inspect
from typing import Callable, Dict, Mapping, Optional, Tuple

import torch
from pyro import poutine

from .errors import AevbInputError

#: the contract's own arguments; any other name a ``forward`` takes is an input
CONTRACT_ARGS = ("x", "idx", "num_data")

Inputs = Mapping[str, torch.Tensor]


def _forward(program: Callable) -> Callable:
    """The function whose signature names the inputs: through Pyro's handlers and :class:`Conditioned`."""
    program = _owner(program)
    return program.forward if isinstance(program, torch.nn.Module) else program


def input_names(program: Callable) -> Tuple[Optional[Tuple[str, ...]], Tuple[str, ...]]:
    """The inputs ``program`` takes by name and those it requires (no default): ``(names, required)``;
    ``names`` is ``None`` when its ``forward`` takes ``**kwargs`` (every input is passed)."""
    unwrapped = poutine.unwrap(program)
    if isinstance(unwrapped, Conditioned):  # the inputs it binds are no longer the caller's to give
        names, required = input_names(unwrapped.program)
        bound = set(unwrapped.inputs)
        return (None if names is None else tuple(n for n in names if n not in bound),
                tuple(n for n in required if n not in bound))
    try:
        params = list(inspect.signature(_forward(program)).parameters.values())
    except (TypeError, ValueError):  # a builtin or C callable: it takes only the contract's arguments
        return (), ()
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    rest, skipped = [], 0
    for p in params:
        if p.kind in positional and skipped < len(CONTRACT_ARGS):
            skipped += 1  # x, idx, num_data, whatever the program calls them
            continue
        rest.append(p)
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in rest):
        return None, ()
    names = tuple(p.name for p in rest if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                     inspect.Parameter.KEYWORD_ONLY))
    required = tuple(p.name for p in rest if p.name in names and p.default is inspect.Parameter.empty)
    return names, required


def _owner(program: Callable) -> Callable:
    program = poutine.unwrap(program)
    while isinstance(program, Conditioned):
        program = poutine.unwrap(program.program)
    return program


def label_inputs(*programs: Callable) -> Tuple[str, ...]:
    """The inputs the programs declare as labels of a latent (``label_inputs = ("y",)`` on the model or guide)."""
    names = []
    for program in programs:
        declared = getattr(_owner(program), "label_inputs", ()) if program is not None else ()
        if isinstance(declared, str) or not all(isinstance(n, str) for n in declared):
            raise AevbInputError(f"label_inputs of {type(program).__name__} must be a tuple of input names, got "
                                 f"{declared!r}")
        names += [n for n in declared if n not in names]
    return tuple(names)


def evaluation_inputs(inputs: Inputs, *programs: Callable) -> Dict[str, torch.Tensor]:
    """``inputs`` without the label inputs the programs declare: what evaluation gives them (the bound of
    log p(x | conditions), never of the labels)."""
    labels = label_inputs(*programs)
    return {k: v for k, v in inputs.items() if k not in labels}


def check_inputs(inputs: Optional[Inputs], num_rows: int, what: str = "the data") -> Dict[str, torch.Tensor]:
    """``inputs`` as a dict of tensors with one entry per row (``num_rows``), or one line saying what is wrong."""
    if inputs is None:
        return {}
    if not isinstance(inputs, Mapping):
        raise AevbInputError(f"the inputs of {what} must be a mapping of names to tensors (e.g. {{'y': labels}}), "
                             f"got {type(inputs).__name__}")
    out = {}
    for name, value in inputs.items():
        if not isinstance(name, str) or not name.isidentifier() or name in CONTRACT_ARGS:
            raise AevbInputError(f"input name {name!r} of {what} is not usable as a keyword argument (a Python "
                                 f"identifier other than {', '.join(CONTRACT_ARGS)})")
        if not isinstance(value, torch.Tensor):
            raise AevbInputError(f"input {name!r} of {what} must be a tensor, got {type(value).__name__}")
        if value.dim() < 1 or value.shape[0] != num_rows:
            raise AevbInputError(f"input {name!r} of {what} has shape {list(value.shape)}: it needs one entry per "
                                 f"row, {num_rows} (the size of the data's first dimension, its rows)")
        check_finite(value, f"input {name!r} of {what}")
        out[name] = value
    return out


def require_inputs(program: Callable, role: str, inputs: Inputs) -> None:
    """Refuse a ``program`` whose ``forward`` requires an input that ``inputs`` lacks."""
    if program is None:
        return
    _, required = input_names(program)
    missing = [name for name in required if name not in inputs]
    if missing:
        have = ", ".join(map(repr, inputs)) or "none"
        raise AevbInputError(
            f"the {role}'s forward requires the input(s) {', '.join(map(repr, missing))}, which the data do not have "
            f"(they have: {have}): give them with the data (Dataset(train_inputs=..., test_inputs=...), an .npz with "
            f"train_<name> / test_<name> arrays) or as inputs=... of the call, or give the argument a default")


def taken(program: Callable, inputs: Inputs) -> Dict[str, torch.Tensor]:
    """The inputs ``program`` takes by name."""
    names, _ = input_names(program)
    return {k: v for k, v in inputs.items() if names is None or k in names}


def rows(inputs: Inputs, index) -> Dict[str, torch.Tensor]:
    """The inputs of the rows ``index`` (a slice, an index tensor or ``None`` for all)."""
    if index is None:
        return dict(inputs)
    return {k: v[index.to(v.device) if isinstance(index, torch.Tensor) else index] for k, v in inputs.items()}


class Conditioned(torch.nn.Module):
    """``program`` called with the rows of ``inputs`` that go with each call's x (the module docstring).

    Its parameters are the program's, so optimisers, the contract's parameter check and ``state_dict`` see
    through it; build it with :func:`condition`, which returns the program itself when it takes none of the
    inputs."""

    def __init__(self, program: Callable, inputs: Inputs):
        super().__init__()
        self.program = program
        self.inputs = dict(inputs)

    def forward(self, x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None,
                *args, **kwargs):
        if idx is None:
            for name, value in self.inputs.items():
                if value.shape[0] != x.shape[0]:
                    raise AevbInputError(f"input {name!r} has {value.shape[0]} rows for the {x.shape[0]} rows of x: "
                                         "pass idx (the rows of x in the data) or inputs of the rows of x")
            given = self.inputs
        else:
            given = rows(self.inputs, idx)
        return self.program(x, idx, num_data, *args, **given, **kwargs)


def condition(program: Callable, inputs: Optional[Inputs]) -> Callable:
    """``program`` with the inputs it takes bound by row (:class:`Conditioned`), or ``program`` itself."""
    if program is None or not inputs:
        return program
    mine = taken(program, inputs)
    return Conditioned(program, mine) if mine else program


def check_finite(t: torch.Tensor, what: str) -> None:
    """Refuse rows ``t`` (``[N, ...]``) holding NaN or inf, naming how many and the first row."""
    if not t.is_floating_point():
        return
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        bad = ~finite.reshape(t.shape[0], -1).all(-1)
        raise AevbInputError(f"{what}: {int((~finite).sum())} NaN or inf values in {int(bad.sum())} of its "
                             f"{t.shape[0]} rows (the first: row {int(bad.nonzero()[0, 0])}); remove or impute them")
