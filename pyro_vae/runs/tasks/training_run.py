"""One run end to end: config -> data -> VAE -> SVI training -> test evaluation -> figures.

``run.py`` wraps :func:`run_experiment` in Hydra; tests call it directly on composed configs.
"""

import logging
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

import pyro
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch import Callback
from omegaconf import DictConfig, OmegaConf

from ...data import DataSplits
from ...errors import ConfigError, DivergenceError, RunInterrupted
from ...modelling.vae import VAE
from ..configuration.builders import build_vae, load_dataset, pixel_transform, training_bound_name
from ..configuration.cpu_features import bf16_refusal
from ..configuration.schema import option
from ..configuration.settings import apply_threads, resolve_device, validate
from ..directory import checkpoints
from ..directory.reporting import write_history, write_metrics
from ..directory.run_directory import check_output_dir
from ..directory.run_record import Begin, nothing_to_begin
from ..loop.interrupts import interrupted_message, where_it_stopped
from ..loop.loggers import make_loggers
from ..loop.processes import Processes, external_processes, rank_seed, strategy, world_size
from ..loop.state import TrainingState
from ..loop.user_callbacks import build_callbacks
from ..loop.vae_training import fit
from . import figures
from .metrics import test_metrics, validation_metrics
from .run_logging import finish_logging, logger_callbacks

log = logging.getLogger(__name__)


def run_experiment(cfg: DictConfig, run_dir: Path) -> Optional[float]:
    """Train and evaluate the VAE of ``cfg`` into ``run_dir``; return the best validation ELBO.

    The Python entry point: it checks the settings and the directory, as ``run.py`` does before
    it runs :func:`train` (``task=train``)."""
    validate(cfg)
    check_output_dir(cfg, run_dir)
    return train(cfg, run_dir)


def train(cfg: DictConfig, run_dir: Path, begin: Begin = nothing_to_begin) -> Optional[float]:
    """``task=train`` on settings and a directory already checked: :func:`run_experiment`'s work.
    ``begin`` is called once the data and every checkpoint of a resumed run have been checked.
    A model with a training task of its own (model=gan, which has no ELBO) is trained by that task.
    Lightning's Trainer trains; with ``trainer.strategy=ddp_spawn`` this process checks, holds the run
    directory and waits, while the processes it starts (:mod:`.spawn`) each run :func:`train_in_process`;
    with ``ddp`` srun or torchrun started this one among them."""
    declared = option("model", cfg.model.name)
    if declared.trains is not None:
        return declared.component("trains")(cfg, run_dir, begin)
    device = resolve_device(cfg.device)
    if cfg.trainer.precision == "bf16-mixed" and (refusal := _bf16_refusal(device)):
        raise ConfigError(refusal)
    callbacks = build_callbacks(cfg)  # a user's own: refused before any work
    if world_size(cfg.trainer) == 1:
        return train_in_process(Processes(device=device), cfg, run_dir, begin, callbacks)
    if strategy(cfg.trainer) == "ddp":
        return train_in_process(external_processes(cfg.trainer, device), cfg, run_dir, begin, callbacks)
    from ..loop.spawn import Interrupted, ProcessFailed, launch

    prepare(cfg, run_dir, torch.device("cpu"))
    begin()
    try:
        return launch(cfg.trainer, device, train_in_process, cfg, run_dir, nothing_to_begin, job_logging=_job_logging())
    except ProcessFailed as exc:
        raise ProcessFailed(f"a process of the run failed ({exc}); {where_it_stopped(run_dir)}") from None
    except Interrupted as stop:
        raise RunInterrupted(interrupted_message(stop.signum, run_dir), exit_status=128 + stop.signum) from None


def _bf16_refusal(device: torch.device) -> Optional[str]:
    """Why ``device`` cannot run bf16-mixed: a GPU without bfloat16 arithmetic, or a CPU that would
    emulate it, 5x to 18x slower (:mod:`.cpu_features`); None where it can."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return (
            f"trainer.precision=bf16-mixed: {torch.cuda.get_device_name(device)} has no bfloat16 arithmetic; "
            "use trainer.precision=32-true"
        )
    return bf16_refusal() if device.type == "cpu" else None


def train_in_process(
    processes: Processes, cfg: DictConfig, run_dir: Path, begin: Begin, callbacks: Optional[List[Callback]] = None
) -> Optional[float]:
    """This process's part of :func:`train`: all of it for one process; rank 0 writes the outputs.
    ``callbacks``: the user's (``callbacks.*``), built in each process where None."""
    device = processes.device
    threads = apply_threads(cfg.threads)
    data, vae = prepare(cfg, run_dir, device)
    callbacks = build_callbacks(cfg) if callbacks is None else callbacks
    if processes.rank:
        pyro.set_rng_seed(rank_seed(cfg.seed, processes.rank))
    begin()
    transform = pixel_transform(cfg)
    log.info(
        "%s: %d train / %d val / %d test images of shape %s on %s%s, %d torch thread(s)",
        data.name,
        len(data.train),
        len(data.val),
        len(data.test),
        data.image_shape,
        device,
        f", {processes.world_size} processes" if processes.world_size > 1 else "",
        torch.get_num_threads(),
    )

    loggers = make_loggers(cfg, run_dir, epochs_done(cfg, run_dir)) if processes.writes else []
    state = fit(vae, data, transform, cfg, run_dir, processes, threads, loggers, [*logger_callbacks(cfg), *callbacks])
    if state.divergence is not None:
        if not processes.writes:
            raise DivergenceError(state.divergence)
        _record_divergence(state, run_dir, data.name, device)
    processes.barrier()  # rank 0 has written the last epoch's checkpoints

    best = checkpoints.read(run_dir / checkpoints.BEST, device)
    vae.load_state_dict(best["state_dict"])
    vae.eval()
    test_images = transform.fixed(data.test.images, "test")
    val_images = transform.fixed(data.val.images, "val")
    num_data, shard = len(data.train), processes.shard
    test = test_metrics(vae, shard(test_images), shard(data.test.labels), cfg, num_data, processes)
    val = validation_metrics(vae, shard(val_images), shard(data.val.labels), cfg, num_data, processes)
    if not processes.writes:
        return state.best_val_elbo
    metrics = {
        **test,
        **val,
        "val_elbo_best": state.best_val_elbo,
        "best_epoch": best["epoch"],
        "epochs_completed": state.epochs_completed,
        "train_seconds": state.train_seconds,
        "images_per_second": state.images_per_second,
        "dataset": data.name,
        "data_verified": data.verified,  # false: dataset.verify=false read files that are not the official release
        "device": str(device),
        "processes": processes.world_size,
        "precision": cfg.trainer.precision,
    }
    write_history(run_dir / "history.csv", state.history)
    write_metrics(run_dir / "metrics.json", metrics)
    finish_logging(loggers, cfg, metrics)
    train_figure_images = transform.fixed(data.train.images[:16], "figures")
    figures.write_all(
        vae,
        (train_figure_images, data.train.labels[:16]),
        (test_images, data.test.labels),
        list(data.class_names),
        state.history,
        run_dir / "figures",
        training_bound_name(cfg),
        [figures.test_bound_mark(metrics)],
    )
    log.info("wrote %s", run_dir)
    return state.best_val_elbo


def _untrained_vae(cfg: DictConfig, data: DataSplits) -> VAE:
    return build_vae(cfg, data.image_shape, data.num_classes)


def prepare(
    cfg: DictConfig,
    run_dir: Path,
    device: torch.device,
    build: Callable[[DictConfig, DataSplits], torch.nn.Module] = _untrained_vae,
) -> Tuple[DataSplits, torch.nn.Module]:
    """The data and the untrained model of ``cfg`` (``build``: the VAE's by default), seeded, once the batch
    size and a resumed run's checkpoints are known to fit."""
    pyro.clear_param_store()
    pyro.set_rng_seed(cfg.seed)
    data = load_dataset(cfg, device)
    check_batch_size(cfg, data)
    model = build(cfg, data).to(device)
    if cfg.resume:
        checkpoints.check_resume_fits(model, run_dir)
    return data, model


def epochs_done(cfg: DictConfig, run_dir: Path) -> int:
    """The epochs a resumed run has already trained (and shown to its loggers)."""
    return len(checkpoints.read(run_dir / checkpoints.LAST)["history"]) if cfg.resume else 0


def _job_logging() -> Any:
    """Hydra's logging settings of this job (run.log and the console), for the processes ddp_spawn starts."""
    if not HydraConfig.initialized():
        return None
    return OmegaConf.to_container(HydraConfig.get().job_logging, resolve=True)


def check_batch_size(cfg: DictConfig, data: DataSplits) -> None:
    """Refuse a batch larger than the training split: known once the data is, still before anything is written."""
    if cfg.batch_size > len(data.train):
        raise ConfigError(
            f"batch_size={cfg.batch_size} exceeds the {len(data.train)} training images; lower it or raise "
            "dataset.train_size"
        )


def _record_divergence(state: TrainingState, run_dir: Path, dataset: str, device) -> None:
    """A diverged run's ``metrics.json`` says so, with the reason and no test figures; run.py then
    exits with status 2 (a sweep lists the job as failed)."""
    write_history(run_dir / "history.csv", state.history)
    metrics = {
        "diverged": True,
        "divergence": state.divergence,
        "untrained_val_elbo": state.untrained_val_elbo,
        "epochs_completed": state.epochs_completed,
        "val_elbo_best": state.best_val_elbo if state.history else None,
        "dataset": dataset,
        "device": str(device),
    }
    write_metrics(run_dir / "metrics.json", metrics)
    raise DivergenceError(f"{state.divergence}; {run_dir / 'metrics.json'} records it, without test figures")
