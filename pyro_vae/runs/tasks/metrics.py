"""The test figures of ``metrics.json``, shared by training runs and ``task=evaluate`` so that
both report the same quantities."""

import logging
import math
from typing import Any, Dict, Optional

import torch
from omegaconf import DictConfig

from ...data import Observation
from ...modelling.estimators import Shards, bits_per_dim, evaluate
from ...modelling.vae import VAE
from ..configuration.builders import likelihood_class
from .progress import phase

log = logging.getLogger(__name__)


def validation_metrics(
    vae: VAE,
    images: torch.Tensor,
    labels: torch.Tensor,
    cfg: DictConfig,
    num_data: int,
    across: Optional[Shards] = None,
) -> Dict[str, Any]:
    """The importance-sampled bound on log p(x) of the validation images, with ``eval.val_iwae_k``
    samples each: the figure to rank settings by, which leaves the test images out of every choice.
    Left null it is not estimated (a run is chosen by its validation ELBO; the screens that rank by
    this bound set it), and the log says how to ask for it: at K = 100 it costs a tenth of the
    test bound (docs/performance.md, "Where the evaluation's time goes").
    ``across``: the images are this process's shard (``evaluate``)."""
    k = cfg.eval.val_iwae_k
    if k is None:
        log.info("validation bound: not estimated; set eval.val_iwae_k (e.g. 100) to rank runs by val_log_likelihood")
        return {}
    val = _estimate(vae, images, labels, cfg, num_data, k, "validation bound", across)
    log.info("validation log-likelihood %.2f (K=%d)", val.log_likelihood, k)
    return {"val_log_likelihood": val.log_likelihood, "val_iwae_k": k}


def test_metrics(
    vae: VAE,
    images: torch.Tensor,
    labels: torch.Tensor,
    cfg: DictConfig,
    num_data: int,
    across: Optional[Shards] = None,
) -> Dict[str, Any]:
    """The test figures for float observations ``images``, estimated with ``cfg.eval``, for a VAE
    trained on ``num_data`` images; ``across``: the images are this process's shard (``evaluate``)."""
    test = _estimate(vae, images, labels, cfg, num_data, cfg.eval.iwae_k, "test bound", across)
    log.info(
        "test ELBO %.2f, test log-likelihood %.2f (K=%d), KL %.2f, active units %d/%d",
        test.elbo,
        test.log_likelihood,
        cfg.eval.iwae_k,
        test.kl,
        test.active_units,
        vae.latent_dim,
    )
    metrics = {
        **test.as_dict("test"),
        "iwae_k": cfg.eval.iwae_k,
        "likelihood": cfg.likelihood.name,
        # A conditional VAE's figures are log p(x | y), conditional on the test label.
        "likelihood_of": "log p(x|y)" if vae.conditional else "log p(x)",
        "latent_dim": vae.latent_dim,
    }
    observation = likelihood_class(cfg.likelihood).observes
    if observation != Observation.binary:
        num_dims = math.prod(images.shape[1:])
        dequantized = observation == Observation.dequantized
        metrics["test_bits_per_dim"] = bits_per_dim(test.log_likelihood, num_dims, dequantized)
        metrics["test_bits_per_dim_elbo"] = bits_per_dim(test.elbo, num_dims, dequantized)
    return metrics


def _estimate(
    vae: VAE,
    images: torch.Tensor,
    labels: torch.Tensor,
    cfg: DictConfig,
    num_data: int,
    k: int,
    name: str,
    across: Optional[Shards],
):
    """``evaluate`` with ``k`` importance samples per image and the rest of ``cfg.eval``, shown as ``name``."""
    shown = getattr(across, "writes", True)  # a group of processes: rank 0 shows its shard's progress
    with phase(name, len(images), "images", f"K = {k}", shown) as advance:
        return evaluate(
            vae,
            images,
            labels,
            num_samples=k,
            chunk_size=cfg.eval.chunk_size,
            weight_draws=cfg.eval.weight_draws,
            num_data=num_data,
            across=across,
            progress=advance,
        )
