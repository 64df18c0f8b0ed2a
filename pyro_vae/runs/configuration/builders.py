"""The modelling wing's objects built from a composed config.

Each builder looks its option up in ``schema.OPTIONS`` and hands plain arguments to what it
declares; the settings were checked before (``settings.validate``), so nothing here refuses.
"""

from typing import Callable, Optional, Tuple, Type, Union

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pyro.infer import ELBO, Trace_ELBO
from torch import nn

from ...data import Binarization, DatasetReader, DataSplits, Observation, PixelTransform, load_data
from ...modelling.gan import GAN
from ...modelling.guides import GuideFamily
from ...modelling.hierarchical import HierarchicalVAE
from ...modelling.likelihoods import GaussianPixels
from ...modelling.networks import GaussianLayer
from ...modelling.objectives import IWAE_ELBO, MAX_PLATE_NESTING, CorrectedJitTrace_ELBO, DeviceTrace_ELBO
from ...modelling.priors import LatentPrior
from ...modelling.semi_supervised import SemiSupervisedVAE, StackedSemiSupervisedVAE, mlp_classifier
from ...modelling.vae import BAYESIAN_DECODER_VARIANTS, VAE
from ...modelling.weights import MeanFieldWeights, make_bayesian_
from ...setting_types import ScaleMode
from .schema import likelihood_free, option
from .targets import buildable_target, import_target

ImageShape = Tuple[int, int, int]
FEATURE_SCALE_FLOOR = 1.0e-3


def likelihood_class(likelihood: DictConfig) -> type:
    """The pixel distribution class of ``likelihood=NAME``: it declares what it observes and its scale modes."""
    return option("likelihood", likelihood.name).component()


def build_likelihood(likelihood: DictConfig, image_shape: ImageShape) -> nn.Module:
    """The pixel distribution of ``likelihood.*`` for images of ``image_shape``."""
    likelihood_type = likelihood_class(likelihood)
    if "scale_mode" not in likelihood:  # Bernoulli: no settings of its own
        return likelihood_type()
    return likelihood_type(image_shape, likelihood.scale_mode, likelihood.fixed_scale, likelihood.min_pixel_scale)


def build_vae(cfg: DictConfig, image_shape: ImageShape, num_classes: int, num_data: Optional[int] = None) -> VAE:
    """The VAE described by ``cfg`` (``model``, ``guide``, ``prior``, ``net``, ``likelihood``, ``decoder``,
    ``latent_dim``) for images of ``image_shape`` in ``num_classes`` classes, fitted to a data set of
    ``num_data`` images."""
    model_class = option("model", cfg.model.name).component()
    context_dim = num_classes if model_class.conditional else 0
    encoder, decoder, likelihood = _networks(cfg, image_shape, context_dim)
    if model_class is HierarchicalVAE:
        return _hierarchical_vae(cfg, encoder, decoder, likelihood, image_shape, num_data)
    arguments = (encoder, decoder, likelihood, cfg.latent_dim) + ((num_classes,) if model_class.conditional else ())
    prior = _prior(cfg, cfg.latent_dim, image_shape)
    if not cfg.decoder.bayesian:
        return model_class(*arguments, num_data=num_data, prior=prior)
    initial = make_bayesian_(decoder, cfg.decoder.weight_prior_scale)
    weight_guide = MeanFieldWeights(initial, cfg.decoder.weight_init_scale, cfg.decoder.weight_prior_scale)
    return BAYESIAN_DECODER_VARIANTS[model_class](*arguments, num_data=num_data, prior=prior, weight_guide=weight_guide)


def _networks(
    cfg: DictConfig, image_shape: ImageShape, context_dim: int, likelihood: Optional[nn.Module] = None
) -> Tuple[nn.Module, nn.Module, nn.Module]:
    """The encoder, decoder and likelihood (``likelihood.*``'s unless given) of ``net.*`` and ``guide.*``; both
    networks also see a context of ``context_dim`` (a one-hot label) beside x or z."""
    likelihood = build_likelihood(cfg.likelihood, image_shape) if likelihood is None else likelihood
    networks = option("net", cfg.net.name).component()
    widths = list(cfg.net.widths)
    encoder = networks.encoder(
        image_shape, widths, cfg.latent_dim, cfg.net.activation, cfg.net.min_encoder_scale, context_dim, _family(cfg)
    )
    decoder = networks.decoder(
        cfg.latent_dim + context_dim, widths[::-1], image_shape, likelihood.params_per_pixel, cfg.net.activation
    )
    return encoder, decoder, likelihood


def build_semi_supervised(
    cfg: DictConfig, image_shape: ImageShape, num_classes: int, num_images: int = 0, m1: Optional[VAE] = None
) -> SemiSupervisedVAE:
    """Kingma et al.'s M2 (model=m2): the label a latent variable, q(y|x) an MLP of ``model.classifier_widths``,
    the classification term weighted by ``model.alpha`` times the ``num_images`` training images; given ``m1``,
    the trained VAE that ``model.features_from`` names (``checkpoints.features_model``), their M1+M2."""
    shape = image_shape if m1 is None else (1, 1, m1.latent_dim)
    # p(z1|y, z) of M1+M2: a Gaussian with a predicted scale (Kingma et al.'s), floored as pixels' scales are.
    features = None if m1 is None else GaussianPixels(shape, ScaleMode.predicted, 0.0, FEATURE_SCALE_FLOOR)
    encoder, decoder, likelihood = _networks(cfg, shape, num_classes, features)
    classifier = mlp_classifier(shape, list(cfg.model.classifier_widths), num_classes, cfg.net.activation)
    m2 = (classifier, encoder, decoder, likelihood, cfg.latent_dim, num_classes, cfg.model.alpha * num_images)
    prior = _prior(cfg, cfg.latent_dim, shape)
    return SemiSupervisedVAE(*m2, prior=prior) if m1 is None else StackedSemiSupervisedVAE(m1, *m2, prior=prior)


def build_gan(cfg: DictConfig, image_shape: ImageShape) -> GAN:
    """The DCGAN of ``model=gan`` (``model.*``, ``latent_dim``) for images of ``image_shape``."""
    return GAN(cfg.latent_dim, image_shape, cfg.model.generator_width, cfg.model.discriminator_width)


def build_model(
    cfg: DictConfig, image_shape: ImageShape, num_classes: int, m1: Optional[VAE] = None
) -> Union[VAE, GAN, SemiSupervisedVAE]:
    """The model of a run's ``cfg``, a VAE, (model=gan) a GAN or (model=m2) M2 (M1+M2 on ``m1``), as a
    checkpoint rebuilds it."""
    if likelihood_free(cfg):
        return build_gan(cfg, image_shape)
    if cfg.model.name == "m2":
        return build_semi_supervised(cfg, image_shape, num_classes, m1=m1)
    return build_vae(cfg, image_shape, num_classes)


def guide_class(guide: DictConfig) -> type:
    """The variational family ``guide._target_`` names, refused in one line where it cannot be imported."""
    return import_target("guide._target_", guide._target_)


def _family(cfg: DictConfig) -> Callable[[int, float], GuideFamily]:
    """The variational family of ``guide.*`` as the encoders build it, ``family(latent_dim, min_scale)``: its
    ``_target_`` with the option's own settings, the rest left to the encoder (``_partial_``)."""
    guide_class(cfg.guide)
    return instantiate(_settings(cfg.guide), _convert_="all")


def prior_class(prior: DictConfig) -> type:
    """The class ``prior._target_`` names, refused in one line unless it is a ``LatentPrior`` that takes
    the option's settings as its arguments after ``latent_dim`` and ``image_shape``."""
    settings = _settings(prior)
    del settings["_target_"]
    takes = "its settings, prior.*, are its arguments after latent_dim and image_shape"
    return buildable_target("prior._target_", prior._target_, LatentPrior, (1, (1, 1, 1)), settings, takes)


def _prior(cfg: DictConfig, latent_dim: int, image_shape: ImageShape) -> LatentPrior:
    """p(z) of ``prior.*`` over ``latent_dim`` dimensions (the top layer's, for two layers): its ``_target_``
    built with what only the run knows and the option's own settings."""
    prior_class(cfg.prior)
    return instantiate(_settings(cfg.prior), latent_dim, image_shape, _convert_="all")


def _settings(node: DictConfig) -> dict:
    """An option's own settings as plain Python values (lists as lists), its ``name`` left out."""
    settings = OmegaConf.to_container(node)
    del settings["name"]
    return settings


def _hierarchical_vae(cfg, encoder, decoder, likelihood, image_shape, num_data) -> HierarchicalVAE:
    """``model=hvae``: the x <-> z1 networks given, and the z1 <-> z2 layers of ``model.top_*``."""
    z1, z2, widths = cfg.latent_dim, cfg.model.top_latent_dim, list(cfg.model.top_widths)
    activation, floor = cfg.net.activation, cfg.net.min_encoder_scale
    top_encoder = GaussianLayer(z1, widths, z2, activation, floor)
    top_decoder = GaussianLayer(z2, widths[::-1], z1, activation, floor)
    prior = _prior(cfg, z2, image_shape)
    return HierarchicalVAE(encoder, decoder, likelihood, top_encoder, top_decoder, (z1, z2), num_data, prior)


# Settings of an optimizer option that are not arguments of its class.
NOT_ARGUMENTS = ("name", "_target_", "fused")


def optimizer_class_of(optimizer: DictConfig) -> Type[torch.optim.Optimizer]:
    """The class ``optimizer._target_`` names, refused in one line unless it is a torch optimizer that
    takes the option's settings."""
    arguments = {key: value for key, value in optimizer.items() if key not in NOT_ARGUMENTS}
    takes = "its settings, optimizer.*, are its arguments beside the parameters and lr"
    return buildable_target("optimizer._target_", optimizer._target_, torch.optim.Optimizer, ([],), arguments, takes)


def make_objective(objective: DictConfig, textbook: bool = False) -> ELBO:
    """The objective of ``objective=NAME`` with ``objective.num_particles`` particles (vectorized);
    ``textbook``: Pyro's own ``Trace_ELBO`` for ``objective=trace`` (``svi_step=pyro``), rather than
    ``DeviceTrace_ELBO``, the same estimate that the torch step reads without a host read per site."""
    objective_class = option("objective", objective.name).component()
    if textbook and objective_class is DeviceTrace_ELBO:
        objective_class = Trace_ELBO
    particles = objective.num_particles
    if objective_class is IWAE_ELBO:
        return IWAE_ELBO(particles, objective.gradient)
    extra = {"ignore_jit_warnings": True} if objective_class is CorrectedJitTrace_ELBO else {}
    return objective_class(
        num_particles=particles, vectorize_particles=particles > 1, max_plate_nesting=MAX_PLATE_NESTING, **extra
    )


def training_bound_name(cfg: DictConfig) -> str:
    """What the training column (``train_elbo``) estimates, for labels: the ELBO, the IWAE bound,
    or the beta-weighted objective."""
    if cfg.objective.name == "iwae":
        return f"IWAE bound (k = {cfg.objective.num_particles})"
    if cfg.kl_weight != 1 or cfg.kl_warmup_epochs > 0:
        return "KL-weighted objective"
    return "ELBO"


def dataset_reader(cfg: DictConfig) -> DatasetReader:
    """The reader of ``dataset=NAME`` for the ``dataset.*`` settings: its loader, class names and image shape."""
    return option("dataset", cfg.dataset.name).component().for_settings(cfg.dataset)


def load_dataset(cfg: DictConfig, device: torch.device) -> DataSplits:
    """The splits of ``cfg.dataset`` on ``device``."""
    return load_data(dataset_reader(cfg), cfg.dataset, device)


def pixel_transform(cfg: DictConfig) -> PixelTransform:
    """The transform of a run: ``dataset.binarize`` and ``seed``, and the view its likelihood observes; a GAN,
    which has none, sees binary draws when ``dataset.binarize`` asks for them and the grey levels otherwise."""
    if likelihood_free(cfg):
        binary = cfg.dataset.binarize != Binarization.none
        observes = Observation.binary if binary else Observation.grey_levels
        return PixelTransform(cfg.dataset.binarize, cfg.seed, observes, f"model={cfg.model.name}")
    return PixelTransform(
        cfg.dataset.binarize, cfg.seed, likelihood_class(cfg.likelihood).observes, cfg.likelihood.name
    )
