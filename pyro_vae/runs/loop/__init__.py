"""The one training loop: the training step with its optimizers and schedules, Lightning's ``Trainer``,
a LightningModule per kind of model, and the project's own behaviour as callbacks and plugins (durable
checkpoints, random streams, the divergence check, threads that follow the idle cores, signals held back
during a save, the processes of a data-parallel run)."""
