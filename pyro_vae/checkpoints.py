"""Checkpoints of a run: ``checkpoint.pt`` (best by validation ELBO) and ``last.pt`` (for resuming).

Both hold only tensors and plain containers, so they load with ``torch.load(weights_only=True)``.
"""

import pickle
from pathlib import Path
from typing import Any, Dict, Union

import torch
from omegaconf import DictConfig, OmegaConf

from .atomic import save_torch
from .errors import DataError
from .vae import VAE, build_vae

BEST = "checkpoint.pt"
LAST = "last.pt"


def model_record(vae: VAE, cfg: DictConfig, image_shape, num_classes: int) -> Dict[str, Any]:
    """Everything needed to rebuild ``vae`` without the run's config files."""
    return {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "image_shape": list(image_shape),
        "num_classes": num_classes,
        "state_dict": {key: value.detach().cpu() for key, value in vae.state_dict().items()},
    }


def save(path: Path, record: Dict[str, Any]) -> None:
    save_torch(record, path)


def read(path: Path, map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{path}: no checkpoint here; is this the directory of a finished pyro-vae run?")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        if isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc):
            raise DataError(
                f"{path}: holds pickled Python objects besides tensors, which could run code; pyro-vae loads only "
                "the checkpoints it writes (tensors and plain containers), so it refuses this file"
            ) from exc
        raise DataError(
            f"{path}: not a readable pyro-vae checkpoint ({exc.__class__.__name__}); the file is damaged"
        ) from exc


def vae_from_record(record: Dict[str, Any]) -> VAE:
    cfg = OmegaConf.create(record["config"])
    vae = build_vae(cfg, tuple(record["image_shape"]), record["num_classes"])
    vae.load_state_dict(record["state_dict"])
    return vae


def load(run_dir: Union[str, Path], map_location: Union[str, torch.device] = "cpu") -> VAE:
    """The VAE of a finished run, from its best checkpoint, in eval mode on ``map_location``."""
    record = read(Path(run_dir) / BEST, map_location)
    return vae_from_record(record).to(map_location).eval()
