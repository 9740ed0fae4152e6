"""Which models and guides declare the fixed structure the fused (Pyro-free) evaluations may use.

The built-in VAE's program is exactly ``z ~ model.prior(...)``, ``x ~ model.likelihood_dist(z)`` and
``z ~ guide.posterior(x)``; a class declares so with ``fused_compatible = True`` *on the class that
defines* ``forward``, so a subclass that rewrites the program is not fused unless it opts in again.  The
declaration is also checked numerically against Pyro before it is relied on
(:func:`pyro_aevb.infer.fused.cross_check`, and the same for importance sampling).
"""


def _declares_fused(obj) -> bool:
    """The class that defines ``obj.forward`` must itself set ``fused_compatible = True``: a subclass
    that rewrites the program (overrides ``forward``) is not fused unless it opts in again."""
    for cls in type(obj).__mro__:
        if "forward" in cls.__dict__:
            return bool(cls.__dict__.get("fused_compatible", False))
    return False


def is_fused_compatible(model, guide) -> bool:
    """True when model and guide have the fixed structure z ~ p(z), x ~ p(x|z); z ~ q(z|x)."""
    return _declares_fused(model) and _declares_fused(guide)
