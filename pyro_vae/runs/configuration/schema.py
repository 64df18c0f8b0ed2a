"""The type of every setting in ``conf/``, as Hydra structured configs.

``conf/config.yaml`` extends ``config_schema`` (``Config`` below) and each file of a config group
extends the schema of its keys, e.g. ``conf/optimizer/adam.yaml`` starts with::

    defaults:
      - /optimizer_adam_schema@_here_   # the keys below and their types: pyro_vae/schema.py
      - _self_

The values stay in the YAML files; a schema declares the keys and their types (``MISSING``: the
YAML file sets it). Hydra then refuses, while it composes, an unknown key, a value of the wrong
type and an unknown group option; ``pyro_vae.runs.configuration.refusals`` words each refusal as one line. Ranges
and rules between settings stay in ``pyro_vae.runs.configuration.settings``.

The schemas are stored at the top of Hydra's ConfigStore (not in a config group), so they are
neither options of a group (``net=...``) nor listed by ``python run.py --help``.
"""

from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from ...errors import ConfigError
from ...setting_types import Activation, Binarization, Choice, Gradient, ScaleMode


class Device(Choice):
    """device=: auto takes CUDA when torch sees one."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class SviStep(Choice):
    """svi_step=: how a training step is taken (``pyro_vae.runs.loop.steps``)."""

    torch = "torch"  # one torch optimizer over the objective's differentiable_loss (default, faster)
    pyro = "pyro"  # pyro.infer.SVI with pyro.optim, Pyro's textbook loop (Trace_ELBO for objective=trace)


class Strategy(Choice):
    """trainer.strategy=: how the processes of one run are started (``pyro_vae.runs.loop.processes``)."""

    auto = "auto"  # one process; ddp_spawn for trainer.devices > 1, ddp for trainer.num_nodes > 1
    ddp_spawn = "ddp_spawn"  # this process starts trainer.devices processes on this node
    ddp = "ddp"  # srun or torchrun started the processes, this one among them


# trainer.precision=: the training step's matrix products, by Lightning's names: 32-true, or bf16-mixed
# (bfloat16 under autocast; parameters, optimizer state and every figure float32). Members are named by
# their values, which are not identifiers.
Precision = Choice("Precision", [("32-true", "32-true"), ("bf16-mixed", "bf16-mixed")])


# --- top level (conf/config.yaml) --------------------------------------------------------------


@dataclass
class DecoderConfig:
    """decoder.*: the Bayesian decoder's switch and scales."""

    bayesian: bool = MISSING
    weight_prior_scale: float = MISSING
    weight_init_scale: float = MISSING


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
    val_iwae_k: Optional[int] = MISSING  # null: min(iwae_k, 100)


@dataclass
class TrainerConfig:
    """trainer.*: the processes and precision of one training run."""

    devices: int = MISSING
    num_nodes: int = MISSING
    strategy: Strategy = MISSING
    precision: Precision = MISSING


@dataclass
class QualityConfig:
    """quality.*: where the feature classifiers of the sample-quality metrics are cached (pyro_vae/quality/)."""

    cache_dir: str = MISSING


# --- config groups: one schema per file of conf/GROUP/, subclasses of the group's base ---------


@dataclass
class GuideConfig:
    """guide=diagonal|full|iaf: the variational family q(z|x)."""

    name: str = MISSING


@dataclass
class IafGuideConfig(GuideConfig):
    """guide=iaf: the flow's steps, the context h(x) the encoder gives them, their masked networks' widths."""

    steps: int = MISSING
    context_dim: int = MISSING
    widths: List[int] = MISSING


@dataclass
class PriorConfig:
    """prior=standard|vampprior|flow: p(z), N(0, I) for standard; ``_target_`` the class it builds (a user's
    own ``modelling.priors.LatentPrior`` in its place: docs/variants.md, "Your own prior")."""

    name: str = MISSING
    _target_: str = MISSING


@dataclass
class VampPriorConfig(PriorConfig):
    """prior=vampprior: the number of pseudo-inputs."""

    num_pseudo_inputs: int = MISSING


@dataclass
class FlowPriorConfig(PriorConfig):
    """prior=flow: the masked autoregressive flow's steps and its networks' widths."""

    steps: int = MISSING
    widths: List[int] = MISSING


@dataclass
class ModelConfig:
    """model=vae|cvae|hvae|gan."""

    name: str = MISSING


@dataclass
class HierarchicalModelConfig(ModelConfig):
    """model=hvae: the top layer z2 (latent_dim is z1's) and the widths between z1 and z2."""

    top_latent_dim: int = MISSING
    top_widths: List[int] = MISSING


@dataclass
class GanModelConfig(ModelConfig):
    """model=gan: the DCGAN's channels at the image's side (doubling toward the smallest feature map) and
    the Adam settings of both of its networks (latent_dim is z's size, as for the VAE)."""

    generator_width: int = MISSING
    discriminator_width: int = MISSING
    lr: float = MISSING
    betas: List[float] = MISSING


@dataclass
class DatasetConfig:
    """dataset=mnist|fashion_mnist|kmnist|binarized_mnist|omniglot|cifar10|svhn|celeba|folder: where the files are,
    whether they must be the official release, and how the splits are carved."""

    name: str = MISSING
    root: Optional[str] = MISSING
    download: bool = MISSING
    verify: bool = MISSING
    binarize: Binarization = MISSING
    val_size: int = MISSING
    train_size: Optional[int] = MISSING
    test_size: Optional[int] = MISSING


@dataclass
class CelebaDatasetConfig(DatasetConfig):
    """dataset=celeba: also the side the centre-cropped faces are resized to."""

    image_size: int = MISSING


@dataclass
class FolderDatasetConfig(CelebaDatasetConfig):
    """dataset=folder: a folder of one's own images, resized to image_size, grey (channels=1) or colour (3),
    its test split a fixed test_fraction drawn by split_seed (never by seed)."""

    channels: int = MISSING
    split_seed: int = MISSING
    test_fraction: float = MISSING


@dataclass
class NetConfig:
    name: str = MISSING
    widths: List[int] = MISSING
    activation: Activation = MISSING
    min_encoder_scale: float = MISSING


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
class ObjectiveConfig:
    """objective=trace|jit|meanfield."""

    name: str = MISSING
    num_particles: int = MISSING


@dataclass
class IwaeObjectiveConfig(ObjectiveConfig):
    """objective=iwae: also the encoder's gradient estimator."""

    gradient: Gradient = MISSING


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

    scale_mode: ScaleMode = MISSING
    fixed_scale: float = MISSING
    min_pixel_scale: float = MISSING


@dataclass
class LoggerConfig:
    """logger=none, and logger=csv: the Lightning logger its ``_target_`` builds (pyro_vae.runs.loop.loggers)."""

    name: str = MISSING
    _target_: Optional[str] = None


@dataclass
class TensorBoardConfig(LoggerConfig):
    """logger=tensorboard: also how often images are logged."""

    image_every: int = MISSING


@dataclass
class MLflowConfig(LoggerConfig):
    """logger=mlflow: also where the runs are stored."""

    tracking_uri: Optional[str] = None


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
class SampleQualityTaskConfig(FinishedRunTaskConfig):
    """task=sample_quality: samples scored in a classifier's feature space."""

    n: int = MISSING
    kid_subsets: int = MISSING
    kid_subset_size: Optional[int] = MISSING  # null: follows the scored sets' size
    k: int = MISSING


@dataclass
class Config:
    """conf/config.yaml."""

    # The config groups: each node takes the type of the chosen file's schema (OPTIONS). Any
    # here lets Python code swap in another option's settings, e.g. cfg.schedule = {"name": "plateau", ...}.
    model: Any = MISSING
    guide: Any = MISSING
    prior: Any = MISSING
    dataset: Any = MISSING
    net: Any = MISSING
    optimizer: Any = MISSING
    objective: Any = MISSING
    schedule: Any = MISSING
    likelihood: Any = MISSING
    logger: Any = MISSING
    task: Any = MISSING

    latent_dim: int = MISSING
    epochs: int = MISSING
    batch_size: int = MISSING
    lr: float = MISSING
    seed: int = MISSING
    device: Device = MISSING
    svi_step: SviStep = MISSING
    threads: Optional[int] = MISSING
    resume: bool = MISSING
    kl_weight: float = MISSING
    kl_warmup_epochs: int = MISSING
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    # A user's own Lightning callbacks, each built from its _target_ (pyro_vae.runs.loop.user_callbacks).
    callbacks: Dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Option:
    """One option of a config group, declared once: the schema of conf/GROUP/OPTION.yaml, what it
    builds (``module:attribute``, imported on first use so that declaring it imports nothing) and, for
    a model not trained by SVI on a bound, the ``task=train`` of its own (``trains``, the same form)."""

    schema: type
    builds: Optional[str] = None
    trains: Optional[str] = None

    def component(self, declared: str = "builds") -> Any:
        module, _, attribute = getattr(self, declared).partition(":")
        return getattr(import_module(module), attribute)


_VAE, _GUIDES, _LIKELIHOODS, _NETS, _OBJECTIVES = (
    "pyro_vae.modelling.vae",
    "pyro_vae.modelling.guides",
    "pyro_vae.modelling.likelihoods",
    "pyro_vae.modelling.networks",
    "pyro_vae.modelling.objectives",
)

# Every option of every config group: the schema, the builders (pyro_vae/runs/configuration/builders.py) and the
# refusals (which list an option's choices) read this table, and nothing else names the options.
# experiment/, hparams_search/ and cluster/ have none: they only set keys declared here (and Hydra's).
OPTIONS: Dict[str, Dict[str, Option]] = {
    "model": {
        "vae": Option(ModelConfig, f"{_VAE}:VAE"),
        "cvae": Option(ModelConfig, f"{_VAE}:ConditionalVAE"),
        "hvae": Option(HierarchicalModelConfig, "pyro_vae.modelling.hierarchical:HierarchicalVAE"),
        "gan": Option(
            GanModelConfig, "pyro_vae.modelling.gan:GAN", trains="pyro_vae.runs.tasks.gan_training:train_gan"
        ),
    },
    "guide": {
        "diagonal": Option(GuideConfig, f"{_GUIDES}:DiagonalGaussian"),
        "full": Option(GuideConfig, f"{_GUIDES}:FullCovarianceGaussian"),
        "iaf": Option(IafGuideConfig, f"{_GUIDES}:InverseAutoregressiveFlow"),
    },
    "prior": {
        # Each option's YAML file names the class it builds as its _target_.
        "standard": Option(PriorConfig),
        "vampprior": Option(VampPriorConfig),
        "flow": Option(FlowPriorConfig),
    },
    "dataset": {
        "mnist": Option(DatasetConfig, "pyro_vae.data.mnist:READER"),
        "fashion_mnist": Option(DatasetConfig, "pyro_vae.data.fashion_mnist:READER"),
        "kmnist": Option(DatasetConfig, "pyro_vae.data.kmnist:READER"),
        "binarized_mnist": Option(DatasetConfig, "pyro_vae.data.binarized_mnist:READER"),
        "omniglot": Option(DatasetConfig, "pyro_vae.data.omniglot:READER"),
        "cifar10": Option(DatasetConfig, "pyro_vae.data.cifar10:READER"),
        "svhn": Option(DatasetConfig, "pyro_vae.data.svhn:READER"),
        "celeba": Option(CelebaDatasetConfig, "pyro_vae.data.celeba:READER"),
        "folder": Option(FolderDatasetConfig, "pyro_vae.data.image_folder:READER"),
    },
    "net": {
        "mlp": Option(NetConfig, f"{_NETS}:MLP"),
        "conv": Option(NetConfig, f"{_NETS}:CONV"),
    },
    "optimizer": {
        "adam": Option(AdamConfig, "torch.optim:Adam"),
        "adagrad": Option(OptimizerConfig, "torch.optim:Adagrad"),
        "clipped_adam": Option(ClippedAdamConfig, "pyro.optim.clipped_adam:ClippedAdam"),
        "rmsprop": Option(RMSpropConfig, "torch.optim:RMSprop"),
    },
    "objective": {
        "trace": Option(ObjectiveConfig, f"{_OBJECTIVES}:DeviceTrace_ELBO"),
        "jit": Option(ObjectiveConfig, f"{_OBJECTIVES}:CorrectedJitTrace_ELBO"),
        "meanfield": Option(ObjectiveConfig, "pyro.infer:TraceMeanField_ELBO"),
        "iwae": Option(IwaeObjectiveConfig, f"{_OBJECTIVES}:IWAE_ELBO"),
    },
    "schedule": {
        "constant": Option(ScheduleConfig),
        "burda": Option(BurdaScheduleConfig, "pyro_vae.runs.loop.schedules:burda_schedule"),
        "cosine": Option(CosineScheduleConfig, "pyro_vae.runs.loop.schedules:cosine_schedule"),
        "plateau": Option(PlateauScheduleConfig, "pyro_vae.runs.loop.schedules:plateau_schedule"),
    },
    # gaussian and discretized_logistic are `# @package _global_` files: their schema goes @likelihood.
    "likelihood": {
        "bernoulli": Option(LikelihoodConfig, f"{_LIKELIHOODS}:BernoulliPixels"),
        "gaussian": Option(ScaledLikelihoodConfig, f"{_LIKELIHOODS}:GaussianPixels"),
        "discretized_logistic": Option(ScaledLikelihoodConfig, f"{_LIKELIHOODS}:DiscretizedLogisticPixels"),
    },
    "logger": {
        "none": Option(LoggerConfig),
        "csv": Option(LoggerConfig),
        "tensorboard": Option(TensorBoardConfig),
        "mlflow": Option(MLflowConfig),
    },
    "task": {
        "train": Option(TaskConfig, "pyro_vae.runs.tasks.training_run:train"),
        "evaluate": Option(FinishedRunTaskConfig, "pyro_vae.runs.tasks.tasks:evaluate_run"),
        "sample": Option(SampleTaskConfig, "pyro_vae.runs.tasks.tasks:sample_run"),
        "reconstruct": Option(ReconstructTaskConfig, "pyro_vae.runs.tasks.tasks:reconstruct_run"),
        "interpolate": Option(InterpolateTaskConfig, "pyro_vae.runs.tasks.tasks:interpolate_run"),
        "sample_quality": Option(SampleQualityTaskConfig, "pyro_vae.runs.tasks.sample_quality:sample_quality_run"),
    },
}


def option(group: str, name: str) -> Option:
    """The declaration of ``GROUP=NAME`` (Hydra has refused an unknown one while composing; a
    config built in Python is refused here, in the same words)."""
    if name not in OPTIONS[group]:
        raise ConfigError(f"{group}={name}: choose one of {', '.join(OPTIONS[group])}")
    return OPTIONS[group][name]


def likelihood_free(cfg: DictConfig) -> bool:
    """Whether ``model=NAME`` defines no likelihood (model=gan): it declares a training task of its own
    (``Option.trains``) rather than SVI on a bound."""
    return option("model", cfg.model.name).trains is not None


CONFIG_SCHEMA = "config_schema"


def schema_name(group: str, option: str) -> str:
    """The ConfigStore name that conf/GROUP/OPTION.yaml lists in its defaults list."""
    return f"{group}_{option}_schema"


def register_schemas() -> None:
    """Store every schema in Hydra's ConfigStore; call it before any composition (run.py and
    ``compose_config`` do). Storing again replaces the same nodes, so a second call changes nothing."""
    _share_the_store()
    store = ConfigStore.instance()
    store.store(name=CONFIG_SCHEMA, node=Config)
    for group, options in OPTIONS.items():
        for name, declared in options.items():
            store.store(name=schema_name(group, name), node=declared.schema)


def _share_the_store() -> None:
    """Let Hydra's copies of its config repository share the one ConfigStore, as Hydra's main branch
    does (facebookresearch/hydra#2928 reads the live singleton instead of holding it).

    Hydra 1.3 deep-copies the repository, and with it the whole ConfigStore (these schemas and its
    plugins' configs), each time it composes or lists a group: ``python run.py --help`` lists every
    group: 139 copies, 3 of the 4 CPU seconds it took. The store needs no copy: ``ConfigStore.load`` hands out
    a deep copy of the node it loads, and nothing else writes to the store while composing."""
    if "__deepcopy__" not in vars(ConfigStore):
        ConfigStore.__deepcopy__ = lambda self, memo: self  # type: ignore[attr-defined]
