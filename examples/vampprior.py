"""A VAE with the VampPrior: p(z) is a mixture of the guide's own posteriors at K learned pseudo-inputs.

Tomczak & Welling (2018), *VAE with a VampPrior*.  The prior that maximises the bound averaged over the data is
the aggregated posterior (1/N) sum_n q_phi(z | x_n) (their section 3); the VampPrior approximates it with K
learned pseudo-inputs u_1..u_K in data space (their eq. 9):

    p_lambda(z) = (1/K) sum_k q_phi(z | u_k),       x | z ~ p_theta(x | z),

with q_phi(z | x) = N(mu_phi(x), diag sigma_phi^2(x)) the Gaussian encoder of appendix C.2 (AEVB).  Prior and
guide share the encoder (mu_phi, sigma_phi), so the prior moves whenever the encoder does.  The pseudo-inputs are
pixels: they pass through hardtanh(u, 0, 1) and start at N(0.05, 0.01^2), as in the authors' code.

The bound is eq. 3 of AEVB with this prior, estimated by Monte Carlo (estimator A, ``--elbo trace``): the KL
from a Gaussian to a mixture has no closed form,

    L(x) = E_q(z|x) [log p_theta(x | z) + log p_lambda(z) - log q_phi(z | x)].

**How the encoder is shared.**  The command line builds the model first and then the guide; a guide whose
constructor takes an argument named ``model`` is given that model (as ``data_dim`` is filled in from the data),
and so is the guide that ``load_run`` rebuilds.  The encoder lives in the model -- it is a parameter of p(z),
hence theta: it gets the prior's weight decay and is optimised once, in the model's group -- and the guide
keeps a reference, ``self.encoder = model.encoder``.  From Python: ``model = Model(784); guide = Guide(784,
model)``.

Likelihood: ``pyro_aevb.models.get_likelihood("bernoulli")``, the built-in ``--likelihood bernoulli`` that the
paper applies to MNIST's grey values (appendix C.1; Pyro's Bernoulli with its support widened to [0, 1]), so the
bound is comparable with the paper's VAE in ``docs/gallery.md``.

    pyro-aevb train --dataset mnist --model examples/vampprior.py:Model --guide examples/vampprior.py:Guide \\
        --latent-dim 20 --hidden-dim 500 --elbo trace --optimizer adam --lr 1e-3 --epochs 10 --out runs/vamp
"""

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_aevb.models import get_likelihood
from pyro_aevb.plates import data_plate


class Model(PyroModule):
    """p_lambda(z) p_theta(x | z) with the VampPrior p_lambda(z) = (1/K) sum_k q_phi(z | u_k).

    :param data_dim: D, pixels per image.
    :param latent_dim: J.
    :param hidden_dim: tanh units of the encoder's and the decoder's hidden layer.
    :param num_pseudo_inputs: K (Tomczak & Welling use 500 on MNIST).
    """

    def __init__(self, data_dim: int, latent_dim: int = 20, hidden_dim: int = 500, num_pseudo_inputs: int = 500):
        super().__init__()
        self.init_kwargs = {"data_dim": data_dim, "latent_dim": latent_dim, "hidden_dim": hidden_dim,
                            "num_pseudo_inputs": num_pseudo_inputs}
        #: mu_phi, log sigma_phi^2 of q_phi(z | x): used by the prior here and by the guide
        self.encoder = nn.Sequential(nn.Linear(data_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, 2 * latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, data_dim))
        #: u_1..u_K before the hardtanh that keeps them in the data's [0, 1]
        self.pseudo_inputs = nn.Parameter(0.05 + 0.01 * torch.randn(num_pseudo_inputs, data_dim))
        self.likelihood = get_likelihood("bernoulli")

    def posterior(self, x: torch.Tensor) -> dist.Distribution:
        """q_phi(z | x) = N(mu_phi(x), diag sigma_phi^2(x)), batch shape ``x.shape[:-1]``."""
        loc, log_var = self.encoder(x).chunk(2, -1)
        return dist.Normal(loc, (0.5 * log_var).exp()).to_event(1)

    def prior(self) -> dist.Distribution:
        """p_lambda(z): the equally weighted mixture of q_phi(z | u_k) over the K pseudo-inputs."""
        u = nn.functional.hardtanh(self.pseudo_inputs, 0.0, 1.0)
        components = self.posterior(u)  # batch [K], event [J]
        weights = dist.Categorical(logits=u.new_zeros(u.shape[0]))
        return dist.MixtureSameFamily(weights, components)

    def forward(self, x, idx=None, num_data=None):
        prior = self.prior()  # once per call: the K pseudo-inputs through the encoder, outside the data plate
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", prior)
            pyro.sample("x", self.likelihood(self.decoder(z)).to_event(1), obs=x)


class Guide(PyroModule):
    """q_phi(z | x) with the model's encoder: ``Guide(data_dim, model)``.

    :param data_dim: D (checked against the encoder's input width).
    :param model: the :class:`Model` whose encoder the prior runs; the command line and ``load_run`` pass it.
    """

    def __init__(self, data_dim: int, model: Model):
        super().__init__()
        self.init_kwargs = {"data_dim": data_dim}  # ``model`` is not recorded: it is given again on rebuild
        if model.encoder[0].in_features != data_dim:
            raise ValueError(f"the model's encoder reads {model.encoder[0].in_features} pixels, the data have "
                             f"{data_dim}")
        self.encoder = model.encoder  # the same module: one set of parameters, optimised once (as theta)

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data):
            loc, log_var = self.encoder(x).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, (0.5 * log_var).exp()).to_event(1))
