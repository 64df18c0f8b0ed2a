"""The one training loop: Lightning's ``Trainer``, a LightningModule per kind of model, and the
project's own behaviour as callbacks and plugins (durable checkpoints, random streams, the
divergence check, threads that follow the idle cores, signals held back during a save)."""
