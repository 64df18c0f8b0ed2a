"""The run machinery: configuration (schema, validation, refusals), the training loop, run
directories and checkpoints, tasks, figures, logging and sweeps. It builds the modelling wing's
objects from a composed config."""
