"""Train and evaluate the VAE: ``python run.py [overrides]`` or ``python run.py -m`` for sweeps;
``python run.py task=evaluate|sample|reconstruct|interpolate task.run_dir=PATH`` works on a finished run."""

import logging
import os
import sys
from pathlib import Path
from typing import Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from pyro_vae.errors import PyroVAEError
from pyro_vae.runs.job_process import run_in_child_process, runs_in_a_worker_pool
from pyro_vae.runs.refusals import check_against_schema, composition_refusal, refusal_line
from pyro_vae.runs.run_directory import RunDirectoryInUse, check_output_dir, write_config_record
from pyro_vae.runs.schema import option, register_schemas
from pyro_vae.runs.settings import validate

log = logging.getLogger("pyro_vae")

register_schemas()  # conf/ extends them: before Hydra composes anything


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> Optional[float]:
    """Run ``cfg.task`` (conf/task/); training returns the best validation ELBO, which Hydra sweepers maximise."""
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        check_against_schema(cfg)  # what Hydra lets past the schema: +key=value, ~key, key=???
        check_output_dir(cfg, output_dir)
        validate(cfg)  # every setting, once, before any work: a task's own settings too
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
    task = option("task", cfg.task.name).component()  # conf/task/: declared in schema.OPTIONS
    try:
        if multirun and runs_in_a_worker_pool(hydra_cfg.launcher):
            return run_in_child_process(task, cfg, output_dir)  # a killed job fails alone
        return task(cfg, output_dir)
    except PyroVAEError as exc:
        if multirun:
            raise
        log.error("%s", exc)
        sys.exit(2)


def run_command_line() -> None:
    """``main()`` as ``python run.py`` runs it. Hydra's composition errors (an unknown key, a value
    of the wrong type, an unknown group option) are refused in one line with exit status 2, as
    ``main`` refuses a bad value; any other error is a bug, shown with its whole traceback (exit
    status 1). HYDRA_FULL_ERROR=1 shows a composition error in full too."""
    users_setting = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises the error instead of printing its report
    try:
        main()
    except Exception as error:
        refusal = None if users_setting == "1" else composition_refusal(error, sys.argv[1:])
        if refusal is None:
            raise
        print(refusal_line(refusal), file=sys.stderr)
        sys.exit(2)
    finally:  # called in-process (tests, notebooks), the caller's environment is left as it was
        if users_setting is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = users_setting


if __name__ == "__main__":
    run_command_line()
