"""The type of every setting in ``conf/``, as Hydra structured configs.

``conf/config.yaml`` extends ``config_schema`` (``Config`` below) and each file of a config group
extends the schema of its keys, e.g. ``conf/optimizer/adam.yaml`` starts with::

    defaults:
      - /optimizer_adam_schema@_here_   # the keys below and their types: pyro_vae/schema.py
      - _self_

The values stay in the YAML files; a schema declares the keys and their types (``MISSING``: the
YAML file sets it). Hydra then refuses, while it composes, an unknown key, a value of the wrong
type and an unknown group option; ``pyro_vae.runs.refusals`` words each refusal as one line. Ranges
and rules between settings stay in ``pyro_vae.runs.settings``.

The schemas are stored at the top of Hydra's ConfigStore (not in a config group), so they are
neither options of a group (``net=...``) nor listed by ``python run.py --help``.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

# --- top level (conf/config.yaml) --------------------------------------------------------------


@dataclass
class DecoderConfig:
    """decoder.*: the Bayesian decoder's switch and scales."""

    bayesian: bool = MISSING
    prior_scale: float = MISSING
    init_scale: float = MISSING


@dataclass
class EarlyStoppingConfig:
    """early_stopping.*: null patience never stops early."""

    patience: Optional[int] = MISSING
    threshold: float = MISSING


@dataclass
class EvalConfig:
    """eval.*: how the test figures are estimated."""

    iwae_k: int = MISSING
    chunk_size: int = MISSING
    weight_draws: int = MISSING


# --- config groups: one schema per file of conf/GROUP/, subclasses of the group's base ---------


@dataclass
class ModelConfig:
    """model=vae|cvae."""

    name: str = MISSING


@dataclass
class DatasetConfig:
    """dataset=mnist|cifar10: where the files are and how the splits are carved."""

    name: str = MISSING
    root: Optional[str] = MISSING
    download: bool = MISSING
    binarize: str = MISSING
    val_size: int = MISSING
    train_size: Optional[int] = MISSING
    test_size: Optional[int] = MISSING


@dataclass
class NetConfig:
    name: str = MISSING
    widths: List[int] = MISSING
    activation: str = MISSING
    min_scale: float = MISSING


@dataclass
class OptimizerConfig:
    name: str = MISSING


@dataclass
class AdamConfig(OptimizerConfig):
    betas: List[float] = MISSING
    eps: float = MISSING
    fused: bool = MISSING


@dataclass
class ClippedAdamConfig(OptimizerConfig):
    betas: List[float] = MISSING
    eps: float = MISSING
    clip_norm: float = MISSING


@dataclass
class RMSpropConfig(OptimizerConfig):
    alpha: float = MISSING


@dataclass
class ElboConfig:
    """elbo=trace|trace_pyro|jit|meanfield."""

    name: str = MISSING
    num_particles: int = MISSING


@dataclass
class IwaeConfig(ElboConfig):
    """elbo=iwae: also the encoder's gradient estimator."""

    gradient: str = MISSING


@dataclass
class ScheduleConfig:
    """schedule=constant."""

    name: str = MISSING


@dataclass
class BurdaScheduleConfig(ScheduleConfig):
    """schedule=burda: stage i lasts 3^i epochs."""

    stages: int = MISSING


@dataclass
class CosineScheduleConfig(ScheduleConfig):
    """schedule=cosine: the fraction of lr left after schedule.epochs."""

    final_factor: float = MISSING
    epochs: int = MISSING


@dataclass
class PlateauScheduleConfig(ScheduleConfig):
    """schedule=plateau: as torch's ReduceLROnPlateau, on the validation ELBO."""

    factor: float = MISSING
    patience: int = MISSING
    threshold: float = MISSING
    min_lr: float = MISSING


@dataclass
class LikelihoodConfig:
    """likelihood=bernoulli: no settings of its own."""

    name: str = MISSING


@dataclass
class ScaledLikelihoodConfig(LikelihoodConfig):
    """likelihood=gaussian and likelihood=discretized_logistic: a location and a scale per pixel."""

    scale: str = MISSING
    fixed_scale: float = MISSING
    min_scale: float = MISSING


@dataclass
class LoggerConfig:
    """logger=none."""

    name: str = MISSING


@dataclass
class TensorBoardConfig(LoggerConfig):
    """logger=tensorboard: also how often images are logged."""

    image_every: int = MISSING


@dataclass
class TaskConfig:
    """task=train: the run itself."""

    name: str = MISSING


@dataclass
class FinishedRunTaskConfig(TaskConfig):
    """task=evaluate: works on the run in run_dir."""

    run_dir: Optional[str] = MISSING


@dataclass
class SampleTaskConfig(FinishedRunTaskConfig):
    """task=sample."""

    n: int = MISSING
    per_class: bool = MISSING


@dataclass
class ReconstructTaskConfig(FinishedRunTaskConfig):
    """task=reconstruct: test images, or image files."""

    n: int = MISSING
    images: Optional[List[str]] = MISSING
    labels: Optional[List[int]] = MISSING


@dataclass
class InterpolateTaskConfig(FinishedRunTaskConfig):
    """task=interpolate: between two test images."""

    start: int = MISSING
    end: int = MISSING
    steps: int = MISSING


@dataclass
class Config:
    """conf/config.yaml."""

    # The config groups: each node takes the type of the chosen file's schema (GROUP_SCHEMAS). Any
    # here lets Python code swap in another option's settings, e.g. cfg.schedule = {"name": "plateau", ...}.
    model: Any = MISSING
    dataset: Any = MISSING
    net: Any = MISSING
    optimizer: Any = MISSING
    elbo: Any = MISSING
    schedule: Any = MISSING
    likelihood: Any = MISSING
    logger: Any = MISSING
    task: Any = MISSING

    latent_dim: int = MISSING
    epochs: int = MISSING
    batch_size: int = MISSING
    lr: float = MISSING
    seed: int = MISSING
    device: str = MISSING
    threads: Optional[int] = MISSING
    resume: bool = MISSING
    kl_weight: float = MISSING
    kl_warmup_epochs: int = MISSING
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# The schema of each file of each config group: conf/GROUP/OPTION.yaml extends GROUP_OPTION_schema.
# experiment/, hparams_search/ and cluster/ have none: they only set keys declared here (and Hydra's).
GROUP_SCHEMAS: Dict[str, Dict[str, Any]] = {
    "model": {"vae": ModelConfig, "cvae": ModelConfig},
    "dataset": {"mnist": DatasetConfig, "cifar10": DatasetConfig},
    "net": {"mlp": NetConfig, "conv": NetConfig},
    "optimizer": {
        "adam": AdamConfig,
        "adagrad": OptimizerConfig,
        "clipped_adam": ClippedAdamConfig,
        "rmsprop": RMSpropConfig,
    },
    "elbo": {
        "trace": ElboConfig,
        "trace_pyro": ElboConfig,
        "jit": ElboConfig,
        "meanfield": ElboConfig,
        "iwae": IwaeConfig,
    },
    "schedule": {
        "constant": ScheduleConfig,
        "burda": BurdaScheduleConfig,
        "cosine": CosineScheduleConfig,
        "plateau": PlateauScheduleConfig,
    },
    # gaussian and discretized_logistic are `# @package _global_` files: their schema goes @likelihood.
    "likelihood": {
        "bernoulli": LikelihoodConfig,
        "gaussian": ScaledLikelihoodConfig,
        "discretized_logistic": ScaledLikelihoodConfig,
    },
    "logger": {"none": LoggerConfig, "tensorboard": TensorBoardConfig},
    "task": {
        "train": TaskConfig,
        "evaluate": FinishedRunTaskConfig,
        "sample": SampleTaskConfig,
        "reconstruct": ReconstructTaskConfig,
        "interpolate": InterpolateTaskConfig,
    },
}
CONFIG_SCHEMA = "config_schema"


def schema_name(group: str, option: str) -> str:
    """The ConfigStore name that conf/GROUP/OPTION.yaml lists in its defaults list."""
    return f"{group}_{option}_schema"


def register_schemas() -> None:
    """Store every schema in Hydra's ConfigStore; call it before any composition (run.py and
    ``compose_config`` do). Storing again replaces the same nodes, so a second call changes nothing."""
    store = ConfigStore.instance()
    store.store(name=CONFIG_SCHEMA, node=Config)
    for group, options in GROUP_SCHEMAS.items():
        for option, schema in options.items():
            store.store(name=schema_name(group, option), node=schema)
