"""Train and evaluate the VAE: ``python run.py [overrides]`` or ``python run.py -m`` for sweeps;
``python run.py task=evaluate|sample|reconstruct|interpolate run_dir=PATH`` works on a finished run."""
import logging
import sys
from pathlib import Path
from typing import Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from pyro_vae.errors import ConfigError, PyroVAEError
from pyro_vae.experiment import run_experiment
from pyro_vae.tasks import TASKS as FINISHED_RUN_TASKS

log = logging.getLogger("pyro_vae")

TASKS = {"train": run_experiment, **FINISHED_RUN_TASKS}


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> Optional[float]:
    """Run ``cfg.task``; training returns the best validation ELBO so that Hydra sweepers can maximise it."""
    hydra_cfg = HydraConfig.get()
    try:
        if cfg.task not in TASKS:
            raise ConfigError(f"task={cfg.task}: unknown task; choose one of {', '.join(TASKS)}")
        return TASKS[cfg.task](cfg, Path(hydra_cfg.runtime.output_dir))
    except PyroVAEError as exc:
        if hydra_cfg.mode == RunMode.MULTIRUN:
            raise  # Hydra records the failed job and the sweep goes on
        log.error("%s", exc)
        sys.exit(2)


if __name__ == "__main__":
    main()
