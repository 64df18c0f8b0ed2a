"""Checkpoints of a run: ``checkpoint.pt`` (best by validation ELBO) and ``last.pt`` (for resuming).

Both hold only tensors and plain containers, so they load with ``torch.load(weights_only=True)``.
"""

import pickle
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
from omegaconf import DictConfig, OmegaConf

from ...atomic import save_torch
from ...errors import ConfigError, DataError
from ...modelling.gan import GAN
from ...modelling.vae import VAE
from ..configuration.builders import build_model
from ..configuration.schema import OPTIONS
from .run_directory import BEST, LAST


def model_record(vae: VAE, cfg: DictConfig, image_shape, num_classes: int) -> Dict[str, Any]:
    """Everything needed to rebuild ``vae`` without the run's config files."""
    return {
        "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
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
        return _upgraded(torch.load(path, map_location=map_location, weights_only=True))
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        if isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc):
            raise DataError(
                f"{path}: holds pickled Python objects besides tensors, which could run code; pyro-vae loads only "
                "the checkpoints it writes (tensors and plain containers), so it refuses this file"
            ) from exc
        raise DataError(
            f"{path}: not a readable pyro-vae checkpoint ({exc.__class__.__name__}); the file is damaged"
        ) from exc


def _upgraded(record: Dict[str, Any]) -> Dict[str, Any]:
    """A record written before pyro-vae 0.2 in today's names, so that earlier runs still resume and load:
    ``data`` became ``dataset``, ``net.hidden_dims``/``net.channels`` ``net.widths``,
    ``decoder.eval_weight_draws`` ``eval.weight_draws``, ``task`` a group, and the VAE's ``pixels`` ``likelihood``."""
    config = record.get("config")
    if isinstance(config, dict) and "data" in config:
        config["dataset"] = config.pop("data")
        net = config.get("net", {})
        for old in ("hidden_dims", "channels"):
            if old in net:
                net["widths"] = net.pop(old)
        draws = config.get("decoder", {}).pop("eval_weight_draws", None)
        if draws is not None:
            config.setdefault("eval", {})["weight_draws"] = draws
        for old in ("run_dir", "sample", "reconstruct", "interpolate"):
            config.pop(old, None)
        if isinstance(config.get("task"), str):
            config["task"] = {"name": config["task"]}
    if isinstance(config, dict):
        _renamed_settings(config)
    if "state_dict" in record:
        record["state_dict"] = {
            ("likelihood." + key[len("pixels.") :] if key.startswith("pixels.") else key): value
            for key, value in record["state_dict"].items()
        }
    return record


# (node, old key, new key) of the renames of issue 24 (docs/renames.md).
RENAMED_KEYS = (
    ("net", "min_scale", "min_encoder_scale"),
    ("likelihood", "scale", "scale_mode"),
    ("likelihood", "min_scale", "min_pixel_scale"),
    ("decoder", "prior_scale", "weight_prior_scale"),
    ("decoder", "init_scale", "weight_init_scale"),
)


def _renamed_settings(config: Dict[str, Any]) -> None:
    """A config recorded before the renames of docs/renames.md, in today's names: the ``elbo`` group
    became ``objective`` (``elbo=trace_pyro`` became ``svi_step=pyro``), and five settings got names
    of one meaning."""
    if "elbo" in config:
        objective = config.pop("elbo")
        textbook = objective.get("name") == "trace_pyro"
        config["objective"] = {**objective, "name": "trace"} if textbook else objective
        config["svi_step"] = "pyro" if textbook else "torch"
    config.setdefault("guide", {"name": "diagonal"})  # the only variational family before guide=
    config.setdefault("prior", {"name": "standard"})  # the only prior before prior=
    for group in ("guide", "prior"):  # recorded before their _target_: the class their option declares
        node = OPTIONS[group][config[group]["name"]].node
        config[group] = {
            **{key: getattr(node, key) for key in ("_target_", "_partial_") if hasattr(node, key)},
            **config[group],
        }
    for node, old, new in RENAMED_KEYS:
        settings = config.get(node)
        if isinstance(settings, dict) and old in settings:
            settings[new] = settings.pop(old)


def vae_from_record(record: Dict[str, Any], path: Path) -> Union[VAE, GAN]:
    """The model that ``record`` (read from ``path``) describes, with its weights: a VAE, or a GAN (model=gan)."""
    missing = [key for key in ("config", "image_shape", "num_classes", "state_dict") if key not in record]
    if missing:
        raise DataError(
            f"{path}: lacks {', '.join(missing)}; it is not a checkpoint that pyro-vae wrote, or it was altered"
        )
    cfg = OmegaConf.create(record["config"])
    image_shape = tuple(record["image_shape"])
    vae = build_model(cfg, image_shape, record["num_classes"], features_model(cfg, image_shape))
    check_fits(vae, record, path)
    vae.load_state_dict(record["state_dict"])
    return vae


def features_model(cfg: DictConfig, image_shape: Tuple[int, ...]) -> Optional[VAE]:
    """M1 of an M1+M2 run: the trained VAE that ``model.features_from`` names (None where it names none), refused
    in one line unless it is a model=vae run with a posterior mean, on the images this run sees (data set,
    likelihood and shape)."""
    if cfg.model.get("features_from") is None:  # also a run from before M1+M2, whose config has no such key
        return None
    setting = f"model.features_from={cfg.model.features_from}"
    path = Path(cfg.model.features_from).expanduser() / BEST
    record = read(path)
    seen = {
        key: record.get("config", {}).get(key, {}).get("name") for key in ("model", "guide", "dataset", "likelihood")
    }
    if seen["model"] != "vae" or seen["guide"] == "iaf":
        raise ConfigError(
            f"{setting}: a model={seen['model']} guide={seen['guide']} run; M1 must be a model=vae run "
            "with guide=diagonal or full (a posterior mean)"
        )
    for key, name in {"dataset": cfg.dataset.name, "likelihood": cfg.likelihood.name}.items():
        if seen[key] != name:
            raise ConfigError(f"{setting}: M1 saw {key}={seen[key]}; give M2 the images M1 saw: {key}={seen[key]}")
    if tuple(record.get("image_shape", ())) != tuple(image_shape):
        raise ConfigError(
            f"{setting}: M1 saw images of shape {record.get('image_shape')}, this run {list(image_shape)}"
        )
    return vae_from_record(record, path)


def check_fits(vae: VAE, record: Dict[str, Any], path: Path) -> None:
    """Refuse, naming the first weight that differs, a checkpoint whose weights ``vae`` cannot take:
    torch's own error is a page of every mismatched tensor."""
    wanted = {key: tuple(value.shape) for key, value in vae.state_dict().items()}
    state = record.get("state_dict")
    if not isinstance(state, dict):
        raise DataError(f"{path}: lacks state_dict; it is not a checkpoint that pyro-vae wrote, or it was altered")
    held = {key: tuple(value.shape) for key, value in state.items() if isinstance(value, torch.Tensor)}
    for key in sorted(wanted.keys() | held.keys()):
        if wanted.get(key) != held.get(key):
            found = "absent" if key not in held else f"of shape {list(held[key])}"
            built = "none" if key not in wanted else f"one of shape {list(wanted[key])}"
            raise DataError(
                f"{path}: weight {key} is {found}, where the settings build {built}; the checkpoint was trained "
                "with other settings (or its recorded config or image shape was altered): use the settings of the "
                "run that wrote it"
            )


def load(run_dir: Union[str, Path], map_location: Union[str, torch.device] = "cpu") -> Union[VAE, GAN]:
    """The VAE of a finished run (or its GAN, for model=gan), from its ``checkpoint.pt``, in eval mode on
    ``map_location``."""
    record = read(Path(run_dir) / BEST, map_location)
    return vae_from_record(record, Path(run_dir) / BEST).to(map_location).eval()


def check_resume_fits(model: Union[VAE, GAN], run_dir: Path) -> None:
    """Before a resumed run writes anything: ``last.pt``, which it continues, and ``checkpoint.pt``,
    which its end loads, must both fit ``model``."""
    for path in (run_dir / LAST, run_dir / BEST):
        if path.exists():
            check_fits(model, read(path), path)
