"""A Hydra callback for tests: SIGKILL the process that runs one job of a joblib multirun once its
first epoch is saved, as the OOM killer or ``kill -9`` would. Added with
``+hydra.callbacks.kill._target_=tests.job_killer.KillJobProcess +hydra.callbacks.kill.latent_dim=N``."""

import os
import signal
import threading
import time
from pathlib import Path

from hydra.experimental.callback import Callback


class KillJobProcess(Callback):
    def __init__(self, latent_dim: int) -> None:
        self.latent_dim = latent_dim

    def on_job_start(self, config, **kwargs) -> None:
        if config.latent_dim == self.latent_dim:
            last = Path(config.hydra.runtime.output_dir) / "last.pt"
            threading.Thread(target=_kill_children_once_written, args=(last,), daemon=True).start()


def _kill_children_once_written(path: Path) -> None:
    """The joblib worker runs the job in a child process: that child is the job's process."""
    while not path.exists():
        time.sleep(0.05)
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for child in (task / "children").read_text().split():
            os.kill(int(child), signal.SIGKILL)
