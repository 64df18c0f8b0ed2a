"""``logger=``: Lightning's loggers, each built by the ``_target_`` of its option (schema.OPTIONS):
``csv`` (the default, Lightning's CSVLogger: ``RUN_DIR/csv/version_N/metrics.csv``, a version per
process of the run), ``tensorboard`` (event files in ``RUN_DIR/tensorboard/``, with images and the
HParams view: :mod:`pyro_vae.runs.tasks.run_logging`), ``mlflow`` (where the package is installed) or ``none``.

Each epoch's row of history.csv reaches them with the epoch as its step, under the tags
:func:`scalar_tag` gives (``val_elbo`` as ``val/elbo``), beside the validation pass's KL and
reconstruction term; at the end, the run's settings and its test and validation figures.
"""

from pathlib import Path
from typing import Any, Dict, List

import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from ..directory.run_directory import changeable_on_resume, flatten

PROJECT_KEYS = ("image_every",)  # keys of a logger option that the run reads, not its _target_
RESULTS = ("test_", "val_")  # the figures of metrics.json that the loggers compare runs by


def make_loggers(cfg: DictConfig, run_dir: Path, epochs_done: int) -> List[Logger]:
    """The loggers of ``cfg.logger`` for ``run_dir``, whose first ``epochs_done`` epochs are already logged."""
    if cfg.logger.get("_target_") is None:
        return []
    settings = {key: value for key, value in cfg.logger.items() if key not in PROJECT_KEYS}
    logger = instantiate(settings, save_dir=str(run_dir), _convert_="all")
    if isinstance(logger, RunTensorBoardLogger):
        logger.purge_before(epochs_done + 1)
    return [logger]


class RunTensorBoardLogger(TensorBoardLogger):
    """TensorBoard's logger writing into ``RUN_DIR/<name>/`` itself (no version folders: TensorBoard shows
    a resumed run as one), without Lightning's ``hp_metric`` placeholder."""

    def __init__(self, save_dir: str, name: str = "tensorboard") -> None:
        super().__init__(save_dir, name=name, version="", default_hp_metric=False)

    def purge_before(self, step: int) -> None:
        """On resume, TensorBoard discards what an interrupted process logged for the epochs trained again."""
        self._kwargs["purge_step"] = step

    def save(self) -> None:
        """Flush, without Lightning's hparams.yaml: the settings go to the HParams view at the end."""
        self.experiment.flush()

    def finalize(self, status: str) -> None:
        """Kept open when training succeeds: the run's results follow, into the same event file."""
        if status == "success":
            self.experiment.flush()
        else:
            self.close()

    def close(self) -> None:
        super().finalize("success")


def mlflow_logger(save_dir: str, name: str, tracking_uri: Any = None) -> Logger:
    """MLflow's logger: runs under the experiment ``name``, in ``RUN_DIR/mlruns`` unless ``tracking_uri``."""
    from lightning.pytorch.loggers import MLFlowLogger

    return MLFlowLogger(experiment_name=name, tracking_uri=tracking_uri, save_dir=str(Path(save_dir) / "mlruns"))


def scalar_tag(key: str) -> str:
    """The tag of a figure of ``history.csv`` or ``metrics.json``: ``val_elbo`` -> ``val/elbo``,
    ``test_kl`` -> ``test/kl``; the rest of an epoch (``lr``, ``images_per_second``, ...) under
    ``train/``. TensorBoard groups the tags by what comes before the slash."""
    split, _, name = key.partition("_")
    return f"{split}/{name}" if split in ("train", "val", "test") else f"train/{key}"


def epoch_scalars(row: Dict[str, float], **more: float) -> Dict[str, torch.Tensor]:
    """An epoch's figures (``row``, and ``more`` of it) under their tags, and the epoch as Lightning's ``step``,
    for ``LightningModule.log_dict``: in float64, as history.csv holds them (Lightning would make floats float32)."""
    figures = {
        **{scalar_tag(key): value for key, value in {**row, **more}.items() if key != "epoch"},
        "step": row["epoch"],
    }
    return {tag: torch.tensor(value, dtype=torch.float64) for tag, value in figures.items()}


def results(metrics: Dict[str, Any]) -> Dict[str, float]:
    """The test and validation figures of ``metrics.json`` under their tags."""
    return {
        scalar_tag(key): float(value)
        for key, value in metrics.items()
        if key.startswith(RESULTS) and not key.endswith("iwae_k") and isinstance(value, (int, float))
    }


def run_hparams(cfg: DictConfig) -> Dict[str, Any]:
    """The settings a run keeps for its whole life (those ``resume=true`` may not change), as hparams:
    numbers and strings as they are, true/false and lists as text; null settings are left out. TensorBoard
    keeps the first value of an hparam that it reads in a run, which a resumed run with new ``epochs`` or
    ``eval.*`` would leave stale."""
    settings = flatten(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    return {
        key: _hparam(value) for key, value in settings.items() if value is not None and not changeable_on_resume(key)
    }


def _hparam(value: Any) -> Any:
    if isinstance(value, bool):  # else TensorBoard shows true as 1
        return str(value).lower()
    return value if isinstance(value, (int, float, str)) else str(value)
