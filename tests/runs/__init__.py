"""Tests of pyro_vae/runs."""
