"""Tests of pyro_vae/quality."""
