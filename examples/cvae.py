"""A conditional VAE of MNIST digits given their class: p(x | z, y) p(z) and q(z | x, y).

The VAE form of Sohn, Lee & Yan (2015), *Learning Structured Output Representation using Deep Conditional
Generative Models* (the idea of Pyro's ``examples/cvae``), with the class label y as a conditioning input that
neither side models: the generative model is

    z ~ p(z) = N(0, I),        x | z, y ~ p_theta(x | z, y),

and the guide is q_phi(z | x, y).  Sohn et al.'s bound (their eq. 4, with their input x our label y and their
output y our image x; Kingma & Welling's eq. 3 with every term conditioned on y) bounds the conditional
log-likelihood,

    log p_theta(x | y) >= E_q(z|x,y) [log p_theta(x | z, y)] - KL(q_phi(z | x, y) || p(z)),

which is what ``pyro-aevb evaluate`` reports for this model.  Sohn et al. also let the prior depend on y,
p_theta(z | y); here it stays N(0, I) (their "baseline CVAE" of the VAE form), so that samples for the ten
classes share one latent space and the KL term is closed-form (estimators A and B both apply).

Both networks are the paper's (appendix C): one hidden layer of ``hidden_dim`` tanh units; y enters as a
one-hot vector concatenated to z (decoder) and to x (encoder).  q is the Gaussian of appendix C.2, sampled with
the reparameterization trick (eq. 10).

Likelihood: MNIST's grey values lie in [0, 1], so the observation needs a likelihood that accepts them.  We
use ``pyro_aevb.models.get_likelihood("bernoulli")``, the very likelihood the built-in ``--likelihood
bernoulli`` VAE applies (appendix C.1: log p(x|z) = sum_i x_i log y_i + (1 - x_i) log(1 - y_i), Pyro's Bernoulli
with its support widened to [0, 1]), because the gallery's table compares bounds with the paper's VAE and only
the same likelihood makes the numbers comparable.  (On grey values it is a cross-entropy, not a normalised
density; ``pyro.distributions.ContinuousBernoulli`` is the normalised choice, at the cost of comparability.)

Train it, draw one row per class, or one class::

    pyro-aevb train --dataset mnist --model examples/cvae.py:Model --guide examples/cvae.py:Guide \\
        --latent-dim 20 --hidden-dim 500 --elbo trace --optimizer adam --lr 1e-3 --epochs 10 --out runs/cvae
    pyro-aevb sample runs/cvae                    # one row per digit 0..9
    pyro-aevb sample runs/cvae --condition y=3    # p(x | y = 3)

MNIST brings its digit as the input ``y``; the library passes it to every ``forward`` that names it (the
README's contract, item 6).
"""

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_aevb.models import get_likelihood
from pyro_aevb.plates import data_plate


def one_hot(y: torch.Tensor, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """The one-hot code of the labels ``y`` [M], broadcast to the leading dimensions of ``like`` [..., M, *]
    (e.g. the K importance samples of z ``[K, M, J]`` when ``log p(x | y)`` is estimated)."""
    code = nn.functional.one_hot(y.long(), num_classes).to(like.dtype)
    return code.expand(like.shape[:-1] + (num_classes,))


def _need_label(y):
    if y is None:
        raise ValueError("the conditional VAE needs each row's class: call it with y=labels (the library passes "
                         "MNIST's y itself)")


class Model(PyroModule):
    """p(z) p_theta(x | z, y): z ~ N(0, I); the decoder reads [z, one_hot(y)]."""

    def __init__(self, data_dim: int, latent_dim: int = 20, hidden_dim: int = 500, num_classes: int = 10):
        super().__init__()
        self.init_kwargs = {"data_dim": data_dim, "latent_dim": latent_dim, "hidden_dim": hidden_dim,
                            "num_classes": num_classes}
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.decoder = nn.Sequential(nn.Linear(latent_dim + num_classes, hidden_dim), nn.Tanh(),
                                     nn.Linear(hidden_dim, data_dim))
        self.likelihood = get_likelihood("bernoulli")

    def forward(self, x, idx=None, num_data=None, y=None):
        _need_label(y)
        with data_plate(x, idx, num_data):
            z = pyro.sample("z", dist.Normal(x.new_zeros(self.latent_dim), 1.0).to_event(1))
            logits = self.decoder(torch.cat([z, one_hot(y, self.num_classes, z)], -1))
            pyro.sample("x", self.likelihood(logits).to_event(1), obs=x)


class Guide(PyroModule):
    """q_phi(z | x, y) = N(mu, diag(sigma^2)) from an MLP of [x, one_hot(y)] (appendix C.2)."""

    def __init__(self, data_dim: int, latent_dim: int = 20, hidden_dim: int = 500, num_classes: int = 10):
        super().__init__()
        self.init_kwargs = {"data_dim": data_dim, "latent_dim": latent_dim, "hidden_dim": hidden_dim,
                            "num_classes": num_classes}
        self.num_classes = num_classes
        self.encoder = nn.Sequential(nn.Linear(data_dim + num_classes, hidden_dim), nn.Tanh(),
                                     nn.Linear(hidden_dim, 2 * latent_dim))

    def forward(self, x, idx=None, num_data=None, y=None):
        _need_label(y)
        with data_plate(x, idx, num_data):
            loc, log_var = self.encoder(torch.cat([x, one_hot(y, self.num_classes, x)], -1)).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, (0.5 * log_var).exp()).to_event(1))
