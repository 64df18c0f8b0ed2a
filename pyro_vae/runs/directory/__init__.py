"""The run directory: its checks and lock (one writer a run), the record of the command that began it,
durable checkpoints, history.csv and metrics.json, and a finished run opened again."""
