"""Tasks on a finished run: ``python run.py task=NAME run_dir=PATH``.

Each task rebuilds the run's VAE from its ``checkpoint.pt`` on this machine's device (so a
GPU-trained model works on a CPU), reads the run's own data settings from the config stored in
the checkpoint, and writes only into its own Hydra output directory: the run directory is
never modified. ``task=train`` (the default) is :func:`pyro_vae.experiment.run_experiment`.
"""

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import pyro
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf
from PIL import Image, UnidentifiedImageError

from . import checkpoints, figures
from .data import DataSplits, PixelTransform, load_data
from .errors import ConfigError, DataError
from .evaluation import test_metrics
from .reporting import write_metrics
from .run_directory import check_output_dir
from .settings import apply_threads, positive_int, resolve_device
from .vae import VAE

log = logging.getLogger(__name__)

Task = Callable[[DictConfig, Path], Optional[float]]

# Settings that a task takes from its own command line when given there, and otherwise from the
# run: they change how the test figures are estimated or where this machine keeps the data, never
# the model or the images it sees.
COMMAND_LINE_SETTINGS = frozenset(
    {"eval.iwae_k", "eval.chunk_size", "decoder.eval_weight_draws", "data.root", "data.download"}
)


@dataclass(frozen=True)
class FinishedRun:
    """The VAE of a finished run on the task's device, with the config and image shape it was trained with."""

    path: Path
    cfg: DictConfig
    vae: VAE
    image_shape: Tuple[int, int, int]
    device: torch.device

    @cached_property
    def data(self) -> DataSplits:
        """The run's data set, loaded on first use (most tasks need only its test split)."""
        return load_data(self.cfg.data, self.device)

    def test_view(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``images`` binarized or dequantized exactly as the run's test split was, from the run's seed."""
        pixels = PixelTransform(self.cfg.data.binarize, self.cfg.seed, self.cfg.likelihood.name)
        return pixels.fixed(images, "test")

    def blank(self) -> torch.Tensor:
        """One empty image: tells the prior and the figures the device and the image size."""
        return torch.zeros((1, *self.image_shape), device=self.device)


def open_run(cfg: DictConfig, output_dir: Path) -> FinishedRun:
    """The run of ``cfg.run_dir``, loaded onto ``cfg.device`` whatever device it was trained on."""
    if cfg.run_dir is None:
        raise ConfigError(
            f"task={cfg.task}: works on a finished run; pass run_dir=PATH of a run directory with checkpoint.pt"
        )
    check_output_dir(cfg, output_dir)
    path = Path(cfg.run_dir).expanduser()
    device = resolve_device(cfg.device)
    apply_threads(cfg.threads)
    record = checkpoints.read(path / checkpoints.BEST, device)
    vae = checkpoints.vae_from_record(record).to(device).eval()
    run_cfg = OmegaConf.create(record["config"])
    for key in _command_line_keys() & COMMAND_LINE_SETTINGS:
        OmegaConf.update(run_cfg, key, OmegaConf.select(cfg, key), force_add=True)
    # The task's own random draws (prior samples, importance samples) repeat with its seed.
    pyro.set_rng_seed(cfg.seed)
    return FinishedRun(path, run_cfg, vae, tuple(record["image_shape"]), device)


def _command_line_keys() -> Set[str]:
    """The settings given on this job's command line (none when called outside Hydra)."""
    if not HydraConfig.initialized():
        return set()
    overrides = OverridesParser.create().parse_overrides(list(HydraConfig.get().overrides.task))
    return {override.key_or_group for override in overrides}


def evaluate_run(cfg: DictConfig, output_dir: Path) -> float:
    """Recompute the run's test figures, e.g. with ``eval.iwae_k=5000`` for a tighter log p(x); return the test ELBO."""
    run = open_run(cfg, output_dir)
    positive_int("eval.iwae_k", run.cfg.eval.iwae_k)
    positive_int("eval.chunk_size", run.cfg.eval.chunk_size)
    positive_int("decoder.eval_weight_draws", run.cfg.decoder.eval_weight_draws)
    data = run.data
    metrics = test_metrics(run.vae, run.test_view(data.test.images), data.test.labels, run.cfg, len(data.train))
    path = output_dir / "metrics.json"
    write_metrics(path, {**metrics, "run_dir": str(run.path), "dataset": data.name, "device": str(run.device)})
    log.info(
        "%s: test ELBO %.2f, test log-likelihood %.2f (K=%d) -> %s",
        run.path,
        metrics["test_elbo"],
        metrics["test_log_likelihood"],
        metrics["iwae_k"],
        path,
    )
    return metrics["test_elbo"]


def sample_run(cfg: DictConfig, output_dir: Path) -> None:
    """Decode ``sample.n`` draws from the prior into ``samples.png``; with ``sample.per_class``, ``sample.n`` per class."""
    positive_int("sample.n", cfg.sample.n)
    run = open_run(cfg, output_dir)
    path = output_dir / "samples.png"
    if cfg.sample.per_class:
        if not run.vae.conditional:
            raise ConfigError(
                f"sample.per_class=true: {run.path} holds an unconditional VAE; "
                "drop sample.per_class or pass the run_dir of a model=cvae run"
            )
        figures.class_samples(run.vae, path, run.blank(), list(run.data.class_names), per_class=cfg.sample.n)
    else:
        figures.samples(run.vae, path, run.blank(), cfg.sample.n)
    log.info("%s: %d samples%s -> %s", run.path, cfg.sample.n, " per class" if cfg.sample.per_class else "", path)


def reconstruct_run(cfg: DictConfig, output_dir: Path) -> None:
    """Inputs and their reconstructions (decoded posterior means) into ``reconstructions.png``:
    the first ``reconstruct.n`` test images, or the image files of ``reconstruct.images``."""
    settings = cfg.reconstruct
    run = open_run(cfg, output_dir)
    if settings.images is None:
        if settings.labels is not None:
            raise ConfigError(
                "reconstruct.labels: goes with reconstruct.images=[...]; test images bring their own labels"
            )
        positive_int("reconstruct.n", settings.n)
        test = run.data.test
        source, images, labels = "test", run.test_view(test.images)[: settings.n], test.labels[: settings.n]
    else:
        files = [Path(name).expanduser() for name in _listed("reconstruct.images", settings.images)]
        images = torch.stack([_read_image(file, run.image_shape) for file in files]).to(run.device)
        source, images, labels = "files", run.test_view(images), _file_labels(run, settings.labels, len(files))
    path = output_dir / "reconstructions.png"
    figures.reconstructions(run.vae, {source: (images, labels)}, path, count=len(images))
    log.info("%s: %d %s images reconstructed -> %s", run.path, len(images), source, path)


def _listed(name: str, value: Any) -> List[Any]:
    """A non-empty list setting; a bare value (``reconstruct.images=a.png``) is refused rather than read letter by letter."""
    if not OmegaConf.is_list(value) or len(value) == 0:
        raise ConfigError(f"{name}={value}: must be a non-empty list, e.g. {name}=[a.png,b.png]")
    return list(value)


def _read_image(path: Path, image_shape: Sequence[int]) -> torch.Tensor:
    """The uint8 (C, H, W) pixels of an image file in the run's channel count (grey or RGB)."""
    channels, height, width = image_shape
    try:
        with Image.open(path) as image:
            pixels = np.array(image.convert("L" if channels == 1 else "RGB"))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: not found; reconstruct.images takes paths of image files such as PNGs") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: not a readable image ({exc.__class__.__name__}); give PNG or JPEG files") from exc
    if pixels.shape[:2] != (height, width):
        raise DataError(
            f"{path}: {pixels.shape[1]}x{pixels.shape[0]} pixels, but this run's images are "
            f"{width}x{height} (width x height); resize the image to that size"
        )
    pixels = torch.from_numpy(pixels)
    return pixels[None] if channels == 1 else pixels.permute(2, 0, 1)


def _file_labels(run: FinishedRun, labels: Any, count: int) -> torch.Tensor:
    """The class indices a conditional VAE encodes and decodes the files with."""
    if not run.vae.conditional:
        if labels is not None:
            raise ConfigError(
                f"reconstruct.labels: {run.path} holds an unconditional VAE, which takes no labels; drop them"
            )
        return torch.zeros(count, dtype=torch.long, device=run.device)  # ignored by an unconditional VAE
    classes = run.vae.num_classes
    if labels is None or not OmegaConf.is_list(labels) or len(labels) != count:
        shown = "null" if labels is None else labels
        raise ConfigError(
            f"reconstruct.labels={shown}: {run.path} holds a conditional VAE (model=cvae); give one class "
            f"index per file of reconstruct.images, e.g. reconstruct.labels=[{','.join(['0'] * count)}]"
        )
    if not all(isinstance(label, int) and 0 <= label < classes for label in labels):
        raise ConfigError(f"reconstruct.labels={list(labels)}: class indices must be integers from 0 to {classes - 1}")
    return torch.tensor(list(labels), dtype=torch.long, device=run.device)


def interpolate_run(cfg: DictConfig, output_dir: Path) -> None:
    """Decode a straight line between the posterior means of test images ``interpolate.start`` and
    ``interpolate.end`` into ``interpolation.png``, with the two inputs at the ends."""
    settings = cfg.interpolate
    if isinstance(settings.steps, bool) or not isinstance(settings.steps, int) or settings.steps < 2:
        raise ConfigError(f"interpolate.steps={settings.steps}: must be an integer >= 2 (both ends count)")
    run = open_run(cfg, output_dir)
    test = run.data.test
    ends = [_test_index(f"interpolate.{key}", settings[key], len(test)) for key in ("start", "end")]
    path = output_dir / "interpolation.png"
    title = f"test images {ends[0]} and {ends[1]} (ends), decoded along the line between their posterior means"
    _interpolation(run.vae, run.test_view(test.images)[ends], test.labels[ends], settings.steps, title, path)
    log.info("%s: %d steps from test image %d to %d -> %s", run.path, settings.steps, ends[0], ends[1], path)


def _test_index(name: str, index: Any, size: int) -> int:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
        raise ConfigError(f"{name}={index}: must be the index of a test image, from 0 to {size - 1}")
    return index


@torch.no_grad()
def _interpolation(vae: VAE, ends: torch.Tensor, labels: torch.Tensor, steps: int, title: str, path: Path) -> None:
    """Both images of ``ends`` with ``steps`` decodings of evenly spaced points from one posterior mean to
    the other between them; a conditional VAE decodes all of them with the first image's label."""
    z = vae.guide_dist(ends, labels).mean
    line = torch.lerp(z[0], z[1], torch.linspace(0, 1, steps, device=z.device)[:, None])
    decoded = vae.likelihood(line, labels[:1].expand(steps)).mean
    fig = Figure(figsize=((steps + 2) * 0.9, 1.8))
    figures.show(fig.subplots(), torch.cat([ends[:1], decoded, ends[1:]]), steps + 2, title)
    figures.save(fig, path)


# Tasks on a finished run by the name given in ``task=``; run.py adds ``train``.
TASKS: Dict[str, Task] = {
    "evaluate": evaluate_run,
    "sample": sample_run,
    "reconstruct": reconstruct_run,
    "interpolate": interpolate_run,
}
