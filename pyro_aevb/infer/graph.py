"""One execution path for every model: the SGVB estimators over Pyro's traces, traced once into a graph.

For a minibatch X^M of the N rows, L particles z_il = g_phi(eps_il, x_i) (eq. 10) and the ``data`` plate's
N/M (eq. 8), the estimators are written as an observation term O and the latent sites' term Z::

    A  (eq. 6):  L^M = (N/M) sum_i (1/L) sum_l [ log p(x_i | z_il) ]  +  (N/M) sum_i (1/L) sum_l [ log p(z_il) - log q(z_il | x_i) ]
    B  (eq. 7):  L^M = (N/M) sum_i (1/L) sum_l [ log p(x_i | z_il) ]  -  (N/M) sum_i KL(q(z | x_i) || p(z))
                       \\__________________ O ____________________/      \\_________________ Z _________________/
    IWAE:        L^M = (N/M) sum_i [ logsumexp_k log w_ik - log K ]     (Burda et al., 2015; no O/Z split)

with the sums taken over *every* site of the model's and guide's traces (any names, several latents, extra
plates, global latents outside the ``data`` plate at scale 1), each site's log-density scaled and masked as Pyro
does (``scale_and_mask``), a latent site without a closed-form KL counted by its Monte Carlo
``log p - log q`` (as Pyro's ``TraceMeanField_ELBO``).  The loss is ``-(O + beta Z)``: beta = 1 is the bound,
beta < 1 a KL warm-up's step (:mod:`pyro_aevb.infer.warmup`).  The code is the library's own and reads no
value on the host, so it can be traced.

**The trace.** ``f(params, buffers, x, idx, inputs, beta) = (loss, d loss / d params)`` runs the model and guide
through :func:`torch.func.functional_call` (the parameters are the graph's inputs), inside a fresh parameter
store, under ``poutine.trace``/``replay`` with the particles as a plate left of the model's plates, and
differentiates with :func:`torch.autograd.grad`; :func:`torch.fx.experimental.proxy_tensor.make_fx` records,
on fake tensors (shapes only, no arithmetic), the aten operations of the forward *and* backward pass into one
graph.  The random draws are operations of
the graph (each call draws fresh numbers from torch's generator, so a checkpointed generator state resumes the
same stream).  One graph per structure and shapes (the last, partial minibatch of an epoch gets its own); with
``compile=True`` each graph is compiled by inductor (``torch.compile``; on CUDA as a replayed CUDA graph,
``mode="reduce-overhead"``).  The same machinery traces an objective module that calls the model and guide itself
(wake-sleep, :class:`~pyro_aevb.infer.WakeSleep`: checked against its own eager call) and the importance
weights of :func:`~pyro_aevb.infer.importance.log_likelihood` (:meth:`GraphELBO.log_weights`).

**Argument validation.** Torch validates a distribution's arguments by raising on the host, which a graph cannot;
instead the graph returns one boolean, every argument of every site inside its constraint (the checks torch's
validation makes), read by the trainer after the backward pass (on a CPU, before the update; on a GPU at its
synchronisation points), and a step that failed it is run again through Pyro, which raises the error from the
line that made the distribution.

**What cannot be traced falls back to Pyro's interpreter**, with one line saying why: enumerated discrete
sites (``TraceEnum_ELBO`` sums them out), latent sites without reparameterized sampling (score-function
terms), and Python control flow that reads a tensor's value on the host (``.item()``, ``if tensor:``, data-
dependent shapes): a traced graph would freeze the branch taken while tracing.  Host reads are watched while
tracing (a :class:`~torch.overrides.TorchFunctionMode`), and the graph is checked once against Pyro's own ELBO
on the same random draws (values, rtol 1e-4: float32 summation order only), which also catches Python-side
randomness or state a trace would freeze.
"""

import contextlib
import copy
import logging
import math
import random
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.poutine.util import site_is_subsample
from torch.distributions import kl_divergence
from torch.distributions.constraints import is_dependent
from torch.distributions.utils import lazy_property
from torch.fx.experimental.proxy_tensor import make_fx
from torch.overrides import TorchFunctionMode

from ..contract import ModelStructure
from ..errors import AevbInputError
from ..inputs import Inputs, condition, taken
from ..params import local_param_store
from ..plates import particle_traces
from ..rng import on_same_draws, seeded
from .elbo import make_elbo
from .weights import vectorized_log_weights
from .objective import UpdatingObjective

GRAPH_ESTIMATORS = ("trace", "analytic", "iwae")


class NotTraceable(AevbInputError):
    """The model/guide pair cannot run as a traced graph; the message says why (the trainer then uses Pyro)."""


# ----------------------------------------------------------------------------------------------- the estimator
#: the name of the vectorised particle plate of Pyro's ELBOs (the same draws as theirs, for the start-up check)
PYRO_PARTICLES = "num_particles_vectorized"


def _unvalidated(fn):
    """``fn`` without argument validation (a distribution built while validation was on, e.g. a ``PyroSample``
    prior made in ``__init__``, would check every value's support on the host; the data were checked once when
    training started)."""
    inner = getattr(fn, "base_dist", None)
    if not getattr(fn, "_validate_args", False) and (inner is None or _unvalidated(inner) is inner):
        return fn
    fn = copy.copy(fn)
    fn._validate_args = False
    if inner is not None:
        fn.base_dist = _unvalidated(inner)
    return fn


def _site_log_prob(site: dict) -> torch.Tensor:
    """sum of ``scale * log p`` of a traced site, masked as Pyro masks it."""
    log_p = _unvalidated(site["fn"]).log_prob(site["value"], *site["args"], **site["kwargs"])
    return scale_and_mask(log_p, site["scale"], site["mask"]).sum()


def sgvb_terms(model: Callable, guide: Callable, args: tuple, estimator: str, num_particles: int,
               structure: ModelStructure) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(O, Z)`` of the module docstring for estimator ``"trace"`` (A) or ``"analytic"`` (B), each summed over
    the particles and divided by L (in units of the whole dataset: the ``data`` plate's N/M is in each site's
    scale)."""
    dim = structure.particle_dim  # one draw without the plate, as Pyro's ELBOs
    guide_trace, model_trace = particle_traces(model, guide, args, num_particles, dim, PYRO_PARTICLES,
                                               plate_for_one=False)
    observed, latent, covered = 0.0, 0.0, set()  # covered: latent sites whose closed-form KL was taken
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        if site["is_observed"]:
            observed = observed + _site_log_prob(site)
            continue
        q = guide_trace.nodes.get(name)
        if estimator == "analytic" and q is not None:
            try:
                kl = kl_divergence(_unvalidated(q["fn"]), _unvalidated(site["fn"]))
            except NotImplementedError:  # no closed form: its Monte Carlo term, as TraceMeanField_ELBO
                kl = None
            if kl is not None:
                latent = latent - scale_and_mask(kl, q["scale"], q["mask"]).sum()
                covered.add(name)
                continue
        latent = latent + _site_log_prob(site)
    for name, q in guide_trace.nodes.items():  # -log q of every guide site the KL did not cover
        if q["type"] != "sample" or site_is_subsample(q) or q["is_observed"] or name in covered:
            continue
        latent = latent - _site_log_prob(q)
    return observed / num_particles, latent / num_particles


def sgvb_loss(model: Callable, guide: Callable, args: tuple, estimator: str, num_particles: int,
              structure: ModelStructure, kl_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``-(O + beta Z)`` (``-L^M`` for beta = 1 or ``None``), or minus the IWAE bound for ``"iwae"``."""
    if estimator == "iwae":
        log_w, scale = vectorized_log_weights(model, guide, args, num_particles, structure)
        return -scale * (torch.logsumexp(log_w, dim=0) - math.log(num_particles)).sum()
    observed, latent = sgvb_terms(model, guide, args, estimator, num_particles, structure)
    return -(observed + (latent if kl_weight is None else kl_weight * latent))


class _ArgumentChecks(poutine.messenger.Messenger):
    """Collects, as one boolean tensor and without reading it on the host, whether every distribution's arguments
    are in their constraints (what torch's argument validation checks, which the graph cannot do by raising)."""

    def __init__(self):
        super().__init__()
        self.checks: List[torch.Tensor] = []

    def _postprocess_message(self, msg):
        if msg["type"] == "sample" and not site_is_subsample(msg):
            fn = msg["fn"]
            while fn is not None:
                for name, constraint in getattr(fn, "arg_constraints", {}).items():
                    if is_dependent(constraint) or (name not in fn.__dict__
                                                    and isinstance(getattr(type(fn), name, None), lazy_property)):
                        continue
                    self.checks.append(constraint.check(getattr(fn, name)).all())
                fn = getattr(fn, "base_dist", None)

    def valid(self, device) -> torch.Tensor:
        return torch.stack(self.checks).all() if self.checks else torch.ones((), dtype=torch.bool, device=device)


# ----------------------------------------------------------------------------------------------- why not traced
def untraceable_reason(guide: Callable, estimator: str, structure: ModelStructure, probe: tuple) -> Optional[str]:
    """Why the pair cannot be traced (seen from the structure and a Pyro trace of the guide on ``probe``, its
    arguments with the inputs bound), or ``None``."""
    if not isinstance(estimator, str):
        if isinstance(estimator, UpdatingObjective):
            return f"{type(estimator).__name__} updates the parameters itself (not one loss and its gradient)"
        if structure.enumerated:
            return f"the sites {', '.join(structure.enumerated)} are summed out by enumeration"
        return None
    if estimator not in GRAPH_ESTIMATORS:
        return f"estimator {estimator!r} has no traced form (traced: {', '.join(GRAPH_ESTIMATORS)})"
    if structure.enumerated:
        return (f"the sites {', '.join(structure.enumerated)} are summed out by enumeration (TraceEnum_ELBO), which "
                "the traced path does not do")
    with torch.no_grad(), local_param_store(), pyro.validation_enabled(False):
        guide_trace = poutine.trace(guide).get_trace(*probe)
    for name, site in guide_trace.nodes.items():
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site) \
                and not getattr(site["fn"], "has_rsample", False):
            return (f"the guide's site {name!r} ({type(site['fn']).__name__}) has no reparameterized sampler, so its "
                    "gradient needs Pyro's score-function terms")
    return None


class _HostReads(TorchFunctionMode):
    """Records Python reading a tensor's value (or a shape that depends on values) while a program is traced."""

    READS = {torch.Tensor.item: "Tensor.item()", torch.Tensor.__bool__: "bool(tensor) (an if or while on a tensor)",
             torch.Tensor.__int__: "int(tensor)", torch.Tensor.__float__: "float(tensor)",
             torch.Tensor.__index__: "a tensor used as a Python index", torch.Tensor.tolist: "Tensor.tolist()",
             torch.Tensor.numpy: "Tensor.numpy()", torch.nonzero: "torch.nonzero",
             torch.Tensor.nonzero: "Tensor.nonzero()", torch.masked_select: "torch.masked_select",
             torch.unique: "torch.unique", torch.Tensor.unique: "Tensor.unique()"}

    def __init__(self):
        super().__init__()
        self.found: List[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        what = self.READS.get(func)
        if what is None and func is torch.Tensor.__getitem__ and len(args) > 1 and _is_bool_mask(args[1]):
            what = "indexing with a boolean mask"
        if what is not None and what not in self.found:
            self.found.append(what)
        return func(*args, **(kwargs or {}))


def _is_bool_mask(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


# ----------------------------------------------------------------------------------------------- the graph
class GraphELBO(torch.nn.Module):
    """``-L^M`` of a model/guide pair evaluated by a traced graph: a loss module called as Pyro's ELBO modules
    are, ``loss = graph_elbo(x, idx, num_data)``, whose ``backward`` fills the parameters' gradients.

    :param model: the model (yours or built-in; its conditioning inputs come from ``inputs``).
    :param guide: the guide.
    :param estimator: ``"trace"`` (A), ``"analytic"`` (B) or ``"iwae"``; or an objective module that calls the
        model and guide itself, ``objective(x, idx, num_data) -> loss`` (e.g. :class:`~pyro_aevb.infer.WakeSleep`),
        traced as it is (checked against its own eager call on the same draws).
    :param structure: the pair's checked :class:`~pyro_aevb.contract.ModelStructure`.
    :param inputs: the conditioning inputs of all N rows (:mod:`pyro_aevb.inputs`); each call takes the rows
        ``idx`` of those each program's ``forward`` names.
    :param compile: compile each graph with inductor (``torch.compile``).
    :raises NotTraceable: where the pair cannot be traced (the reason in the message).
    """

    def __init__(self, model: torch.nn.Module, guide: torch.nn.Module, estimator, num_particles: int,
                 structure: ModelStructure, inputs: Optional[Inputs] = None, compile: bool = False):
        super().__init__()
        self.model, self.guide = model, guide
        self._objective = None if isinstance(estimator, str) else _Pair(model, guide, estimator)
        self.estimator, self.num_particles, self.structure = estimator, int(num_particles), structure
        self.inputs = dict(inputs or {})
        self.model_inputs, self.guide_inputs = sorted(taken(model, self.inputs)), sorted(taken(guide, self.inputs))
        self.input_names = sorted(set(self.model_inputs) | set(self.guide_inputs))
        self.compile = bool(compile)
        self.kl_weight: Optional[torch.Tensor] = None  # beta of a KL warm-up; None: the bound itself
        self._graphs: Dict[tuple, Callable] = {}
        self._checked = False
        self._valid: Optional[torch.Tensor] = None  # every argument valid in every call since the last check
        # one leaf per distinct tensor (a guide that holds the model's modules shares them), then each program's
        # names for them
        self._param_list: List[torch.Tensor] = []
        self._buffer_list: List[torch.Tensor] = []
        self._names: Dict[str, Tuple[List[Tuple[str, int]], List[Tuple[str, int]]]] = {}
        seen_p: Dict[int, int] = {}
        seen_b: Dict[int, int] = {}
        for role, program in (("model", model), ("guide", guide)):
            p_names = [(n, _slot(p, seen_p, self._param_list)) for n, p in program.named_parameters(remove_duplicate=False)]
            b_names = [(n, _slot(b, seen_b, self._buffer_list)) for n, b in program.named_buffers(remove_duplicate=False)]
            self._names[role] = (p_names, b_names)

    def set_kl_weight(self, beta: float) -> None:
        """Weight the latent term by ``beta`` from now on (a tensor input of the graph: no retrace)."""
        if self.kl_weight is None:
            self.kl_weight = torch.ones((), device=self._param_list[0].device if self._param_list else None)
        self.kl_weight.fill_(beta)

    # -- the traced function
    def _bind(self, role: str, params: Sequence[torch.Tensor], buffers: Sequence[torch.Tensor]) -> dict:
        p_names, b_names = self._names[role]
        return {**{n: params[i] for n, i in p_names}, **{n: buffers[i] for n, i in b_names}}

    def _programs(self, params, buffers, input_rows):
        """The model and guide called with ``params``/``buffers`` in place of their own, and the rows' inputs."""
        given = dict(zip(self.input_names, input_rows))
        model_state, guide_state = self._bind("model", params, buffers), self._bind("guide", params, buffers)
        model_kwargs = {k: given[k] for k in self.model_inputs}
        guide_kwargs = {k: given[k] for k in self.guide_inputs}

        def model(*args):
            return torch.func.functional_call(self.model, model_state, args, {**model_kwargs}, tie_weights=False)

        def guide(*args):
            return torch.func.functional_call(self.guide, guide_state, args, {**guide_kwargs}, tie_weights=False)

        return model, guide, model_state, guide_state

    def _loss(self, params, buffers, x, idx, num_data, beta, input_rows) -> torch.Tensor:
        model, guide, model_state, guide_state = self._programs(params, buffers, input_rows)
        args = (x, idx, num_data) if idx is not None else (x,)
        checks = _ArgumentChecks()
        with local_param_store(), pyro.validation_enabled(False), checks:
            if self._objective is not None:  # the objective calls the programs: their parameters swapped in place
                state = {**{f"model.{k}": v for k, v in model_state.items()},
                         **{f"guide.{k}": v for k, v in guide_state.items()}}
                loss = torch.func.functional_call(self._objective, state, args, tie_weights=False)
            else:
                loss = sgvb_loss(model, guide, args, self.estimator, self.num_particles, self.structure, beta)
        return loss, checks.valid(x.device)

    def _traced(self, key: tuple, with_grad: bool, x, idx, num_data, beta, input_rows) -> Callable:
        if key in self._graphs:
            return self._graphs[key]

        def step(params, buffers, x, idx, beta, input_rows):
            # leaves that require grad even without one (Pyro's PyroModule warns of parameters that do not)
            leaves = [p.detach().requires_grad_() for p in params]
            with torch.enable_grad() if with_grad else torch.no_grad():
                loss, valid = self._loss(leaves, buffers, x, idx, num_data, beta, input_rows)
            if not with_grad:
                return loss.detach(), valid, []
            grads = torch.autograd.grad(loss, leaves, allow_unused=True)
            return loss.detach(), valid, [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]

        example = ([p.detach() for p in self._param_list], list(self._buffer_list), x, idx, beta, list(input_rows))
        self._graphs[key] = self._trace(step, example, x.device)
        return self._graphs[key]

    def _trace(self, step: Callable, example: tuple, device: torch.device):
        """``(graph, run)``: ``step`` traced on ``example`` (``run``: the graph compiled, if asked)."""
        watch = _HostReads()
        x = example[2]
        python_state, numpy_state = random.getstate(), np.random.get_state()
        try:  # in a forked random stream: whatever tracing draws, training's draws are untouched
            with watch, seeded(None, x.device), _quiet_logger("torch._subclasses.fake_tensor"):
                graph = make_fx(step, tracing_mode="fake", _allow_non_fake_inputs=True)(*example)
        except NotTraceable:
            raise
        except Exception as e:
            if "DataDependent" not in type(e).__name__ and "data-dependent" not in str(e).lower():
                raise NotTraceable(f"tracing the model and guide failed ({type(e).__name__}: {_first_line(e)})") from e
            if not watch.found:  # (the watch names the read where it saw it)
                watch.found.append("a tensor's value read in Python")
        if random.getstate() != python_state or not _same_numpy_state(np.random.get_state(), numpy_state):
            random.setstate(python_state)
            np.random.set_state(numpy_state)
            raise NotTraceable("the model or guide draws random numbers outside torch (Python's random or numpy's "
                               "global generator), which a traced graph would freeze at the draw made while tracing")
        if watch.found:
            raise NotTraceable(f"the model or guide reads tensor values in Python ({', '.join(watch.found)}), so a "
                               "traced graph would freeze the branch taken while tracing")
        if not self.compile:
            return graph, graph
        # compiled on the first call, when the CPU build's "no CUDA runtime" notice is silenced
        compiled = torch.compile(graph, dynamic=False, mode="reduce-overhead" if device.type == "cuda" else None)
        first = [True]

        def run(*args):
            if first[0]:
                first[0] = False
                with _quiet_logger("torch.utils.cpp_extension"):
                    return compiled(*args)
            return compiled(*args)

        return graph, run

    def log_weights(self, x: torch.Tensor, idx: Optional[torch.Tensor], num_data: Optional[int],
                    num_samples: int) -> torch.Tensor:
        """``log p(x, z_k) - log q(z_k | x)`` ``[K, M]`` for K = ``num_samples`` draws per row of ``x`` (the rows
        ``idx`` of the N; no gradient), as :func:`~pyro_aevb.infer.weights.vectorized_log_weights` computes them,
        from a traced graph per shape.  The first call of each shape is checked equal to Pyro's traces on the same
        draws (raises :class:`NotTraceable` otherwise)."""
        input_rows = [self.inputs[name][idx] if idx is not None else self.inputs[name] for name in self.input_names]
        args_key = ("log_w", int(num_samples), tuple(x.shape), x.dtype, x.device,
                    None if idx is None else tuple(idx.shape), None if num_data is None else int(num_data),
                    tuple((tuple(r.shape), r.dtype) for r in input_rows))
        new = args_key not in self._graphs
        if new:
            def step(params, buffers, x, idx, input_rows):
                leaves = [p.detach().requires_grad_() for p in params]
                model, guide, _, _ = self._programs(leaves, buffers, input_rows)
                args = (x, idx, num_data) if idx is not None else (x,)
                with torch.no_grad(), local_param_store(), pyro.validation_enabled(False):
                    return vectorized_log_weights(model, guide, args, int(num_samples), self.structure)[0]

            example = ([p.detach() for p in self._param_list], list(self._buffer_list), x, idx, list(input_rows))
            self._graphs[args_key] = self._trace(step, example, x.device)
        graph, run = self._graphs[args_key]

        def traced(fn):
            return fn([p.detach() for p in self._param_list], list(self._buffer_list), x, idx, list(input_rows))

        if new:
            def reference():
                args = (x, idx, num_data) if idx is not None else (x,)
                with torch.no_grad(), local_param_store(), pyro.validation_enabled(False):
                    return vectorized_log_weights(condition(self.model, self.inputs), condition(self.guide, self.inputs),
                                                  args, int(num_samples), self.structure)[0]

            expected, got = on_same_draws(x.device, reference, lambda: traced(graph))
            if not torch.allclose(got, expected, rtol=1e-4, atol=1e-3):
                raise NotTraceable("the traced log weights differ from Pyro's on the same draws: the program keeps "
                                   "state or draws random numbers outside torch, which a trace freezes")
        return traced(run)

    def _call(self, x: torch.Tensor, idx: Optional[torch.Tensor], num_data: Optional[int], with_grad: bool,
              compiled: bool = True):
        input_rows = [self.inputs[name][idx] if idx is not None else self.inputs[name] for name in self.input_names]
        beta = self.kl_weight if self.kl_weight is not None else None
        key = (with_grad, tuple(x.shape), x.dtype, x.device, None if idx is None else tuple(idx.shape),
               None if num_data is None else int(num_data), beta is not None,
               tuple((tuple(r.shape), r.dtype) for r in input_rows))
        graph, run = self._traced(key, with_grad, x, idx, num_data, beta, input_rows)
        fn = run if compiled else graph
        return lambda params: fn([p.detach() for p in params], list(self._buffer_list), x, idx, beta, input_rows)

    def forward(self, x: torch.Tensor, idx: Optional[torch.Tensor] = None,
                num_data: Optional[int] = None) -> torch.Tensor:
        if not self._checked:
            self.check(x, idx, num_data)
        call = self._call(x, idx, num_data, with_grad=torch.is_grad_enabled())
        if not torch.is_grad_enabled():
            return call(self._param_list)[0]  # evaluation: no argument check
        try:
            loss, valid = _GraphLoss.apply(call, *self._param_list)
        except Exception:  # raised inside the graph: the program's own frame says more -- run it through Pyro,
            self._pyro_loss(x, idx, num_data)  # which raises it from the user's line (a forked stream)
            raise
        self._valid = valid if self._valid is None else self._valid & valid
        return loss

    def raise_if_invalid(self, x: torch.Tensor, idx: Optional[torch.Tensor], num_data: Optional[int]) -> None:
        """If a distribution argument left its constraint in a call since the last check (a host read: call it
        where the trainer synchronises anyway), run this minibatch through Pyro with validation on, which raises
        the error from the line that made the distribution (as the Pyro path raises it at once)."""
        valid, self._valid = self._valid, None
        if valid is None or bool(valid):
            return
        with pyro.validation_enabled(True):
            self._pyro_loss(x, idx, num_data)
        raise AevbInputError("a distribution argument left its constraint during training (torch's argument "
                             "validation, which the traced graph checks every step)")

    def _pyro_loss(self, x: torch.Tensor, idx: Optional[torch.Tensor], num_data: Optional[int]) -> float:
        """Pyro's ELBO on the same rows (no gradient, a forked random stream)."""
        args = (x, idx, num_data) if idx is not None else (x,)
        if self._objective is not None:
            with torch.no_grad(), local_param_store(), seeded(None, x.device):
                return float(self._objective(*args))
        elbo = make_elbo(self.estimator, self.num_particles, self.structure.max_plate_nesting)
        with torch.no_grad(), local_param_store(), seeded(None, x.device):
            return float(elbo.differentiable_loss(condition(self.model, self.inputs), condition(self.guide, self.inputs),
                                                  *args))

    def check(self, x: torch.Tensor, idx: Optional[torch.Tensor] = None, num_data: Optional[int] = None,
              rtol: float = 1e-4) -> None:
        """Raise :class:`NotTraceable` unless the (uncompiled) graph's loss equals Pyro's ELBO on the same draws
        (rows ``x``; the caller's random stream is untouched).  Done once, on the first call."""
        # Pyro first: a program that fails there raises its own error, as the Pyro path would
        expected, = on_same_draws(x.device, lambda: self._pyro_loss(x, idx, num_data))
        beta, self.kl_weight = self.kl_weight, None  # the bound itself, whatever the warm-up's beta
        try:
            call = self._call(x, idx, num_data, with_grad=True, compiled=False)
            traced, = on_same_draws(x.device, lambda: float(call(self._param_list)[0]))
        finally:
            self.kl_weight = beta
        if not abs(traced - expected) <= rtol * (1.0 + abs(expected)):
            raise NotTraceable(
                f"the traced graph gives {traced:.6g} where Pyro's ELBO gives {expected:.6g} on the same draws: the "
                "program keeps state or draws random numbers outside torch (numpy, random), which a trace freezes")
        self._checked = True


class _Pair(torch.nn.Module):
    """The model and guide as submodules (``model.*``, ``guide.*``), called through an objective that uses them."""

    def __init__(self, model, guide, objective):
        super().__init__()
        self.model, self.guide = model, guide
        self._call = (objective,)  # not a submodule: the trainer checkpoints the objective itself

    def forward(self, *args):
        return self._call[0](*args)


class _GraphLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, run, *params):
        loss, valid, grads = run(params)
        ctx.save_for_backward(*grads)
        ctx.mark_non_differentiable(valid)
        return loss, valid

    @staticmethod
    def backward(ctx, grad_output, _):
        grads = ctx.saved_tensors
        if grad_output.device.type == "cpu" and float(grad_output) == 1.0:  # loss.backward(): the gradients as they
            return (None,) + tuple(grads)                                    # are (a free read on a CPU)
        return (None,) + tuple(g * grad_output for g in grads)


def _same_numpy_state(a, b) -> bool:
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and tuple(a[2:]) == tuple(b[2:])


@contextlib.contextmanager
def _quiet_logger(name: str):
    """Silence a logger while tracing (fake tensors log each operation that fails before the error is raised)."""
    logger = logging.getLogger(name)
    level, logger.level = logger.level, logging.CRITICAL
    try:
        yield
    finally:
        logger.setLevel(level)


def _slot(tensor: torch.Tensor, seen: Dict[int, int], store: List[torch.Tensor]) -> int:
    if id(tensor) not in seen:
        seen[id(tensor)] = len(store)
        store.append(tensor)
    return seen[id(tensor)]


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__
