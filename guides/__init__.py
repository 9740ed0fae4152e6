"""Recognition side of AEVB: amortized variational posteriors q_phi(z|x).

Installed as ``pyro_aevb.guides``.
"""

from .amortized import AmortizedNormalGuide

__all__ = ["AmortizedNormalGuide"]
