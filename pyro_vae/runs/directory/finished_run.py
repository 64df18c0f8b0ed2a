"""A finished run, loaded for a task: its VAE (or GAN) on this machine's device and the config it was trained with.

A task's command line may change only how test figures are estimated or where this machine keeps
the data (``COMMAND_LINE_SETTINGS``); everything else comes from the config stored in the checkpoint.
"""

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Set, Tuple, Union

import pyro
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from ...data import DataSplits
from ...errors import ConfigError, DataError
from ...modelling.gan import GAN
from ...modelling.vae import VAE
from ..configuration.builders import load_dataset, pixel_transform
from ..configuration.settings import apply_threads, resolve_device
from . import checkpoints

# Settings that a task takes from its own command line when given there, and otherwise from the
# run: they change how the test figures are estimated or where this machine keeps the data, never
# the model or the images it sees.
COMMAND_LINE_SETTINGS = frozenset(
    {"eval.iwae_k", "eval.chunk_size", "eval.weight_draws", "dataset.root", "dataset.download"}
)
# Settings of the task's own process, which a task takes from its command line only.
TASK_PROCESS_SETTINGS = ("task", "device", "threads", "seed", "quality")
# The tasks that work on a GAN run (model=gan): it has samples, but no likelihood and no encoder.
GAN_TASKS = frozenset({"sample", "sample_quality"})


@dataclass(frozen=True)
class FinishedRun:
    """The VAE of a finished run on the task's device (its best checkpoint, of epoch ``epoch``), with the
    config and image shape it was trained with; for a model=gan run, ``vae`` is its GAN (last epoch)."""

    path: Path
    cfg: DictConfig
    vae: Union[VAE, GAN]
    image_shape: Tuple[int, int, int]
    device: torch.device
    epoch: int

    @cached_property
    def data(self) -> DataSplits:
        """The run's data set, loaded on first use (most tasks need only its test split)."""
        data = load_dataset(self.cfg, self.device)
        if tuple(data.image_shape) != self.image_shape:
            raise DataError(
                f"{self.path / checkpoints.BEST}: trained on images of shape {list(self.image_shape)}, but its "
                f"data set now reads as {list(data.image_shape)}; point dataset.root at the run's own data"
            )
        return data

    def test_view(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``images`` binarized or dequantized exactly as the run's test split was, from the run's seed."""
        return pixel_transform(self.cfg).fixed(images, "test")


def open_run(cfg: DictConfig, output_dir: Path) -> FinishedRun:
    """The run of ``cfg.task.run_dir``, loaded onto ``cfg.device`` whatever device it was trained on."""
    if cfg.task.run_dir is None:
        raise ConfigError(
            f"task={cfg.task.name}: works on a finished run; pass task.run_dir=PATH of a run directory with "
            "checkpoint.pt"
        )
    path = Path(cfg.task.run_dir).expanduser()
    given = _command_line_keys()
    _refuse_model_settings(cfg.task.name, path, given)
    device = resolve_device(cfg.device)
    apply_threads(cfg.threads)
    record = checkpoints.read(path / checkpoints.BEST, device)
    vae = checkpoints.vae_from_record(record, path / checkpoints.BEST).to(device).eval()
    if isinstance(vae, GAN) and cfg.task.name not in GAN_TASKS:
        raise ConfigError(
            f"task={cfg.task.name}: {path} holds a GAN (model=gan), which has no likelihood to evaluate and no "
            "encoder to reconstruct or interpolate with; the tasks for it: "
            f"{', '.join(f'task={name}' for name in sorted(GAN_TASKS))}"
        )
    run_cfg = OmegaConf.create(record["config"])
    for key in given & COMMAND_LINE_SETTINGS:
        OmegaConf.update(run_cfg, key, OmegaConf.select(cfg, key), force_add=True)
    # The task's own random draws (prior samples, importance samples) repeat with its seed.
    pyro.set_rng_seed(cfg.seed)
    return FinishedRun(path, run_cfg, vae, tuple(record["image_shape"]), device, record["epoch"])


def _refuse_model_settings(task: str, run_dir: Path, given: Set[str]) -> None:
    """A setting of the model or its data on a task's command line would be recorded in the task's
    config but not used: refuse it rather than let the record say what did not happen."""
    ignored = sorted(
        key
        for key in given - COMMAND_LINE_SETTINGS
        if not any(key == name or key.startswith(f"{name}.") for name in TASK_PROCESS_SETTINGS)
    )
    if ignored:
        allowed = ", ".join(["task.*", *TASK_PROCESS_SETTINGS[1:], *sorted(COMMAND_LINE_SETTINGS)])
        raise ConfigError(
            f"{', '.join(ignored)}: task={task} takes the model and data settings from the run it works on "
            f"({run_dir / checkpoints.BEST}); drop the override (a task's command line sets {allowed})"
        )


def _command_line_keys() -> Set[str]:
    """The settings given on this job's command line (none when called outside Hydra)."""
    if not HydraConfig.initialized():
        return set()
    overrides = OverridesParser.create().parse_overrides(list(HydraConfig.get().overrides.task))
    return {override.key_or_group for override in overrides}
