"""The SVI loop: epochs over on-device minibatches, validation, checkpoints, schedules and resuming.

Each step estimates the ELBO with a Pyro objective (``differentiable_loss``, Trace_ELBO by
default) and updates all parameters with one native torch optimizer. Pyro's validation checks
run on the first step of each run only, and the loss is read on the host once every
``LOSS_CHECK_EVERY`` steps, so a GPU is never made to wait on the CPU within an epoch.
"""

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pyro
import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from ..data import DataSplits, PixelTransform
from ..data.batches import MinibatchSampler
from ..errors import DivergenceError
from ..modelling.estimators import evaluate
from ..modelling.vae import VAE
from . import checkpoints
from .cores import ThreadsFollowLoad
from .interrupts import interruptible
from .processes import ONE_PROCESS, Processes, rank_seed
from .schedules import epochs_without_improvement, make_schedule, step_schedule
from .steps import TrainingStep, make_step
from .tensorboard_logger import NO_LOGGER, RunLogger

log = logging.getLogger(__name__)

LOSS_CHECK_EVERY = 100
# optimizer.eps below torch's default lets Adam and RMSprop divide by a vanishing second moment.
TINY_EPS = 1e-8


@dataclass
class TrainingState:
    """What carries over between epochs and across a resume."""

    history: List[Dict[str, float]] = field(default_factory=list)
    # The validation ELBO before the first step: an epoch that ends below it has diverged.
    untrained_val_elbo: Optional[float] = None
    # Why training stopped early, diverged (``divergence_message``); None while it has not.
    divergence: Optional[str] = None

    @property
    def epochs_completed(self) -> int:
        return len(self.history)

    @property
    def best_val_elbo(self) -> float:
        return max((row["val_elbo"] for row in self.history), default=-math.inf)

    def epochs_without_improvement(self, threshold: float) -> int:
        return epochs_without_improvement([row["val_elbo"] for row in self.history], threshold)

    @property
    def train_seconds(self) -> float:
        return sum(row["epoch_seconds"] for row in self.history)

    @property
    def images_per_second(self) -> float:
        images = sum(row["images_per_second"] * row["epoch_seconds"] for row in self.history)
        return images / self.train_seconds


def _resume(
    vae: VAE, step: TrainingStep, scheduler, run_dir: Path, device: torch.device, processes: Processes, seed: int
) -> TrainingState:
    record = checkpoints.resume_record(vae, step, run_dir, device)
    if scheduler is not None and record.get("scheduler"):
        scheduler.load_state_dict(record["scheduler"])
    epochs = len(record["history"])
    saved_by_rank = record.get("rng_by_rank") or [record]
    if len(saved_by_rank) == processes.world_size:
        checkpoints.restore_rng(saved_by_rank[processes.rank], device)
    else:  # the epoch order and global batches go on as saved; the draws of z and of binarization cannot
        torch.manual_seed(rank_seed(seed + epochs, processes.rank))
        if processes.writes:
            log.warning(
                "resuming on %d processes a run saved on %d: the order of the data and the global batches are "
                "those of the saved run, the random draws are new ones",
                processes.world_size,
                len(saved_by_rank),
            )
    log.info("resuming %s after epoch %d", run_dir, epochs)
    return TrainingState(history=list(record["history"]), untrained_val_elbo=record.get("untrained_val_elbo"))


def kl_weight_at(cfg: DictConfig, epoch: int, progress: float) -> float:
    """The KL weight (beta) after ``progress`` (0 to 1) of ``epoch``: linear from 0 over ``kl_warmup_epochs``."""
    if not cfg.kl_warmup_epochs:
        return cfg.kl_weight
    return cfg.kl_weight * min(1.0, (epoch - 1 + progress) / cfg.kl_warmup_epochs)


def run_epoch(
    step: TrainingStep,
    sampler: MinibatchSampler,
    epoch: int,
    cfg: DictConfig,
    run_dir: Path,
    processes: Processes = ONE_PROCESS,
    threads: Optional[ThreadsFollowLoad] = None,
) -> torch.Tensor:
    """Sum of the minibatch losses of one epoch (the mean over the processes: each estimates the whole
    training set's loss on its part of the global batch), checked for NaN every LOSS_CHECK_EVERY steps
    by every process alike; there too ``threads`` (threads=null) follows the other processes' load."""
    total = torch.zeros((), device=sampler.source.device)
    window_start = 0
    batches = sampler.epoch(epoch, cfg.seed, processes.rank, processes.world_size)
    shown = None if processes.writes else True
    progress = tqdm(batches, total=len(sampler), desc=f"epoch {epoch}/{cfg.epochs}", leave=False, disable=shown)
    for index, (x, y) in enumerate(progress):
        with pyro.validation_enabled(epoch == 1 and index == 0):
            total += step(x, y, kl_weight_at(cfg, epoch, (index + 1) / len(sampler)))
        if (index + 1) % LOSS_CHECK_EVERY == 0 or index + 1 == len(sampler):
            mean_total = processes.mean(total)
            if not torch.isfinite(mean_total):
                reason = f"training loss became {mean_total.item()} at epoch {epoch}, steps {window_start}-{index}"
                raise DivergenceError(divergence_message(reason, cfg, run_dir))
            window_start = index + 1
            if threads is not None:
                threads.update()
    return mean_total


def divergence_message(reason: str, cfg: DictConfig, run_dir: Path) -> str:
    """``reason`` with the settings that likely caused it, and the saved epoch where there is one."""
    eps = cfg.optimizer.get("eps")
    causes = [f"lower lr (now {cfg.lr})"]
    if eps is not None and eps < TINY_EPS:
        causes.append(f"raise optimizer.eps (now {eps}; {TINY_EPS:g} is torch's default)")
    if cfg.optimizer.name != "clipped_adam":
        causes.append("use optimizer=clipped_adam")
    last = run_dir / checkpoints.LAST
    saved = f"; {last} keeps epoch {len(checkpoints.read(last)['history'])}" if last.is_file() else ""
    advice = f"{', '.join(causes[:-1])} or {causes[-1]}" if len(causes) > 1 else causes[0]
    return f"diverged: {reason}; {advice}{saved}"


def _validation_divergence(val_elbo: float, untrained: Optional[float], epoch: int) -> Optional[str]:
    """Why an epoch whose validation ELBO is ``val_elbo`` has diverged, or None."""
    if not math.isfinite(val_elbo):
        return f"validation ELBO became {val_elbo} at epoch {epoch}"
    if untrained is not None and val_elbo < untrained:
        return f"validation ELBO {val_elbo:.4g} at epoch {epoch} is below the untrained model's {untrained:.2f}"
    return None


def _untrained_val_elbo(vae: VAE, validate, device: torch.device) -> float:
    """One validation pass before training, on forked random streams so that training draws what it drew without it."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        elbo = validate().elbo
    log.info("untrained model: val ELBO %.2f", elbo)
    return elbo


def fit(
    vae: VAE,
    data: DataSplits,
    transform: PixelTransform,
    cfg: DictConfig,
    run_dir: Path,
    logger: RunLogger = NO_LOGGER,
    processes: Processes = ONE_PROCESS,
    threads: Optional[ThreadsFollowLoad] = None,
) -> TrainingState:
    """Train ``vae`` for up to ``cfg.epochs`` epochs, writing ``checkpoint.pt`` and ``last.pt`` each epoch
    and showing each saved epoch to ``logger``. An epoch that diverges (a non-finite loss, or a validation
    ELBO below the untrained model's) is not saved: training stops with ``state.divergence`` set.
    SIGINT and SIGTERM raise :class:`RunInterrupted`, never in the middle of a save. Data-parallel
    (``processes``): each process trains on its part of every global batch and validates on its shard
    of the validation images; every figure is the whole split's, and rank 0 alone writes. ``threads``
    (threads=null) sets torch's threads to the cores other processes leave idle as the run goes on."""
    device = data.train.images.device
    if device.type == "cpu":
        # Adam's moments of weights whose gradient has become exactly zero (those of dead ReLU
        # units) decay geometrically into subnormal floats, on which x86 CPUs are many times
        # slower: epochs of the default network at batch 20 went 2.1 s, 2.8 s, 4.2 s without
        # this and stay at 2.1 s with it, with the same figures (subnormals are below 1.2e-38).
        torch.set_flush_denormal(True)
    num_data = len(data.train)
    vae.num_data = num_data  # the data plate scales each minibatch to the whole training set
    sampler = transform.minibatches(data.train, cfg.batch_size)
    val_images = processes.shard(transform.fixed(data.val.images, "val"))
    val_labels = processes.shard(data.val.labels)

    def validate():
        return evaluate(
            vae, val_images, val_labels, chunk_size=cfg.eval.chunk_size, num_data=num_data, across=processes
        )

    step = make_step(vae, cfg, processes.fabric)
    scheduler = make_schedule(cfg.schedule, step.optimizer)
    patience = cfg.early_stopping.patience

    # run_directory.check_output_dir has refused a run_dir that this run may not write into.
    state = _resume(vae, step, scheduler, run_dir, device, processes, cfg.seed) if cfg.resume else TrainingState()
    with interruptible(run_dir) as saving:
        if not cfg.resume:
            state.untrained_val_elbo = _untrained_val_elbo(vae, validate, device)
        for epoch in range(state.epochs_completed + 1, cfg.epochs + 1):
            if patience is not None and state.epochs_without_improvement(cfg.early_stopping.threshold) >= patience:
                log.info("early stopping: no better validation ELBO in the last %d epochs", patience)
                break
            lr = step.lr
            start = time.perf_counter()
            try:
                loss_total = run_epoch(step, sampler, epoch, cfg, run_dir, processes, threads).item()
            except DivergenceError as exc:
                state.divergence = str(exc)
                break
            seconds = time.perf_counter() - start
            val = validate()
            # An epoch trained with a KL weight below 1 (kl_weight, KL warm-up) may trade the ELBO for reconstruction.
            untrained = state.untrained_val_elbo if kl_weight_at(cfg, epoch, 0.0) >= 1.0 else None
            reason = _validation_divergence(val.elbo, untrained, epoch)
            if reason is not None:
                state.divergence = divergence_message(reason, cfg, run_dir)
                break
            row = {
                "epoch": epoch,
                # Every objective's loss estimates minus the bound of all num_data images; for a
                # Bayesian decoder that includes KL(q(W) || p(W)) / num_data, as val_elbo does.
                "train_elbo": -loss_total / num_data / len(sampler),
                "val_elbo": val.elbo,
                **(
                    {"val_elbo_given_weights": val.elbo_given_weights, "weight_kl": val.weight_kl}
                    if vae.bayesian
                    else {}
                ),
                "epoch_seconds": seconds,
                "images_per_second": len(sampler) * cfg.batch_size / seconds,
                "lr": lr,
                "kl_weight": kl_weight_at(cfg, epoch, 1.0),
            }
            improved = row["val_elbo"] > state.best_val_elbo
            state.history.append(row)
            step_schedule(scheduler, row["val_elbo"])
            rng_by_rank = processes.gather_objects(checkpoints.rng_state(device))
            if processes.writes:
                with saving():
                    _save_epoch(vae, step, scheduler, cfg, data, state, run_dir, improved, rng_by_rank)
            log.info(
                "epoch %d/%d  train ELBO %.2f  val ELBO %.2f%s  (%.1f s, %.0f images/s, lr %.2g)",
                epoch,
                cfg.epochs,
                row["train_elbo"],
                row["val_elbo"],
                "  best" if improved else "",
                seconds,
                row["images_per_second"],
                lr,
            )
            logger.epoch(vae, row, val, val_images, val_labels)
    return state


def _save_epoch(
    vae: VAE,
    step: TrainingStep,
    scheduler,
    cfg: DictConfig,
    data: DataSplits,
    state: TrainingState,
    run_dir: Path,
    improved: bool,
    rng_by_rank: List[Dict[str, torch.Tensor]],
) -> None:
    record = checkpoints.model_record(vae, cfg, data.image_shape, data.num_classes)
    if improved:
        checkpoints.save(
            run_dir / checkpoints.BEST, {**record, "epoch": state.epochs_completed, "val_elbo": state.best_val_elbo}
        )
    resume = {
        "optimizer": step.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "history": state.history,
        "untrained_val_elbo": state.untrained_val_elbo,
        **rng_by_rank[0],
        # Every process's streams, for an exact resume on as many processes; rank 0's are also the top-level ones.
        **({"rng_by_rank": rng_by_rank} if len(rng_by_rank) > 1 else {}),
    }
    checkpoints.save(run_dir / checkpoints.LAST, {**record, **resume})
