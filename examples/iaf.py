"""The paper's VAE with a richer guide: a Gaussian followed by inverse autoregressive flows.

Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling (2016), *Improved Variational Inference with Inverse
Autoregressive Flow*.  The model is the paper's: z ~ N(0, I), x | z ~ p_theta(x | z) with one hidden layer of
tanh units (AEVB appendix C).  The guide starts from the Gaussian of AEVB appendix C.2, drawn with the
reparameterization trick (eq. 10 of AEVB), and the encoder also emits a context h:

    [mu_0, log sigma_0^2, h] = encoder(x),    z_0 = mu_0 + sigma_0 * eps,    eps ~ N(0, I),

then T autoregressive steps (IAF's eq. 10, in the numerically stable gated form of its Algorithm 1):

    [m_t, s_t] = AutoregressiveNN_t(z_{t-1}, h),    sigma_t = sigmoid(s_t),
    z_t = sigma_t * z_{t-1} + (1 - sigma_t) * m_t,

each z_t,i depending on z_{t-1,<i} only, so the Jacobian is triangular and

    log q(z_T | x) = log N(z_0; mu_0, sigma_0^2) - sum_t sum_i log sigma_t,i.

Each step is Pyro's ``ConditionalAffineAutoregressive(ConditionalAutoRegressiveNN(J, |h|, ...), stable=True)``
(``pyro.distributions.transforms``), conditioned on h per datapoint, and the guide samples z from
``TransformedDistribution(Normal(mu_0, sigma_0), [step_1(h), ..., step_T(h)])``; Pyro caches each step's input, so
the log-density of the sampled z costs no inversion.  The orderings alternate between the identity and its
reverse (IAF's experiments reverse the order after every step), fixed, so a rebuilt run has the same masks.  The flow steps are registered as
submodules of the guide (an ``nn.ModuleList``): their parameters are phi, saved and optimised with the encoder.

KL(q || p) has no closed form for a flow, so the bound (AEVB eq. 3) is estimated by Monte Carlo: estimator A,
``--elbo trace``.

Likelihood: ``pyro_aevb.models.get_likelihood("bernoulli")``, the built-in ``--likelihood bernoulli`` that the
paper applies to MNIST's grey values (appendix C.1; Pyro's Bernoulli with its support widened to [0, 1]), so the
bound is comparable with the paper's VAE in ``docs/gallery.md``.

    pyro-aevb train --dataset mnist --model examples/iaf.py:Model --guide examples/iaf.py:Guide \\
        --latent-dim 20 --hidden-dim 500 --elbo trace --optimizer adam --lr 1e-3 --epochs 10 --out runs/iaf
"""

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.transforms import ConditionalAffineAutoregressive
from pyro.nn import ConditionalAutoRegressiveNN, PyroModule
from torch import nn

from pyro_aevb.models import get_likelihood
from pyro_aevb.plates import data_plate


class Model(PyroModule):
    """The paper's VAE: z ~ N(0, I), x | z ~ Bernoulli(sigmoid(decoder(z))) on grey values (appendix C.1)."""

    def __init__(self, data_dim: int, latent_dim: int = 20, hidden_dim: int = 500):
        super().__init__()
        self.init_kwargs = {"data_dim": data_dim, "latent_dim": latent_dim, "hidden_dim": hidden_dim}
        self.latent_dim = latent_dim
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, data_dim))
        self.likelihood = get_likelihood("bernoulli")

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(x.new_zeros(self.latent_dim), 1.0).to_event(1))
            pyro.sample("x", self.likelihood(self.decoder(z)).to_event(1), obs=x)


class Guide(PyroModule):
    """q_phi(z | x): a diagonal Gaussian pushed through ``num_flows`` IAF steps conditioned on the context h.

    :param data_dim: D.
    :param latent_dim: J.
    :param hidden_dim: tanh units of the encoder's hidden layer.
    :param num_flows: T, the IAF steps.
    :param context_dim: |h|, the context the encoder passes to every step.
    :param flow_hidden_dim: width of each step's one hidden layer (MADE masks; at least J).
    """

    def __init__(self, data_dim: int, latent_dim: int = 20, hidden_dim: int = 500, num_flows: int = 2,
                 context_dim: int = 50, flow_hidden_dim: int = 200):
        super().__init__()
        self.init_kwargs = {"data_dim": data_dim, "latent_dim": latent_dim, "hidden_dim": hidden_dim,
                            "num_flows": num_flows, "context_dim": context_dim, "flow_hidden_dim": flow_hidden_dim}
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(nn.Linear(data_dim, hidden_dim), nn.Tanh(),
                                     nn.Linear(hidden_dim, 2 * latent_dim + context_dim))
        order = torch.arange(latent_dim)
        self.flows = nn.ModuleList(
            ConditionalAffineAutoregressive(
                ConditionalAutoRegressiveNN(latent_dim, context_dim, [flow_hidden_dim],
                                            permutation=order if t % 2 == 0 else order.flip(0)),
                stable=True)
            for t in range(num_flows))

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            out = self.encoder(x)
            loc, log_var = out[..., :self.latent_dim], out[..., self.latent_dim:2 * self.latent_dim]
            context = out[..., 2 * self.latent_dim:]
            base = dist.Normal(loc, (0.5 * log_var).exp()).to_event(1)
            pyro.sample("z", dist.TransformedDistribution(base, [flow.condition(context) for flow in self.flows]))
