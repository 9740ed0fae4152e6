"""The paper's baselines: wake-sleep (Fig. 2, 3) and Monte Carlo EM (Fig. 3, appendix E).

Both train the same ``VAEModel`` decoder as AEVB and expose the same loop as
:class:`pyro_aevb.Trainer`: ``fit(train_samples=...)`` continues training until
that many datapoints have been processed in total.
"""

from .mcem import MonteCarloEM
from .wake_sleep import WakeSleep

__all__ = ["MonteCarloEM", "WakeSleep"]
