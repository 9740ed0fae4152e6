"""Recognition side of AEVB: variational posteriors q_phi(z|x) (and q(theta) for full VB).

Installed as ``pyro_aevb.guides``.  Guides by name: :func:`get_guide`.
"""

from .amortized import AmortizedNormalGuide
from .bayesian import FullVBGuide, MeanFieldWeightGuide, global_sites
from .conv import ConvNormalGuide
from .hierarchical import HierarchicalGuide
from .dmm import DMMGuide
from .location_scale import FAMILIES, AmortizedLocScaleGuide
from .lowrank import AmortizedFullCovGuide, AmortizedLowRankGuide
from .m2 import M2Guide
from .registry import GUIDE_NAMES, check_analytic_kl, get_guide

__all__ = [
    "AmortizedFullCovGuide", "AmortizedLocScaleGuide", "AmortizedLowRankGuide", "AmortizedNormalGuide",
    "ConvNormalGuide", "DMMGuide", "FAMILIES", "FullVBGuide", "HierarchicalGuide", "GUIDE_NAMES", "M2Guide",
    "MeanFieldWeightGuide", "check_analytic_kl", "get_guide", "global_sites",
]
