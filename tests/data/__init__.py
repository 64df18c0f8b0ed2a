"""Tests of pyro_vae/data."""
