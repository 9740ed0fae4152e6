"""A model and guide as a user would write them, against the public contract only (used by the tests).

Two local latent sites with names of their own ("style", 2-d, and "content", 3-d), a second plate over the
pixels (so the ``data`` plate sits at ``dim=-2``), a Bernoulli observation called "image".  No built-in
class is involved.
"""

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_aevb.plates import data_plate


class TwoLatentModel(PyroModule):
    """p(style) p(content) prod_d p(pixel_d | style, content)."""

    def __init__(self, data_dim: int, hidden: int = 32):
        super().__init__()
        self.data_dim = data_dim
        self.decoder = nn.Sequential(nn.Linear(5, hidden), nn.Tanh(), nn.Linear(hidden, data_dim))

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data, dim=-2):
            style = pyro.sample("style", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
            content = pyro.sample("content", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
            logits = self.decoder(torch.cat([style, content], -1).squeeze(-2))
            with pyro.plate("pixels", self.data_dim, dim=-1):
                pyro.sample("image", dist.Bernoulli(logits=logits), obs=x)


class TwoLatentGuide(PyroModule):
    """q(style | x) q(content | x), diagonal Gaussians from one MLP."""

    def __init__(self, data_dim: int, hidden: int = 32):
        super().__init__()
        self.init_kwargs = {"data_dim": data_dim, "hidden": hidden}
        self.encoder = nn.Sequential(nn.Linear(data_dim, hidden), nn.Tanh(), nn.Linear(hidden, 10))

    def forward(self, x, idx=None, num_data=None):
        with data_plate(x, idx, num_data, dim=-2):
            loc, log_scale = self.encoder(x).unsqueeze(-2).chunk(2, dim=-1)
            scale = log_scale.exp()
            pyro.sample("style", dist.Normal(loc[..., :2], scale[..., :2]).to_event(1))
            pyro.sample("content", dist.Normal(loc[..., 2:], scale[..., 2:]).to_event(1))


class MinibatchPlateModel(PyroModule):
    """The mistake the contract check exists for: a plate sized by the minibatch (len(x)), not by N."""

    def __init__(self, data_dim: int):
        super().__init__()
        self.decoder = nn.Linear(2, data_dim)

    def forward(self, x, idx=None, num_data=None):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x)


class MinibatchPlateGuide(PyroModule):
    def __init__(self, data_dim: int):
        super().__init__()
        self.encoder = nn.Linear(data_dim, 4)

    def forward(self, x, idx=None, num_data=None):
        with pyro.plate("data", len(x)):
            loc, log_scale = self.encoder(x).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))
