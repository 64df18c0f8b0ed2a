"""Train and evaluate the VAE: ``python run.py [overrides]`` or ``python run.py -m`` for sweeps."""
import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from pyro_vae.errors import PyroVAEError
from pyro_vae.experiment import run_experiment

log = logging.getLogger("pyro_vae")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Return the best validation ELBO so that Hydra sweepers can maximise it."""
    hydra_cfg = HydraConfig.get()
    try:
        return run_experiment(cfg, Path(hydra_cfg.runtime.output_dir))
    except PyroVAEError as exc:
        if hydra_cfg.mode == RunMode.MULTIRUN:
            raise  # Hydra records the failed job and the sweep goes on
        log.error("%s", exc)
        sys.exit(2)


if __name__ == "__main__":
    main()
