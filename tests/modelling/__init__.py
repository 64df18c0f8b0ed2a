"""Tests of pyro_vae/modelling."""
