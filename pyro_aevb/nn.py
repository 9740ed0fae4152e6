"""Network building blocks shared by the generative side (``models``) and the
recognition side (``guides``).

Appendix C of the paper uses one-hidden-layer MLPs,
``h = tanh(W1 x + b1)``, followed by affine output heads.  :func:`mlp` builds
that network with configurable depth, width and activation, and
:func:`init_normal_` gives the initialisation of section 5: "parameters are
initialized by sampling from N(0, 0.01)".

The paper does not say whether 0.01 is the variance or the standard deviation.
We read it as the **standard deviation** (``std=0.01``): this is the
``numpy.random.normal(0, 0.01, shape)`` convention of the authors' own Theano
code, and with std 0.01 a 784-500-20 network starts with pre-activations of
order 0.01 * sqrt(784) * 0.5 ~ 0.1, well inside tanh's linear range; the
variance reading (std 0.1) starts the 500-unit layer closer to saturation.
Both weights and biases are drawn, as "parameters" in the paper.

That initialisation belongs to the paper's recipe (Adagrad, step 0.02), not to
every run: :func:`initialize_` applies ``init="paper"`` (the above) or
``init="torch"`` (PyTorch's default layer initialisation, kept as built --
Kaiming-uniform weights, which suits Adam and ReLU/softplus networks much
better; see ``docs/pyro_recipe.md``).
"""

from typing import Sequence

import torch
from torch import nn

from .errors import AevbInputError

ACTIVATIONS = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
}

INIT_STD = 0.01
INITS = ("paper", "torch")


def mlp(in_dim: int, hidden_dims: Sequence[int], out_dim: int, activation: str = "tanh") -> nn.Sequential:
    """``Linear -> act -> ... -> Linear``: ``len(hidden_dims)`` hidden layers."""
    if activation not in ACTIVATIONS:
        raise AevbInputError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
    dims = [in_dim, *hidden_dims]
    for d in dims + [out_dim]:
        if int(d) < 1:
            raise AevbInputError(f"layer sizes must be >= 1, got {list(dims) + [out_dim]}")
    layers = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
    layers.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


@torch.no_grad()
def init_normal_(module: nn.Module, std: float = INIT_STD) -> nn.Module:
    """Draw every parameter of ``module`` from N(0, std^2) in place (section 5)."""
    for p in module.parameters():
        p.normal_(0.0, std)
    return module


def initialize_(module: nn.Module, init: str = "paper") -> nn.Module:
    """``"paper"``: every parameter from N(0, 0.01^2) (section 5); ``"torch"``: PyTorch's default, left as built."""
    if init not in INITS:
        raise AevbInputError(f"unknown init {init!r}; choose from {list(INITS)}")
    return init_normal_(module) if init == "paper" else module


def cat_broadcast(*tensors: torch.Tensor) -> torch.Tensor:
    """Concatenate along the last dimension after broadcasting the others: e.g. a one-hot class ``[K, 1, K]``
    (enumerated by Pyro to the left of the data plate) with images ``[M, D]`` gives ``[K, M, K + D]``."""
    batch = torch.broadcast_shapes(*(t.shape[:-1] for t in tensors))
    return torch.cat([t.expand(batch + t.shape[-1:]) for t in tensors], dim=-1)


class JoinedInputMLP(nn.Module):
    """``mlp(a_dim + b_dim, hidden_dims, out_dim)`` applied to ``[a, b]``, its first layer split as
    ``W [a; b] = W_a a + W_b b``: the same function, but ``a`` (the images, ``[M, D]``) is multiplied once while
    ``b`` (e.g. an enumerated one-hot class, ``[K, 1, K]``) broadcasts -- K times fewer products than
    ``mlp(cat_broadcast(a, b))``."""

    def __init__(self, a_dim: int, b_dim: int, hidden_dims: Sequence[int], out_dim: int, activation: str = "tanh"):
        super().__init__()
        if not hidden_dims:
            raise AevbInputError("JoinedInputMLP needs at least one hidden layer")
        self.input_a = nn.Linear(a_dim, hidden_dims[0])
        self.input_b = nn.Linear(b_dim, hidden_dims[0], bias=False)
        self.rest = nn.Sequential(ACTIVATIONS[activation](), *mlp(hidden_dims[0], hidden_dims[1:], out_dim, activation))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.rest(self.input_a(a) + self.input_b(b))
