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

# Light imports only (no torch, matplotlib or modelling wing): --help, --cfg and a refused setting answer
# without them; a task loads what it needs when it runs (tests/runs/test_startup.py keeps it so).
from pyro_vae.errors import PyroVAEError, RunInterrupted
from pyro_vae.runs.configuration.refusals import check_against_schema, composition_refusal, refusal_line
from pyro_vae.runs.configuration.schema import option, register_schemas
from pyro_vae.runs.configuration.settings import validate
from pyro_vae.runs.configuration.trainer_settings import follows_rank_zero, leave_the_log_to_rank_zero
from pyro_vae.runs.directory.run_directory import RunDirectoryInUse, check_output_dir
from pyro_vae.runs.directory.run_lock import hold_run_directory
from pyro_vae.runs.directory.run_record import RunRecord
from pyro_vae.runs.sweeps.callbacks import failed_sweep_message, remove_folders_made_for
from pyro_vae.runs.sweeps.job_process import run_in_child_process, runs_in_a_worker_pool

log = logging.getLogger("pyro_vae")

register_schemas()  # conf/ extends them: before Hydra composes anything


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> Optional[float]:
    """Run ``cfg.task``; training returns the best validation ELBO, which Hydra sweepers maximise."""
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    if follows_rank_zero(cfg.trainer):  # rank 0 of the same command checks, records and holds the directory
        leave_the_log_to_rank_zero()
        validate(cfg)
        return option("task", cfg.task.name).component()(cfg, output_dir)
    try:
        with RunRecord(cfg, hydra_cfg, output_dir, multirun) as record, hold_run_directory(output_dir) as lock:
            record.on_begin(lock.announce)
            check_against_schema(cfg)  # what Hydra lets past the schema: +key=value, ~key, key=???
            check_output_dir(cfg, output_dir)
            validate(cfg)  # every setting, once, before any work: a task's own settings too
            task = option("task", cfg.task.name).component()  # declared in schema.OPTIONS
            if multirun and runs_in_a_worker_pool(hydra_cfg.launcher):
                record.begin()  # the child process writes the run: its record comes first
                return run_in_child_process(task, cfg, output_dir)  # a killed job fails alone
            return task(cfg, output_dir, begin=record.begin)  # the task begins the record once it writes
    except PyroVAEError as exc:
        log.error("%s", exc)  # into run.log only if the command had begun writing
        # Ctrl-C stops a sweep run in this process as it stops a run; in a worker pool the job fails alone.
        stops_the_sweep = isinstance(exc, RunInterrupted) and not runs_in_a_worker_pool(hydra_cfg.launcher)
        if multirun and not stops_the_sweep:
            raise  # Hydra records the failed job, the sweep goes on, and run_command_line reports it
        if not isinstance(exc, RunDirectoryInUse):  # a directory another run holds is never touched
            remove_folders_made_for(output_dir)  # the empty run folder (and parents) this command made
        sys.exit(exc.exit_status)


def run_command_line() -> None:
    """``main()`` as ``python run.py`` runs it. Hydra's composition errors (an unknown key, a value
    of the wrong type, an unknown group option) are refused in one line with exit status 2, as
    ``main`` refuses a bad value; any other error is a bug, shown with its whole traceback (exit
    status 1). HYDRA_FULL_ERROR=1 shows a composition error in full too. A sweep with a failed job
    (Hydra's sweeper re-raises its error once the jobs have run) ends in one line too, exit status 2."""
    users_setting = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises the error instead of printing its report
    try:
        main()
    except PyroVAEError as error:  # only a multirun lets one through main()
        print(refusal_line(failed_sweep_message(error)), file=sys.stderr)
        sys.exit(2)
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
