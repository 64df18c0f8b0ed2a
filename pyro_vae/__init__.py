"""pyro-vae: the variational autoencoder in Pyro, trained by SVI on the ELBO.

Two wings: :mod:`pyro_vae.modelling`, the mathematics (usable from Python without Hydra), and
:mod:`pyro_vae.runs`, the run machinery; :mod:`pyro_vae.data` reads the data sets.
From Python: ``run_experiment(compose_config(["latent_dim=2"]), run_dir)`` trains and evaluates
as ``python run.py latent_dim=2 hydra.run.dir=RUN_DIR`` does; ``load(run_dir)`` gives the VAE back
(or the GAN of a ``model=gan`` run, whose ``sample(n)`` draws images).
"""

from importlib import import_module
from typing import Any

# Imported on first use, so that ``import pyro_vae.modelling`` loads neither Hydra nor the run wing.
_API = {
    "GAN": "pyro_vae.modelling.gan",
    "VAE": "pyro_vae.modelling.vae",
    "build_vae": "pyro_vae.runs.configuration.builders",
    "compose_config": "pyro_vae.runs.configuration.config",
    "load": "pyro_vae.runs.directory.checkpoints",
    "run_experiment": "pyro_vae.runs.tasks.training_run",
}

__all__ = sorted(_API)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'pyro_vae' has no attribute {name!r}")
    return getattr(import_module(_API[name]), name)
