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

Beyond the paper: :class:`ConvEncoder` / :class:`ConvDecoder`, the stride-2 convolutional stacks of
the convolutional VAE, and :func:`check_layers` for the stochastic layers of the hierarchical VAE.
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


class ConvEncoder(nn.Module):
    """Images as rows ``[..., H * W]`` -> features ``[..., C_L * ceil(H / 2^L) * ceil(W / 2^L)]``.

    ``h_0 = x`` as one ``H x W`` channel (zero-padded at the bottom and right to multiples of 2^L), then
    ``h_l = act(Conv2d_{4x4, stride 2, padding 1}(h_{l-1}))`` for the L entries of ``channels``: each layer
    halves the height and width.  Leading dimensions (particles, datapoints) are kept.
    """

    def __init__(self, image_shape: Sequence[int], channels: Sequence[int] = (32, 64), activation: str = "relu"):
        super().__init__()
        self.image_shape, self.channels, m = _conv_geometry(image_shape, channels, activation)
        h, w = self.image_shape
        self.padding = (0, -w % m, 0, -h % m)  # F.pad order: left, right, top, bottom
        layers, c_in = [], 1
        for c_out in self.channels:
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), ACTIVATIONS[activation]()]
            c_in = c_out
        self.net = nn.Sequential(*layers)
        #: (C_L, h_L, w_L), the shape of the last feature map
        self.feature_shape = (c_in, -(-h // m), -(-w // m))
        self.out_dim = c_in * self.feature_shape[1] * self.feature_shape[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        images = nn.functional.pad(x.reshape(-1, 1, *self.image_shape), self.padding)
        return self.net(images).reshape(*lead, self.out_dim)


class ConvDecoder(nn.Module):
    """Features ``[..., C_L * h_L * w_L]`` -> ``[..., P * H * W]``, the transpose of :class:`ConvEncoder`.

    The features are read as ``C_L`` maps of ``h_L x w_L``; ``L`` transposed convolutions
    (``ConvTranspose2d_{4x4, stride 2, padding 1}``, each doubling height and width; ``act`` between them, none
    after the last) go back through ``channels`` reversed to ``P = out_channels`` maps, cropped to ``H x W``.
    The output is channel-major, so ``out.chunk(P, -1)`` gives the P per-pixel parameter maps (the layout
    :class:`~pyro_aevb.models.Likelihood` expects).
    """

    def __init__(self, image_shape: Sequence[int], channels: Sequence[int] = (32, 64), out_channels: int = 1,
                 activation: str = "relu"):
        super().__init__()
        self.image_shape, self.channels, m = _conv_geometry(image_shape, channels, activation)
        h, w = self.image_shape
        self.feature_shape = (self.channels[-1], -(-h // m), -(-w // m))
        self.in_dim = self.feature_shape[0] * self.feature_shape[1] * self.feature_shape[2]
        self.out_channels = int(out_channels)
        widths = list(reversed(self.channels)) + [self.out_channels]
        layers = []
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
            if i < len(widths) - 2:
                layers.append(ACTIVATIONS[activation]())
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        lead = features.shape[:-1]
        h, w = self.image_shape
        maps = self.net(features.reshape(-1, *self.feature_shape))[..., :h, :w]
        return maps.reshape(*lead, self.out_channels * h * w)


def image_shape_of(data_dim: int, image_shape) -> tuple:
    """``(H, W)`` checked against rows of ``data_dim = H * W`` pixels."""
    shape = _image_shape(image_shape)
    if shape[0] * shape[1] != int(data_dim):
        raise AevbInputError(f"image_shape {list(shape)} has {shape[0] * shape[1]} pixels but the data have "
                             f"{data_dim} dimensions")
    return shape


def _image_shape(image_shape) -> tuple:
    if image_shape is None or len(image_shape) != 2 or min(int(s) for s in image_shape) < 1:
        raise AevbInputError(f"a convolutional network needs images of shape (H, W), got {image_shape!r}: use "
                             "mnist, frey or an [N, H, W] array")
    return tuple(int(s) for s in image_shape)


def _int_list(values, name: str) -> tuple:
    """A list of whole numbers (a string or 8.5 is refused rather than read digit by digit or truncated)."""
    ok = not isinstance(values, (str, bytes)) and hasattr(values, "__iter__")
    values = list(values) if ok else []
    if not ok or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer()
                         for v in values):
        raise AevbInputError(f"{name} must be a list of whole numbers, e.g. [16, 32]")
    return tuple(int(v) for v in values)


def _conv_geometry(image_shape, channels, activation: str):
    """Checked ``(image_shape, channels)`` of a convolution stack and its down-sampling factor 2^L."""
    image_shape, channels = _image_shape(image_shape), _channels(channels)
    if activation not in ACTIVATIONS:
        raise AevbInputError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
    return image_shape, channels, 2 ** len(channels)


def _channels(channels) -> tuple:
    channels = _int_list(channels, "channels")
    if not channels or min(channels) < 1:
        raise AevbInputError(f"channels must be a non-empty list of positive widths, got {list(channels)}")
    return channels


def check_layers(latent_dims: Sequence[int], hidden_dims: Sequence[Sequence[int]]) -> tuple:
    """``(latent_dims, hidden_dims)`` as tuples, one list of deterministic widths per stochastic layer."""
    latent = _int_list(latent_dims, "latent_dims")
    if not latent or min(latent) < 1:
        raise AevbInputError(f"latent_dims must be a non-empty list of positive sizes, got {list(latent_dims)}")
    if len(hidden_dims) != len(latent) or any(isinstance(h, (int, float)) for h in hidden_dims):
        raise AevbInputError(f"hidden_dims must give one list of widths per stochastic layer ({len(latent)}), e.g. "
                             f"[[200, 200], [100, 100]]; got {hidden_dims!r}")
    hidden = tuple(_int_list(h, "hidden_dims") for h in hidden_dims)
    if min((w for h in hidden for w in h), default=1) < 1:
        raise AevbInputError(f"hidden widths must be >= 1, got {hidden_dims!r}")
    return latent, hidden


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
