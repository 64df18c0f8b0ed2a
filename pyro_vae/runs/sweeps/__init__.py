"""Hydra's side of a command: its callbacks (an unwritable output folder, cores shared between parallel
jobs), and the summary of a multirun's jobs."""
