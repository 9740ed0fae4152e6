"""The model/guide contract, written down and checked.

Every function of this library takes a *model* and (most) a *guide*: ordinary
Pyro programs with this signature and structure::

    model(x, idx=None, num_data=None)      p(theta) prod_i p(z_i) p(x_i | z_i, theta)
    guide(x, idx=None, num_data=None)      q(theta) prod_i q(z_i | x_i)

(and any conditioning inputs as further keyword arguments, ``model(x, idx=None, num_data=None, y=None)``:
:mod:`pyro_aevb.inputs`)

1. **The data plate.**  Every per-datapoint site -- the observation(s) and the
   local latents -- sits inside a plate named ``"data"`` over the N datapoints
   that subsamples the minibatch: ``pyro.plate("data", num_data, subsample=idx)``,
   which :func:`pyro_aevb.plates.data_plate` builds from ``(x, idx, num_data)``.
   Called with ``x`` alone the plate covers exactly the rows of ``x``.  This plate
   is what scales a minibatch of M by N/M (eq. 8), so a plate sized by the
   minibatch (``pyro.plate("data", len(x))``) gives a bound, a weight decay and an
   evaluation that depend on the batch size -- it is refused, as is a site weighted
   by ``poutine.scale`` beyond its plates' subsampling (its term would count that
   many times).
2. **Global latents** (sampled once per dataset, e.g. the decoder weights of full
   VB, appendix F) sit outside the ``data`` plate.
3. **Any names, any number of latent sites, further plates** (inside or outside
   ``data``, at their own ``dim``).  The guide samples every latent of the model
   under the same name, with the same plates, and nothing else (unless marked
   ``infer={"is_auxiliary": True}``).
4. **Parameters belong to modules**: model and guide are ``torch.nn.Module`` s
   (e.g. :class:`~pyro.nn.PyroModule`) and every ``pyro.param`` they read is a
   parameter of one of them, so a torch optimiser over ``model.parameters()``
   and ``guide.parameters()`` trains all of them.
5. **What each estimator needs**: estimator A (``"trace"``, eq. 6) and the IWAE
   bound sample z = g_phi(eps, x) by reparameterization (section 2.4), so every
   guide latent must have ``rsample``; estimator B (``"analytic"``, eq. 7) also
   needs KL(q || p) in closed form at every latent site, and a guide that samples
   the latents in the model's order (Pyro's mean-field condition: otherwise the
   closed-form KL of a site is taken at a value of its model parents that was drawn
   from it, e.g. KL(q(z1|x) || p(z1|z2)) with z2 ~ q(z2|z1), which is not the
   bound's term); importance sampling of
   log p(x), the IWAE bound, wake-sleep, MCEM and the appendix-D estimator work
   per datapoint and refuse global latents (full VB has its own evaluators).
6. **Enumerated discrete latents**: a discrete site with finite support marked
   ``infer={"enumerate": "parallel"}`` (e.g. by :func:`pyro.infer.config_enumerate`)
   is summed over exactly instead of sampled, so it needs no ``rsample``:
   estimator A becomes Pyro's ``TraceEnum_ELBO`` (:func:`pyro_aevb.infer.make_elbo`),
   the enumeration dimensions sitting to the left of the plates and particles.
   Marked in the guide, the guide samples it as any latent (and may condition
   later latents on it, e.g. q(z|x,y) of the M2 model); marked in the model only,
   the model sums it out and the guide leaves it alone.  Estimator B and the
   IWAE bound cannot enumerate and refuse it; importance sampling of log p(x)
   samples a guide's discrete site and refuses one summed out in the model.

:func:`check_model_guide` traces the guide and the model (replayed on the
guide) once on two rows of the data, as a minibatch of a larger dataset, with
Pyro's own checks (:func:`pyro.util.check_model_guide_match`,
:func:`pyro.util.check_site_shape`), and raises one :class:`AevbInputError`
that says how to fix the model.  It returns the :class:`ModelStructure` the
objectives and evaluators use instead of assuming site names or plate depths.
The check runs in a forked RNG and a private parameter store, so it changes
neither the random stream nor the user's session.
"""

import contextlib
import math
import warnings
from dataclasses import dataclass, replace
from typing import Callable, Optional, Tuple

import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO
from pyro.poutine.util import site_is_subsample
from pyro.util import check_model_guide_match, check_site_shape
from torch.distributions import constraints, kl_divergence

from .errors import AevbInputError
from .inputs import Inputs, check_finite, check_inputs, condition, input_names, require_inputs, rows, taken
from .params import local_param_store
from .rng import seeded
from .plates import data_frame, is_global_latent, is_latent, is_local_latent, is_observed, particle_traces

HOW_TO = ("put every per-datapoint site inside pyro_aevb.plates.data_plate(x, idx, num_data), i.e. "
          "pyro.plate('data', num_data, subsample=idx) (see pyro_aevb.contract)")

ESTIMATOR_NEEDS = {
    None: (),
    "trace": ("reparameterized",),
    "analytic": ("reparameterized", "analytic_kl", "mean_field"),
    "iwae": ("reparameterized", "local_only"),
    "importance": ("local_only",),
}


@dataclass(frozen=True)
class ModelStructure:
    """What a trace of the model (and guide) shows: site names by role and plate depth.

    :ivar local_latents: latent sites inside the ``data`` plate, in program order.
    :ivar global_latents: latent sites outside it.
    :ivar observed: observed sites (all inside the ``data`` plate).
    :ivar max_plate_nesting: the deepest plate dimension used (>= 1); vectorised particles go one further left.
    :ivar data_dim: the batch dimension of the ``data`` plate (``-1`` usually).
    :ivar latent_axes: for each local latent, the axis of its value that indexes datapoints.
    :ivar mean_field: the guide samples the latents in the model's order (Pyro's sufficient condition for a
        closed-form KL per site, i.e. estimator B); False e.g. for a hierarchical guide x -> z1 -> z2 of a model
        z2 -> z1 -> x.
    :ivar enumerated: latent sites summed out by enumeration (rule 6), in the guide or in the model alone.

    Properties: ``default_estimator`` (the estimator a pair gets where none is named: ``"analytic"`` = B where it
    applies, else ``"trace"`` = A), ``latents`` (global then local latent sites), ``particle_dim`` (the batch
    dimension of vectorised particles).
    """

    local_latents: Tuple[str, ...]
    global_latents: Tuple[str, ...]
    observed: Tuple[str, ...]
    max_plate_nesting: int
    data_dim: int
    latent_axes: Tuple[int, ...] = ()
    mean_field: bool = True
    enumerated: Tuple[str, ...] = ()

    @property
    def particle_dim(self) -> int:
        return -(self.max_plate_nesting + 1)

    @property
    def default_estimator(self) -> str:
        """The estimator a model/guide pair gets where none is named (the trainer, ``evaluate_bound``, the CLI): B
        (``"analytic"``, the paper's choice for its experiments) where it applies, else A (``"trace"``): where a
        latent is summed out by enumeration, or the guide does not sample the latents in the model's order (B's
        closed-form KL of a site would be taken at other parents than the model's)."""
        return "trace" if self.enumerated or not self.mean_field else "analytic"

    @property
    def latents(self) -> Tuple[str, ...]:
        return self.global_latents + self.local_latents


@contextlib.contextmanager
def _quiet_side_effects(x: torch.Tensor):
    """No gradient, the RNG forked (the caller's random stream is unchanged), a private param store."""
    with torch.no_grad(), seeded(None, x.device), local_param_store():
        yield


def _probe_batch(x: torch.Tensor, num_data: Optional[int]):
    """Two rows of ``x`` as a minibatch of a dataset larger than two, so a plate sized by the minibatch shows."""
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[0] < 1:
        raise AevbInputError(f"x must be a tensor with one row per datapoint, got {type(x).__name__} "
                             f"{list(getattr(x, 'shape', []))}")
    check_finite(x, "the data")
    xb = x[:2]
    m = xb.shape[0]
    n = max(int(num_data or x.shape[0]), m + 1)
    return xb, torch.arange(m, device=x.device), n


def _run(fn: Callable, role: str, *args, unused_inputs: Tuple[str, ...] = (), given_inputs: Tuple[str, ...] = ()):
    try:
        return fn(*args)
    except AevbInputError:
        raise
    except Exception as e:  # noqa: BLE001 -- any failure of the user's program becomes one clear line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        cause = e.__cause__ if e.__cause__ is not None else e  # Pyro re-raises with the trace shapes attached
        if unused_inputs:
            hint = (f"the {role} takes the input(s) {', '.join(map(repr, unused_inputs))}, which were not given: "
                    f"give them with the data (Dataset(train_inputs=..., test_inputs=...), an .npz with "
                    f"train_<name> / test_<name> arrays), as inputs=... of a call that takes it, or bound to the "
                    f"rows: pyro_aevb.condition({role}, inputs)")
        elif "Multiple sample sites named 'data'" in str(e):  # Pyro's words for a second plate of that name
            hint = (f"the {role} opens the 'data' plate twice: open data_plate(x, idx, num_data) once and put every "
                    "per-datapoint site under that one `with`")
        elif isinstance(cause, TypeError) and "argument" in str(cause):
            hint = (f"a {role} must accept the arguments (x, idx=None, num_data=None), and by name the conditioning "
                    f"inputs it uses (pyro_aevb.inputs), and {HOW_TO}")
        elif args[0].dim() == 1:
            hint = ("x is one-dimensional, so each of its entries is a row (a datapoint): for one datapoint of "
                    "several values give x[None], rows of shape [N, D]")
        else:
            what = (f"the data and the conditioning input(s) {', '.join(map(repr, given_inputs))}" if given_inputs
                    else "the data")
            values = " (their values too: e.g. a class label in the range the model takes)" if given_inputs else ""
            hint = (f"check that {what} fit the {role}{values} (the rows here have {args[0].shape[-1]} values in "
                    f"their last dimension; e.g. is the {role}'s data_dim the same?) and that it follows the contract "
                    "of pyro_aevb.contract")
        rows = "two rows" if args[0].shape[0] == 2 else f"{args[0].shape[0]} rows"
        raise AevbInputError(f"the {role} failed on {rows} of the data (shape {list(args[0].shape)}), called as "
                             f"{role}(x, idx=idx, num_data=N): {type(e).__name__}: {msg} -- {hint}") from e


def _replayed_model_trace(model: Callable, guide_trace, xb, idx, n: int, unused: Tuple[str, ...],
                          given: Tuple[str, ...] = ()):
    """The model's trace at the guide's draws.  Where the model fails there but runs on its own prior draws,
    the usual cause is named: a latent that the guide draws with another shape than the model's prior."""
    try:
        return _run(poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace, "model", xb, idx, n,
                    unused_inputs=unused, given_inputs=given)
    except AevbInputError as failure:
        try:
            alone = poutine.trace(model).get_trace(xb, idx, n)
        except Exception:  # noqa: BLE001 -- the model fails on its own too: the first message says why
            raise failure from failure.__cause__
        for name, site in alone.nodes.items():
            drawn = guide_trace.nodes.get(name)
            if is_latent(site) and drawn is not None and drawn["value"].shape != site["value"].shape:
                raise AevbInputError(
                    f"the guide draws site {name!r} with shape {list(drawn['value'].shape)} where the model's prior "
                    f"draws {list(site['value'].shape)} (two rows), and the model fails at the guide's draw: the "
                    f"guide must sample each latent with the model's batch and event shape") from failure.__cause__
        raise


def _plate_checks(trace, role: str, m: int, n: int) -> None:
    """Every ``data`` frame covers N datapoints and subsamples the M of the minibatch, and no site is weighted
    beyond its plates' subsampling (full size / size): a ``poutine.scale`` would reweight a term of the bound."""
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        subsampling = math.prod(f.full_size / f.size for f in site["cond_indep_stack"] if f.full_size is not None)
        weight = torch.as_tensor(site["scale"], dtype=torch.float64) / subsampling
        if not bool(torch.isclose(weight, torch.ones((), dtype=torch.float64), rtol=1e-6).all()):
            raise AevbInputError(
                f"site {name!r} of the {role} is weighted by {_weight(weight)} beyond its plates' subsampling (a "
                "poutine.scale around it): its term of the bound would count that many times, so no reported number "
                "would be the bound of eq. (3); remove the scale (KL annealing: kl_warmup, which reports the "
                "unannealed bound)")
        frame = data_frame(site)
        if frame is None:
            continue
        full = frame.full_size if frame.full_size is not None else frame.size
        if full != n or frame.size != m:
            raise AevbInputError(
                f"site {name!r} of the {role} is in a plate 'data' of size {full} for a minibatch of {m} of "
                f"{n} datapoints: the plate must cover the whole dataset and subsample the minibatch, or the "
                f"bound is scaled by the batch size; {HOW_TO}")


def _weight(weight: torch.Tensor) -> str:
    return f"{float(weight):g}" if weight.numel() == 1 else f"a tensor (e.g. {float(weight.flatten()[0]):g})"


def _describe(d) -> str:
    """``Independent(StudentT)``-style name of a (wrapped) distribution."""
    name = type(d).__name__
    return f"{name}({_describe(d.base_dist)})" if hasattr(d, "base_dist") else name


def _owned_parameters(*programs) -> set:
    owned = set()
    for program in programs:
        module = poutine.unwrap(program)
        if isinstance(module, torch.nn.Module):
            owned.update(id(p) for p in module.parameters())
    return owned


def _param_checks(traces, owned: set) -> None:
    for role, trace in traces:
        for name, site in trace.nodes.items():
            if site["type"] != "param":
                continue
            value = site["value"]
            unconstrained = getattr(value, "unconstrained", None)
            tensor = unconstrained() if callable(unconstrained) else value
            if id(tensor) not in owned and id(value) not in owned:
                raise AevbInputError(
                    f"parameter {name!r} of the {role} belongs to no torch.nn.Module passed as model or guide, so "
                    f"no optimiser here would train it: declare it on the {role} (an nn.Parameter or PyroParam of "
                    f"a PyroModule) instead of a free pyro.param / pyro.module call")


def _nesting(traces) -> int:
    depth = 1
    for trace in traces:
        for site in trace.nodes.values():
            if site["type"] == "sample":
                for frame in site["cond_indep_stack"]:
                    if frame.vectorized:
                        depth = max(depth, -frame.dim)
    return depth


def is_enumerated(site: dict) -> bool:
    """A discrete site with finite support marked for enumeration (``infer={"enumerate": ...}``)."""
    return (site["type"] == "sample" and site["infer"].get("enumerate") in ("parallel", "sequential")
            and bool(getattr(site["fn"], "has_enumerate_support", False)))


def _structure(model_trace, nesting: int, guide_trace=None) -> ModelStructure:
    local, glob, obs, axes = [], [], [], []
    data_dims = set()
    for name, site in model_trace.nodes.items():
        if is_observed(site):
            frame = data_frame(site)
            if frame is None:
                plates = [f.name for f in site["cond_indep_stack"]]
                where = (f"in plate(s) {', '.join(map(repr, plates))} but not in the plate named 'data'" if plates
                         else "outside every plate")
                raise AevbInputError(f"observed site {name!r} of the model is {where}; {HOW_TO} (a global latent "
                                     "fixed by poutine.condition is observed too: fix globals with "
                                     "pyro_aevb.evaluation.fix_globals, which also hides them)")
            obs.append(name)
            data_dims.add(frame.dim)
        elif is_local_latent(site):
            local.append(name)
            frame = data_frame(site)
            data_dims.add(frame.dim)
            axes.append(frame.dim - site["fn"].event_dim)
        elif is_global_latent(site):
            glob.append(name)
    if not obs:
        raise AevbInputError("the model observes nothing: it must condition on the data, "
                             "e.g. pyro.sample('x', likelihood, obs=x) inside the 'data' plate")
    if len(data_dims) != 1 or None in data_dims:
        raise AevbInputError(f"the 'data' plate must be vectorised at one dim for every site, got dims "
                             f"{sorted(map(str, data_dims))}; {HOW_TO}")
    enumerated = tuple(name for name in glob + local if is_enumerated(model_trace.nodes[name]) or (
        guide_trace is not None and name in guide_trace.nodes and is_enumerated(guide_trace.nodes[name])))
    return ModelStructure(tuple(local), tuple(glob), tuple(obs), nesting, data_dims.pop(), tuple(axes),
                          enumerated=enumerated)


def _conditioned(programs, x: torch.Tensor, inputs: Optional[Inputs]):
    """The inputs checked (one entry per row of ``x``; every required one present) and bound to each program;
    and, per program, the inputs it names that were not given and those it takes (for the hint if it fails)."""
    inputs = check_inputs(inputs, x.shape[0])
    for role, program in programs:
        require_inputs(program, role, inputs)
    unused = [tuple(n for n in (input_names(program)[0] or ()) if n not in inputs) for _, program in programs]
    given = [tuple(taken(program, inputs)) for _, program in programs]
    return [condition(program, inputs) for _, program in programs], unused, given


def inspect_model(model: Callable, x: torch.Tensor, num_data: Optional[int] = None,
                  inputs: Optional[Inputs] = None) -> ModelStructure:
    """Check a model on its own (no guide: MCEM, the appendix-D estimator) and return its structure.

    :param inputs: conditioning inputs of the rows of ``x`` (:mod:`pyro_aevb.inputs`)."""
    xb, idx, n = _probe_batch(x, num_data)
    (conditioned,), (unused,), (given,) = _conditioned([("model", model)], x, inputs)
    with _quiet_side_effects(x):
        trace = _run(poutine.trace(conditioned).get_trace, "model", xb, idx, n, unused_inputs=unused,
                     given_inputs=given)
        _compute_log_prob(trace, "model")
        _plate_checks(trace, "model", xb.shape[0], n)
        _param_checks([("model", trace)], _owned_parameters(model))
        return _structure(trace, _nesting([trace]))


def require_local_only(structure: ModelStructure, what: str) -> None:
    """Refuse global latents where ``what`` works per datapoint."""
    if structure.global_latents:
        raise AevbInputError(
            f"{what} works per datapoint and cannot use the global latent(s) "
            f"{', '.join(map(repr, structure.global_latents))} (outside the 'data' plate): for full VB use "
            "full_vb_bound / posterior_predictive_log_likelihood, or fix the globals at a value first "
            "(pyro_aevb.evaluation.fix_globals(model, guide, {name: value}))")


def require_real_latents(model: Callable, x: torch.Tensor, structure: ModelStructure, what: str,
                         inputs: Optional[Inputs] = None) -> None:
    """Refuse latents whose prior support is not all of R^d (HMC moves in unconstrained space only)."""
    xb, idx, n = _probe_batch(x, None)
    (conditioned,), (unused,), _ = _conditioned([("model", model)], x, inputs)
    with _quiet_side_effects(x):
        trace = _run(poutine.trace(conditioned).get_trace, "model", xb, idx, n, unused_inputs=unused)
    for name in structure.local_latents:
        support = trace.nodes[name]["fn"].support
        base = getattr(support, "base_constraint", support)
        if base is not constraints.real:
            raise AevbInputError(f"{what} needs real-valued latents, but site {name!r} has support {support}; "
                                 "reparameterize it as a real latent with a transform in the model")


def check_particles(model: Callable, guide: Callable, x: torch.Tensor, num_particles: int, structure: ModelStructure,
                    num_data: Optional[int] = None, inputs: Optional[Inputs] = None) -> None:
    """With ``num_particles`` > 1 draws per row (vectorised: every latent gains a dimension on the left), refuse in
    one line a pair that runs on one draw but does not broadcast over that dimension
    (:func:`~pyro_aevb.plates.particle_traces`), on two rows, before any training -- instead of the shape error of
    the user's code at the first step.  (Enumerated pairs are checked by :func:`check_model_guide` already.)"""
    if num_particles <= 1 or structure.enumerated:
        return
    xb, idx, n = _probe_batch(x, num_data)
    (model, guide), _, _ = _conditioned([("model", model), ("guide", guide)], x, inputs)
    with _quiet_side_effects(x):
        particle_traces(model, guide, (xb, idx, n), num_particles, structure.particle_dim)


def check_model_guide(model: Callable, guide: Callable, x: torch.Tensor, estimator: Optional[str] = None,
                      num_data: Optional[int] = None, inputs: Optional[Inputs] = None) -> ModelStructure:
    """Check that ``model`` and ``guide`` follow the contract (and what ``estimator`` needs); return the structure.

    :param x: the data (or a batch of it); two rows are traced as a minibatch of ``num_data`` (default
        ``len(x)``, at least 3).
    :param estimator: ``"trace"`` (A), ``"analytic"`` (B), ``"iwae"``, ``"importance"`` (IS of log p(x)) or
        ``None`` (structure only).
    :param inputs: conditioning inputs of the rows of ``x`` (:mod:`pyro_aevb.inputs`): one entry per row, every
        input the model's or guide's ``forward`` requires present.
    :raises AevbInputError: one line naming the site and the fix.
    """
    if estimator not in ESTIMATOR_NEEDS:
        raise AevbInputError(f"unknown estimator {estimator!r}; choose from {sorted(k for k in ESTIMATOR_NEEDS if k)}")
    xb, idx, n = _probe_batch(x, num_data)
    m = xb.shape[0]
    owners = (model, guide)
    (model, guide), (model_unused, guide_unused), (model_given, guide_given) = _conditioned(
        [("model", model), ("guide", guide)], x, inputs)
    with _quiet_side_effects(x):
        guide_trace = _run(poutine.trace(guide).get_trace, "guide", xb, idx, n, unused_inputs=guide_unused,
                           given_inputs=guide_given)
        model_trace = _replayed_model_trace(model, guide_trace, xb, idx, n, model_unused, model_given)
        _plate_checks(guide_trace, "guide", m, n)
        _plate_checks(model_trace, "model", m, n)
        nesting = _nesting([guide_trace, model_trace])
        structure = _structure(model_trace, nesting, guide_trace)
        _match_checks(model_trace, guide_trace, nesting, model)
        model_order, guide_order = _latent_order(model_trace, guide_trace), _latent_order(guide_trace, model_trace)
        structure = replace(structure, mean_field=model_order == guide_order)
        _param_checks([("model", model_trace), ("guide", guide_trace)], _owned_parameters(*owners))
        needs = ESTIMATOR_NEEDS[estimator]
        if "mean_field" in needs and not structure.mean_field:
            raise AevbInputError(
                f"estimator B (--elbo analytic) takes KL(q || p) in closed form site by site, which is the bound "
                f"only when the guide samples the latents in the model's order (the guide samples "
                f"{', '.join(guide_order)}; the model {', '.join(model_order)}; otherwise a site's KL is taken at "
                f"model parents drawn after it, e.g. KL(q(z1|x) || p(z1|z2)) at z2 ~ q(z2|z1)); use --elbo trace "
                f"(estimator A) or --elbo iwae")
        if "local_only" in needs:
            require_local_only(structure, {"iwae": "the IWAE bound"}.get(estimator, "importance sampling of log p(x)"))
        _enumeration_checks(structure, guide_trace, estimator)
        for name in structure.latents:
            if name in structure.enumerated:
                continue  # summed out exactly: no reparameterization, no KL (rule 6)
            q, p = guide_trace.nodes[name]["fn"], model_trace.nodes[name]["fn"]
            if "reparameterized" in needs and not getattr(q, "has_rsample", False):
                enumerate_hint = (" or, as it has finite support, sum it out: infer={'enumerate': 'parallel'} at "
                                  "the guide's site (pyro.infer.config_enumerate)"
                                  if getattr(q, "has_enumerate_support", False) else "")
                raise AevbInputError(
                    f"guide site {name!r} is {_describe(q)}, which cannot be reparameterized (no rsample): AEVB's "
                    f"estimators need z = g_phi(eps, x) (section 2.4); use a reparameterizable family "
                    f"(Normal, Laplace, ... see pyro_aevb.guides){enumerate_hint}")
            if "analytic_kl" in needs:
                try:
                    kl_divergence(q, p)
                except NotImplementedError:
                    raise AevbInputError(
                        f"estimator B (--elbo analytic) needs KL(q || p) in closed form, but site {name!r} has "
                        f"q = {_describe(q)} and p = {_describe(p)} with no analytic KL; use --elbo trace (estimator "
                        f"A) or a guide with an analytic KL (normal, laplace, gumbel, lowrank, fullcov)") from None
        if structure.enumerated and estimator == "trace":
            _enumerated_trial(model, guide, xb, idx, n, nesting)
    return structure


def _latent_order(trace, other) -> Tuple[str, ...]:
    """The latent sites of ``trace`` that ``other`` samples too, in ``trace``'s program order."""
    return tuple(name for name, site in trace.nodes.items() if is_latent(site) and name in other.nodes)


def _enumeration_checks(structure: ModelStructure, guide_trace, estimator: Optional[str]) -> None:
    """Rule 6: which estimators can sum out an enumerated site."""
    if not structure.enumerated:
        return
    names = ", ".join(map(repr, structure.enumerated))
    if estimator == "analytic":
        raise AevbInputError(f"estimator B (--elbo analytic) cannot sum out the enumerated discrete latent(s) {names}: "
                             "use --elbo trace (estimator A, which enumerates them exactly with Pyro's TraceEnum_ELBO)")
    if estimator == "iwae":
        raise AevbInputError(f"the IWAE bound cannot sum out the enumerated discrete latent(s) {names}: use --elbo "
                             "trace (estimator A, TraceEnum_ELBO)")
    summed_in_model = [name for name in structure.enumerated if name not in guide_trace.nodes]
    if estimator == "importance" and summed_in_model:
        raise AevbInputError(f"importance sampling of log p(x) draws every latent from the guide, but "
                             f"{', '.join(map(repr, summed_in_model))} is summed out in the model and not sampled "
                             "by the guide")


def _enumerated_trial(model, guide, xb, idx, n, nesting) -> None:
    """One TraceEnum_ELBO evaluation on the probe rows: shapes that do not broadcast over the enumeration
    dimension (to the left of the plates) fail here with one line instead of in the first training step."""
    elbo = TraceEnum_ELBO(num_particles=1, vectorize_particles=True, max_plate_nesting=nesting)  # estimator A
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            elbo.loss(model, guide, xb, idx, n)
    except AevbInputError:
        raise
    except Exception as e:  # noqa: BLE001 -- a user's program that does not broadcast is one clear line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AevbInputError(
            f"model and guide fail under enumeration (Pyro's TraceEnum_ELBO on two rows): {type(e).__name__}: {msg} "
            f"-- an enumerated site's value has extra dimensions on the left (e.g. [K, 1] for a site in the data "
            f"plate), so code that uses it must broadcast (pyro_aevb.nn.cat_broadcast, not torch.cat)") from e


def _support_error(name: str, role: str, site: dict, error: Exception) -> AevbInputError:
    fn = site["fn"]
    if "broadcastable" in str(error):
        return AevbInputError(
            f"site {name!r} of the {role}: the data's shape does not fit {_describe(fn)} "
            f"({str(error).splitlines()[0]}); check the width of the data against the model's (e.g. its data_dim)")
    if not is_observed(site):  # a latent: the guide's draw is outside the model's support for it
        return AevbInputError(
            f"site {name!r} of the {role}: a value is outside the support of {_describe(fn)} "
            f"({str(error).splitlines()[0]}); the guide must draw {name!r} on the support of the model's "
            f"distribution ({fn.support}), e.g. a LogNormal, or a Normal through a transform, for a positive prior")
    return AevbInputError(
        f"site {name!r} of the {role}: a value is outside the support of {_describe(fn)} "
        f"({str(error).splitlines()[0]}); e.g. grey values under a Bernoulli: binarize the data "
        f"(--binarize static / load_dataset(..., binarize='static')) or use a likelihood on [0, 1] such as "
        f"ContinuousBernoulli")


def _compute_log_prob(trace, role: str) -> None:
    """``trace.compute_log_prob()`` with a value outside a distribution's support as one clear error."""
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and not site_is_subsample(site):
            try:
                site["fn"].log_prob(site["value"])
            except ValueError as e:
                raise _support_error(name, role, site, e) from None
    trace.compute_log_prob()


@torch.no_grad()
def check_data_support(model: Callable, x: torch.Tensor, what: str = "the data", chunk: int = 5000,
                       inputs: Optional[Inputs] = None) -> None:
    """Every row of ``x`` lies in the support of the model's observed distributions (checked once, in chunks,
    so that training never meets an out-of-support value halfway through an epoch).  A built-in model checks
    against its likelihood's declared support directly; any other model is traced on the rows."""
    if not isinstance(x, torch.Tensor):
        raise AevbInputError(f"{what} must be a tensor with one row per datapoint, got {type(x).__name__}")
    check_finite(x, what)
    likelihood = getattr(model, "likelihood", None)
    if hasattr(likelihood, "check_data"):
        likelihood.check_data(x, what)
        return
    inputs = check_inputs(inputs, x.shape[0], what)
    require_inputs(model, "model", inputs)
    unused = tuple(n for n in (input_names(model)[0] or ()) if n not in inputs)
    with _quiet_side_effects(x):
        for start in range(0, x.shape[0], chunk):
            block = slice(start, start + chunk)
            trace = _run(poutine.trace(condition(model, rows(inputs, block))).get_trace, "model", x[block],
                         unused_inputs=unused, given_inputs=tuple(taken(model, inputs)))
            for name, site in trace.nodes.items():
                if is_observed(site):
                    support = site["fn"].support
                    ok = support.check(site["value"])
                    if not bool(ok.all()):
                        raise AevbInputError(
                            f"{what}: rows {start}..{min(start + chunk, x.shape[0]) - 1} have values outside the "
                            f"support of site "
                            f"{name!r} ({_describe(site['fn'])}, support {support}); e.g. grey values under a "
                            "Bernoulli: binarize the data (--binarize static) or use a likelihood on [0, 1]")


def _is_module_attribute(model: Callable, name: str) -> bool:
    """Whether sample site ``name`` is named ``<submodule path>.<attr>`` for a submodule of ``model`` whose ``attr``
    is neither a parameter nor a child module (``decoder.0.weight``): a ``PyroSample`` attribute, drawn when the
    code reads ``module.attr``."""
    module = poutine.unwrap(model)
    if not isinstance(module, torch.nn.Module) or "." not in name:
        return False
    prefix, _, attr = name.rpartition(".")
    for path, sub in module.named_modules():
        if path and (prefix == path or prefix.endswith("." + path)):
            return attr not in dict(sub.named_parameters(recurse=False)) and attr not in dict(sub.named_children())
    return False


def _global_in_data_plate(name: str) -> AevbInputError:
    """The model samples what looks like a global (a Bayesian layer's weight) inside the ``data`` plate."""
    return AevbInputError(
        f"the model samples {name!r} inside the 'data' plate, which makes it one latent per datapoint; a global "
        f"such as a Bayesian layer's PyroSample weight must be sampled outside the plate: read it (e.g. "
        f"layer.weight) before entering pyro.plate('data') (as BayesianMLP.sample_weights does)")


def _match_checks(model_trace, guide_trace, nesting: int, model: Optional[Callable] = None) -> None:
    """Pyro's model/guide checks, with its warnings turned into errors that say what to change."""
    model_latents = {name for name, site in model_trace.nodes.items() if is_latent(site)}
    summed_in_model = {name for name in model_latents if is_enumerated(model_trace.nodes[name])}
    guide_latents = {name for name, site in guide_trace.nodes.items()
                     if is_latent(site) and not site["infer"].get("is_auxiliary")}
    missing = sorted(model_latents - guide_latents - summed_in_model)  # rule 6: the model sums those out
    extra = sorted(guide_latents - model_latents)
    for name in missing:
        if data_frame(model_trace.nodes[name]) is not None and _is_module_attribute(model, name):
            raise _global_in_data_plate(name)
    if missing:
        also = f" (it samples {', '.join(map(repr, extra))} instead: a misspelt name?)" if extra else ""
        raise AevbInputError(f"the guide does not sample the model's latent site(s) {', '.join(map(repr, missing))}"
                             f"{also}: a guide must sample every latent of the model under the same name")
    if extra:
        raise AevbInputError(f"the guide samples {', '.join(map(repr, extra))}, which the model does not have: rename "
                             "them to the model's latent sites or mark them infer={'is_auxiliary': True}")
    for name in sorted(model_latents & guide_latents):
        in_model, in_guide = data_frame(model_trace.nodes[name]), data_frame(guide_trace.nodes[name])
        if in_model is not None and in_guide is None and _is_module_attribute(model, name):
            raise _global_in_data_plate(name)  # the guide has it right: a global, outside the plate
        if (in_model is None) != (in_guide is None):
            where = "inside" if in_model is not None else "outside"
            raise AevbInputError(f"site {name!r} is {where} the 'data' plate in the model but not in the guide: the "
                                 f"guide must repeat the model's plates; {HOW_TO}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the conditions it warns about were turned into errors above
        try:
            check_model_guide_match(model_trace, guide_trace, nesting)
        except (ValueError, NotImplementedError) as e:
            raise AevbInputError(f"model and guide disagree: {str(e).splitlines()[0]}") from None
    for role, trace in (("model", model_trace), ("guide", guide_trace)):
        _compute_log_prob(trace, role)
        for name, site in trace.nodes.items():
            if site["type"] == "sample" and not site_is_subsample(site):
                try:
                    check_site_shape(site, nesting)
                except ValueError as e:
                    raise AevbInputError(f"site {name!r} of the {role}: {' '.join(str(e).split())}") from None
                lp = site["log_prob"]
                frame = data_frame(site)
                if frame is not None and lp.dim() >= -frame.dim and lp.shape[frame.dim] != frame.size:
                    raise AevbInputError(
                        f"site {name!r} of the {role} has batch shape {list(lp.shape)}, which does not have the "
                        f"minibatch's {frame.size} rows at the 'data' plate's dim {frame.dim}; give the distribution "
                        f"one batch entry per datapoint (use .to_event() for the per-datapoint dimensions)")


