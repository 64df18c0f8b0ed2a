"""pyro-vae: the variational autoencoder in Pyro, trained by SVI on the ELBO."""
from .checkpoints import load
from .vae import VAE, build_vae

__all__ = ["VAE", "build_vae", "load"]
__version__ = "0.1.0"
