"""The built-in models, registered as any model is (:mod:`pyro_aevb.registry`): one declaration each.

* ``mlp``: the paper's VAE (section 3, appendix C): an MLP decoder p_theta(x|z), paired with the q(z|x) that
  ``--guide`` names; ``--bayesian-decoder`` makes its weights random, q(theta) q(z|x) (appendix F).
* ``conv``: convolutional encoder / transposed-convolution decoder on images, with its own Gaussian q(z|x).
* ``two_layer``: two stochastic layers (Burda et al. 2015), with its own guide x -> z1 -> z2.
* ``dmm``: the deep Markov model of sequences (Krishnan et al. 2017), with its own recurrent guide.
* ``m2``: the semi-supervised M2 (Kingma, Rezende, Mohamed & Welling 2014), with its own guide q(y|x) q(z|x,y).

Each ``build(config, data_dim, init)`` reads the run's settings (:class:`~pyro_aevb.config.RunConfig`) and returns
the model and the guide it brings (``None``: the one ``--guide`` names).
"""

from pyro_aevb.guides import ConvNormalGuide, DMMGuide, FullVBGuide, HierarchicalGuide, M2Guide
from pyro_aevb.models import BayesianVAEModel, ConvVAEModel, DMMModel, HierarchicalVAEModel, M2Model, VAEModel

from .errors import AevbInputError
from .registry import ModelEntry, register_model


def _construct(name: str, cls, kwargs: dict, role: str):
    """A built-in class from the settings and the JSON kwargs over them; a bad argument is one line (status 2)."""
    try:
        return cls(**kwargs)
    except AevbInputError:
        raise
    except (TypeError, ValueError) as e:  # e.g. "channels": "wide" in the model kwargs
        raise AevbInputError(f"cannot build the {role} of model {name!r} ({cls.__name__}) with {sorted(kwargs)}: "
                             f"{type(e).__name__}: {e}") from None


def _mlp(config, data_dim: int, init: str):
    if config.bayesian_decoder:
        return BayesianVAEModel(data_dim, config.latent_dim, config.hidden_dims, config.likelihood,
                                config.activation), None
    return VAEModel(data_dim, config.latent_dim, config.hidden_dims, config.likelihood, config.activation, init,
                    min_scale=config.min_scale), None


def _bayesian_decoder(config, model, guide, data_dim: int):
    """Appendix F: q(theta) over the decoder's weights beside the q(z|x) chosen."""
    return FullVBGuide(model, guide, data_dim) if config.bayesian_decoder else guide


def _conv(config, data_dim: int, init: str):
    if config.image_shape is None:
        raise AevbInputError("the conv model needs images: mnist, frey, or an [N, H, W] array (the rows of an "
                             "[N, D] array have no image shape)")
    kwargs = dict(config.model_kwargs, image_shape=config.image_shape, latent_dim=config.latent_dim,
                  hidden_dims=config.hidden_dims, activation=config.activation, init=init)
    model = _construct("conv", ConvVAEModel, dict(kwargs, data_dim=data_dim, likelihood=config.likelihood,
                                                  min_scale=config.min_scale), "model")
    return model, _construct("conv", ConvNormalGuide, dict(kwargs, data_dim=data_dim), "guide")


def _two_layer(config, data_dim: int, init: str):
    kwargs = dict(config.model_kwargs, activation=config.activation, init=init, data_dim=data_dim)
    model = _construct("two_layer", HierarchicalVAEModel, dict(kwargs, likelihood=config.likelihood,
                                                                min_scale=config.min_scale), "model")
    return model, _construct("two_layer", HierarchicalGuide, kwargs, "guide")


def _dmm(config, data_dim: int, init: str):
    model = DMMModel(data_dim, config.latent_dim, config.hidden_dims, config.hidden_dim, config.likelihood,
                     config.activation, init, min_scale=config.min_scale)
    return model, DMMGuide(data_dim, config.latent_dim, config.hidden_dim, init=init)


def _m2(config, data_dim: int, init: str):
    shared = dict(data_dim=data_dim, num_classes=config.num_classes or 10, latent_dim=config.latent_dim,
                  hidden_dims=config.hidden_dims, activation=config.activation, init=init)
    model = _construct("m2", M2Model, {**shared, "likelihood": config.likelihood, "min_scale": config.min_scale,
                                       **config.model_kwargs}, "model")
    return model, _construct("m2", M2Guide, {**shared, **config.guide_kwargs}, "guide")


MLP = register_model(ModelEntry(
    "mlp", _mlp, "the paper's VAE", init="paper", wrap_guide=_bayesian_decoder,
    sized_by="--latent-dim, --hidden-dim, --num-hidden-layers, --activation, --likelihood, --min-scale and --init"))
CONV = register_model(ModelEntry(
    "conv", _conv, "convolutional, sized by --latent-dim/--hidden-dim and --model-kwargs '{\"channels\": [16, 32]}'; "
    "docs/beyond/conv_two_layer.md", own_guide="its convolutional Gaussian q(z|x)", init="torch",
    model_kwargs=("channels",)))
TWO_LAYER = register_model(ModelEntry(
    "two_layer", _two_layer, "two stochastic layers, sized by --model-kwargs; docs/beyond/conv_two_layer.md",
    own_guide="its Gaussian q(z1|x) q(z2|z1)", init="torch", settings=frozenset({"activation", "likelihood",
                                                                                    "min_scale"}),
    sized_by="--model-kwargs '{\"latent_dims\": [100, 50], \"hidden_dims\": [[200, 200], [100, 100]]}' (its "
             "default, Burda et al.'s)", model_kwargs=("latent_dims", "hidden_dims")))
DMM = register_model(ModelEntry(
    "dmm", _dmm, "the deep Markov model of sequences, with --seq-len, docs/beyond/dmm.md",
    own_guide="its recurrent guide q(z_1:T | x_1:T)", init="paper", sequences=True))
M2 = register_model(ModelEntry(
    "m2", _m2, "the semi-supervised M2 of Kingma et al. 2014, with --labels N, docs/beyond/m2.md",
    own_guide="M2Guide: q(y|x) q(z|x,y)", init="torch", model_kwargs=None, guide_kwargs=True))

__all__ = ["CONV", "DMM", "M2", "MLP", "TWO_LAYER"]
