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
from pyro_vae.job_process import run_in_child_process, runs_in_a_worker_pool
from pyro_vae.run_directory import RunDirectoryInUse, check_output_dir, write_config_record
from pyro_vae.settings import validate
from pyro_vae.tasks import TASKS as FINISHED_RUN_TASKS

log = logging.getLogger("pyro_vae")

TASKS = {"train": run_experiment, **FINISHED_RUN_TASKS}


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> Optional[float]:
    """Run ``cfg.task``; training returns the best validation ELBO so that Hydra sweepers can maximise it."""
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        if cfg.task not in TASKS:
            raise ConfigError(f"task={cfg.task}: unknown task; choose one of {', '.join(TASKS)}")
        check_output_dir(cfg, output_dir)
        if cfg.task == "train":
            validate(cfg)
    except PyroVAEError as exc:
        if multirun:
            if not isinstance(exc, RunDirectoryInUse):
                write_config_record(cfg, hydra_cfg, output_dir)  # the sweep summary lists the job by its overrides
            raise  # Hydra records the failed job and the sweep goes on
        # Nothing is written yet, run.log included (its handler opens the file on the first record).
        for handler in [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]:
            logging.getLogger().removeHandler(handler)
        log.error("%s", exc)
        sys.exit(2)
    write_config_record(cfg, hydra_cfg, output_dir)
    try:
        if multirun and runs_in_a_worker_pool(hydra_cfg.launcher):
            return run_in_child_process(TASKS[cfg.task], cfg, output_dir)  # a killed job fails alone
        return TASKS[cfg.task](cfg, output_dir)
    except PyroVAEError as exc:
        if multirun:
            raise
        log.error("%s", exc)
        sys.exit(2)


if __name__ == "__main__":
    main()
