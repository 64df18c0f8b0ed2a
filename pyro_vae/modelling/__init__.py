"""The mathematics of the VAE: priors, guides, likelihoods, networks, the VAE and its variants,
objectives and estimators. Plain arguments and tensors: nothing here imports Hydra, OmegaConf or
the run wing (``pyro_vae.runs``), so it can be read and used from Python on its own."""
