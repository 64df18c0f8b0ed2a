"""The tasks of ``task=``: training a VAE or a GAN end to end (data, loop, evaluation, figures), and the
tasks on a finished run (evaluate, sample, reconstruct, interpolate, sample_quality)."""
