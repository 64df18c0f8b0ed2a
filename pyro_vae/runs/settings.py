"""Checks on the composed config that modules cannot make on their own, and the device and thread choices."""

import torch
from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from ..modelling.likelihoods import build_likelihood
from ..modelling.networks import ACTIVATIONS, NETWORKS
from ..modelling.objectives import make_objective
from ..modelling.weights import MIN_SCALE
from .optimizers import optimizer_arguments
from .tensorboard_logger import LOGGERS, require_tensorboard
from .values import is_integer, is_number, positive_int

MODELS = ("vae", "cvae")


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError, naming the setting and what it accepts, for the first bad value."""
    for name in (
        "latent_dim",
        "epochs",
        "batch_size",
        "eval.iwae_k",
        "eval.chunk_size",
        "eval.weight_draws",
        "dataset.val_size",
    ):
        positive_int(name, OmegaConf.select(cfg, name))
    if cfg.threads is not None:
        positive_int("threads", cfg.threads)
    if not isinstance(cfg.seed, int):
        raise ConfigError(f"seed={cfg.seed}: must be an integer")
    if cfg.net.name not in NETWORKS:
        raise ConfigError(f"net={cfg.net.name}: unknown network; choose one of {', '.join(NETWORKS)}")
    widths = cfg.net.widths
    if not all(isinstance(width, int) and width > 0 for width in widths):
        raise ConfigError(f"net.widths={list(widths)}: must be a list of positive integers, e.g. [512,256]")
    if cfg.net.activation not in ACTIVATIONS:
        raise ConfigError(f"net.activation={cfg.net.activation}: choose one of {', '.join(ACTIVATIONS)}")
    if not cfg.net.min_scale > 0:
        raise ConfigError(f"net.min_scale={cfg.net.min_scale}: must be > 0 so that q(z|x) never collapses")
    _check_variants(cfg)
    _check_decoder(cfg)
    _check_stopping(cfg)
    _check_logger(cfg.logger)
    # The objective, the optimizer and the likelihood check their own settings when built; build
    # them once here (cheap, no data), so that a bad value stops the run before any work.
    make_objective(cfg.elbo)
    optimizer_arguments(cfg.optimizer, cfg.lr, 1)
    build_likelihood(cfg.likelihood, (1, 28, 28))


def _check_variants(cfg: DictConfig) -> None:
    """The model variants and the objectives they can be trained with."""
    if cfg.model.name not in MODELS:
        raise ConfigError(f"model={cfg.model.name}: choose one of {', '.join(MODELS)}")
    if not (is_number(cfg.kl_weight) and cfg.kl_weight >= 0):
        raise ConfigError(f"kl_weight={cfg.kl_weight}: must be a number >= 0 (1 is the ELBO)")
    if not (is_integer(cfg.kl_warmup_epochs) and cfg.kl_warmup_epochs >= 0):
        raise ConfigError(f"kl_warmup_epochs={cfg.kl_warmup_epochs}: must be an integer >= 0")
    reweighted = cfg.kl_weight != 1 or cfg.kl_warmup_epochs > 0
    if reweighted and cfg.elbo.name == "iwae":
        raise ConfigError(
            "kl_weight/kl_warmup_epochs reweight the KL term, which elbo=iwae does not separate; use elbo=trace"
        )
    if cfg.kl_warmup_epochs > 0 and cfg.elbo.name == "jit":
        raise ConfigError(
            "kl_warmup_epochs changes the KL weight every step, which elbo=jit would recompile for; use elbo=trace"
        )
    if cfg.elbo.name == "jit" and OmegaConf.select(cfg, "likelihood.scale") == "optimal":
        raise ConfigError(
            "likelihood.scale=optimal updates its running sigma at every step, which elbo=jit's compiled graph "
            "skips; use elbo=trace"
        )
    if cfg.decoder.bayesian and cfg.elbo.num_particles > 1:
        raise ConfigError(
            "decoder.bayesian=true draws one set of decoder weights per step; set elbo.num_particles=1 (now "
            f"{cfg.elbo.num_particles})"
        )
    if cfg.decoder.bayesian and cfg.elbo.name == "iwae":
        raise ConfigError(
            "decoder.bayesian=true with elbo=iwae: the weights' log p(W) - log q(W) has no per-image weight to "
            "enter; use elbo=trace"
        )
    if cfg.elbo.name == "trace_pyro" and cfg.schedule.name != "constant":
        raise ConfigError(
            f"schedule={cfg.schedule.name} drives one torch optimizer, and elbo=trace_pyro trains with Pyro's "
            "per-parameter "
            "optimizers (pyro.optim); use elbo=trace or schedule=constant"
        )


def _check_decoder(cfg: DictConfig) -> None:
    """The Bayesian decoder's scales: each smaller one fails in float32 (see ``bayesian.MIN_SCALE``)."""
    decoder = cfg.decoder
    if not (is_number(decoder.prior_scale) and decoder.prior_scale >= MIN_SCALE):
        raise ConfigError(
            f"decoder.prior_scale={decoder.prior_scale}: must be a number >= {MIN_SCALE:g}, the standard deviation "
            "of the weights' prior"
        )
    if not (is_number(decoder.init_scale) and decoder.init_scale >= MIN_SCALE):
        raise ConfigError(
            f"decoder.init_scale={decoder.init_scale}: must be a number >= {MIN_SCALE:g}, the initial standard "
            "deviation of q(W)"
        )


def _check_stopping(cfg: DictConfig) -> None:
    """The plateau and cosine schedules and early stopping: patience in epochs, threshold in nats."""
    if cfg.schedule.name == "plateau":
        schedule = cfg.schedule
        if not (is_number(schedule.factor) and 0 < schedule.factor < 1):
            raise ConfigError(
                f"schedule.factor={schedule.factor}: must be a number in (0, 1), the learning rate's multiplier"
            )
        positive_int("schedule.patience", schedule.patience)
        _check_threshold("schedule.threshold", schedule.threshold)
        if not (is_number(schedule.min_lr) and schedule.min_lr >= 0):
            raise ConfigError(f"schedule.min_lr={schedule.min_lr}: must be a number >= 0")
    if cfg.schedule.name == "cosine":
        if not (is_number(cfg.schedule.final_factor) and 0 <= cfg.schedule.final_factor < 1):
            raise ConfigError(
                f"schedule.final_factor={cfg.schedule.final_factor}: must be a number in [0, 1), the fraction of lr "
                "left after the last epoch"
            )
        positive_int("schedule.epochs", cfg.schedule.epochs)
    patience = cfg.early_stopping.patience
    if patience is not None and not (is_integer(patience) and patience >= 1):
        raise ConfigError(
            f"early_stopping.patience={patience}: must be a positive integer, or null to never stop early"
        )
    _check_threshold("early_stopping.threshold", cfg.early_stopping.threshold)


def _check_threshold(name: str, value) -> None:
    if not (is_number(value) and value >= 0):
        raise ConfigError(f"{name}={value}: must be a number of nats >= 0 by which an epoch must beat the best")


def _check_logger(logger: DictConfig) -> None:
    """What watches the run; a missing tensorboard package is refused here, before any work."""
    if logger.name not in LOGGERS:
        raise ConfigError(f"logger={logger.name}: choose one of {', '.join(LOGGERS)}")
    if logger.name == "tensorboard":
        positive_int("logger.image_every", logger.image_every)
        require_tensorboard()


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is an error rather than a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device=cuda: no CUDA device is visible to torch; use device=auto or device=cpu")
        return torch.device("cuda")
    raise ConfigError(f"device={name}: choose auto, cpu or cuda")


def apply_threads(threads) -> None:
    """Set torch's CPU threads; null keeps torch's default, one per core. Torch's threads wait
    for each other actively, so with a core kept busy by another process an epoch of the default
    network measured 18x slower on 2 threads than on 1 (README, Performance, "Threads")."""
    if threads is not None:
        positive_int("threads", threads)
        torch.set_num_threads(threads)
