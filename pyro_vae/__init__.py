"""pyro-vae: the variational autoencoder in Pyro, trained by SVI on the ELBO.

From Python: ``run_experiment(compose_config(["latent_dim=2"]), run_dir)`` trains and evaluates
as ``python run.py latent_dim=2 hydra.run.dir=RUN_DIR`` does; ``load(run_dir)`` gives the VAE back.
"""

from .modelling.vae import VAE, build_vae
from .runs.checkpoints import load
from .runs.config import compose_config
from .runs.training_run import run_experiment

__all__ = ["VAE", "build_vae", "compose_config", "load", "run_experiment"]
__version__ = "0.1.0"
