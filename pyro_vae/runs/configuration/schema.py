"""Every setting declared once: its name, type, default, range and meaning, as Hydra structured configs.

``setting(default, meaning, check)`` declares a setting of a dataclass below; ``OPTIONS`` declares each option
of each config group as a node of its group's schema (the defaults that are the option's own set there) and
what it builds. ``register_schemas`` puts them in Hydra's ConfigStore, where ``conf/config.yaml``'s defaults
list chooses among them: the YAML files of conf/ hold no setting's value, only the choices (``config.yaml``),
the published setups (``experiment/``), sweeps and the two likelihoods that bring other groups' defaults.

Hydra refuses, while it composes, an unknown key, a value of the wrong type and an unknown group option;
``refusals.py`` words each refusal as one line. ``settings.validate`` refuses a value outside its setting's
range, and holds the rules between settings. Nothing here imports torch or the modelling wing.
"""

from dataclasses import Field, dataclass, field, fields, is_dataclass
from importlib import import_module
from typing import Any, Dict, Iterator, List, Optional, Tuple

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from ...errors import ConfigError
from ...setting_types import Activation, Binarization, Choice, Gradient, ScaleMode
from .ranges import (
    MIN_EPS,
    NATS,
    POSITIVE,
    POSITIVE_INTEGER,
    POSITIVE_INTEGER_OR_NULL,
    SEED,
    TEST_IMAGE,
    WIDTHS,
    Check,
    adam_betas,
    at_least,
    fraction,
    integer,
    learning_rate,
    open_unit,
    or_null,
    weight_scale,
)
from .values import is_integer


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


def setting(default: Any, meaning: str, check: Optional[Check] = None) -> Any:
    """A setting declared once: its ``default`` (its type is the field's), its ``meaning`` (docs/settings.md
    names every setting) and its range, ``check``, which ``settings.validate`` refuses a value outside of
    in one line before any work. An option whose default differs sets it where the option is declared."""
    metadata = {"meaning": meaning, "check": check}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# --- top level (conf/config.yaml chooses the options of the groups) -----------------------------


@dataclass
class DecoderConfig:
    """decoder.*: the Bayesian decoder's switch and scales."""

    bayesian: bool = setting(False, "true: Normal priors on the decoder's weights and a mean-field Gaussian guide")
    weight_prior_scale: float = setting(
        1.0,
        "the standard deviation of the weights' prior",
        weight_scale("the standard deviation of the weights' prior"),
    )
    weight_init_scale: float = setting(
        1.0e-3,
        "the initial standard deviation of the weights' guide q(W)",
        weight_scale("the initial standard deviation of q(W)"),
    )


@dataclass
class EarlyStoppingConfig:
    """early_stopping.*: null patience never stops early."""

    patience: Optional[int] = setting(
        None,
        "stop after this many epochs without a better validation ELBO; null: never",
        or_null(POSITIVE_INTEGER, "must be a positive integer, or null to never stop early"),
    )
    threshold: float = setting(0.1, "nats by which an epoch must beat the best to count as better", NATS)


@dataclass
class EvalConfig:
    """eval.*: how the test figures are estimated."""

    iwae_k: int = setting(
        1000, "importance samples per test image for log p(x); Burda et al. use 5000", POSITIVE_INTEGER
    )
    chunk_size: int = setting(2048, "(image, sample) pairs decoded at once", POSITIVE_INTEGER)
    weight_draws: int = setting(
        10, "decoder.bayesian=true: weight draws averaged over in the test log p(x)", POSITIVE_INTEGER
    )
    val_iwae_k: Optional[int] = setting(
        None,
        "importance samples per validation image for val_log_likelihood; null: not estimated",
        POSITIVE_INTEGER_OR_NULL,
    )


@dataclass
class TrainerConfig:
    """trainer.*: Lightning's Trainer: one run over several processes, and its precision."""

    devices: int = setting(1, "processes on each node: CPU processes, or one GPU each", POSITIVE_INTEGER)
    num_nodes: int = setting(1, "> 1: under srun or torchrun, with strategy=ddp", POSITIVE_INTEGER)
    strategy: Strategy = setting(Strategy.auto, "auto, ddp_spawn (this command starts the processes) or ddp")
    precision: Precision = setting(Precision("32-true"), "32-true, or bf16-mixed: the step's products in bfloat16")


@dataclass
class QualityConfig:
    """quality.*: where the feature classifiers of the sample-quality metrics are cached (pyro_vae/quality/)."""

    cache_dir: str = setting(
        "${oc.env:PYRO_VAE_CACHE,'~/.cache/pyro_vae'}",
        "the sample-quality feature classifiers, trained once per data set",
    )


# --- config groups: each option a node of its group's schema, declared in OPTIONS below -----------


@dataclass
class GuideConfig:
    """guide=: the variational family q(z|x); ``_target_`` its class, built partially here (``_partial_``) and
    completed by the encoder with the latent size and the floor of its scales."""

    name: str = MISSING
    _target_: str = setting("pyro_vae.modelling.guides.DiagonalGaussian", "the variational family's class")
    _partial_: bool = True


@dataclass
class IafGuideConfig(GuideConfig):
    steps: int = setting(2, "autoregressive steps on top of the Gaussian", POSITIVE_INTEGER)
    context_dim: int = setting(50, "the numbers h(x) the encoder gives the steps beside mu and sigma", POSITIVE_INTEGER)
    widths: List[int] = setting([200], "hidden widths of each step's masked network", WIDTHS)


@dataclass
class PriorConfig:
    """prior=: p(z); ``_target_`` the class it builds (a user's own ``modelling.priors.LatentPrior`` in its
    place: docs/variants.md, "Your own prior")."""

    name: str = MISSING
    _target_: str = setting("pyro_vae.modelling.priors.StandardNormal", "the prior's class, MODULE.CLASS")


@dataclass
class VampPriorConfig(PriorConfig):
    num_pseudo_inputs: int = setting(
        500, "the learned pseudo-inputs u_k (Tomczak and Welling use 500)", POSITIVE_INTEGER
    )


@dataclass
class FlowPriorConfig(PriorConfig):
    steps: int = setting(2, "affine autoregressive steps", POSITIVE_INTEGER)
    widths: List[int] = setting([200], "hidden widths of each step's masked network", WIDTHS)


@dataclass
class ModelConfig:
    """model=: the VAE or what it is compared with."""

    name: str = MISSING


@dataclass
class HierarchicalModelConfig(ModelConfig):
    top_latent_dim: int = setting(50, "the top layer z2's size (latent_dim is z1's)", POSITIVE_INTEGER)
    top_widths: List[int] = setting([100, 100], "the widths between z1 and z2", WIDTHS)


@dataclass
class GanModelConfig(ModelConfig):
    generator_width: int = setting(64, "G's channels at the image's side, doubled toward its start", POSITIVE_INTEGER)
    discriminator_width: int = setting(64, "D's channels at its first layer, doubled at each stride", POSITIVE_INTEGER)
    lr: float = setting(2.0e-4, "Adam's step size for G and D (DCGAN's)", learning_rate("model.lr", "2e-4"))
    betas: List[float] = setting([0.5, 0.999], "Adam's decay rates for G and D", adam_betas("[0.5,0.999]"))


@dataclass
class SemiSupervisedModelConfig(ModelConfig):
    classifier_widths: List[int] = setting([500], "q(y|x)'s hidden widths (Kingma et al.: one layer of 500)", WIDTHS)
    alpha: float = setting(
        0.1,
        "the classification term's weight, a multiple of the training images N (Kingma et al.: 0.1 N)",
        at_least(0, "must be a number >= 0"),
    )
    labelled_batch_size: int = setting(
        100,
        "labelled images in each step, beside batch_size unlabelled ones (docs/semi_supervised.md)",
        POSITIVE_INTEGER,
    )
    features_from: Optional[str] = setting(
        None, "M1+M2: a trained model=vae run whose posterior means M2 models (docs/semi_supervised.md); null: pixels"
    )


@dataclass
class DatasetConfig:
    """dataset=: where the files are, whether they must be the official release, and how the splits are carved."""

    name: str = MISSING
    root: Optional[str] = setting("data", "the folder holding the data set's files (docs/data.md)")
    download: bool = setting(False, "true: fetch missing files from the official site (needs a network)")
    verify: bool = setting(True, "false: read files that are not the official release (a warning)")
    binarize: Binarization = setting(
        Binarization.dynamic, "dynamic (a fresh draw per batch), static (one draw) or none"
    )
    val_size: int = setting(10000, "images held out to validate and pick the best checkpoint", POSITIVE_INTEGER)
    train_size: Optional[int] = setting(None, "null: the rest of the training split; N: its first N images")
    test_size: Optional[int] = setting(None, "null: the whole test split; N: its first N images")
    num_labels: Optional[int] = setting(
        None, "model=m2: the labelled training images, balanced over the classes", POSITIVE_INTEGER_OR_NULL
    )
    label_seed: int = setting(0, "model=m2: the seed that draws the labelled images", SEED)


@dataclass
class CelebaDatasetConfig(DatasetConfig):
    image_size: int = setting(64, "the side, in pixels, each image is resized to", POSITIVE_INTEGER)


@dataclass
class FolderDatasetConfig(CelebaDatasetConfig):
    channels: int = setting(
        1,
        "1: grey; 3: colour (RGB)",
        Check(lambda value: value in (1, 3) and is_integer(value), "must be 1 (grey) or 3 (colour)"),
    )
    split_seed: int = setting(
        0, "draws which images test and validate; seed does not", Check(is_integer, "must be an integer")
    )
    test_fraction: float = setting(
        0.1,
        "the fraction of the images held out for testing",
        open_unit("the fraction of the folder's images held out for testing"),
    )


@dataclass
class NetConfig:
    """net=: the encoder's and decoder's networks."""

    name: str = MISSING
    widths: List[int] = setting([512, 256], "encoder widths; the decoder mirrors them", WIDTHS)
    activation: Activation = setting(Activation.relu, "relu, tanh, softplus or elu")
    min_encoder_scale: float = setting(
        1.0e-4,
        "the floor on the guide's standard deviation",
        Check(POSITIVE.accepted, "must be > 0 so that q(z|x) never collapses"),
    )


@dataclass
class OptimizerConfig:
    """optimizer=: one torch optimizer over all parameters; ``_target_`` its class (any torch optimizer in its
    place: docs/settings.md, "Your own optimizer")."""

    name: str = MISSING
    _target_: str = setting("torch.optim.Adagrad", "the optimizer's class, MODULE.CLASS (a torch.optim.Optimizer)")


@dataclass
class AdamMomentsConfig(OptimizerConfig):
    """The settings Adam and ClippedAdam share."""

    betas: List[float] = setting([0.9, 0.999], "the decay rates of Adam's averages", adam_betas("[0.9,0.999]"))
    eps: float = setting(
        1.0e-8,
        "added to sqrt(v) before dividing by it",
        at_least(
            MIN_EPS,
            f"must be a number >= {MIN_EPS:g}, e.g. 1e-8: Adam divides by sqrt(v) + eps, and v is 0 where the "
            "gradients have been",
        ),
    )


@dataclass
class AdamConfig(AdamMomentsConfig):
    fused: bool = setting(True, "one fused kernel for all parameters; false: torch's per-tensor Adam")


@dataclass
class ClippedAdamConfig(AdamMomentsConfig):
    clip_norm: float = setting(
        10.0,
        "the largest gradient norm per image",
        Check(POSITIVE.accepted, "must be a number > 0, e.g. 10: the largest gradient norm per image"),
    )


@dataclass
class RMSpropConfig(OptimizerConfig):
    alpha: float = setting(
        0.99,
        "the decay rate of the average of the squared gradient",
        fraction("e.g. 0.99: the decay rate of RMSprop's average of the squared gradient"),
    )


@dataclass
class ObjectiveConfig:
    """objective=: the bound trained on."""

    name: str = MISSING
    num_particles: int = setting(1, "samples of z per image and step (vectorized)", POSITIVE_INTEGER)


@dataclass
class IwaeObjectiveConfig(ObjectiveConfig):
    gradient: Gradient = setting(Gradient.standard, "the encoder's gradient estimator: standard, or dreg")


@dataclass
class ScheduleConfig:
    """schedule=: the learning rate through the run."""

    name: str = MISSING


@dataclass
class BurdaScheduleConfig(ScheduleConfig):
    stages: int = setting(8, "stage i lasts 3^i epochs at lr * 10^(-i/7)", POSITIVE_INTEGER)


@dataclass
class CosineScheduleConfig(ScheduleConfig):
    final_factor: float = setting(
        0.0, "the fraction of lr left at the end", fraction("the fraction of lr left after the last epoch")
    )
    epochs: int = setting("${epochs}", "the length of the curve, in epochs (the run's unless set)", POSITIVE_INTEGER)


@dataclass
class PlateauScheduleConfig(ScheduleConfig):
    factor: float = setting(0.5, "the learning rate's multiplier", open_unit("the learning rate's multiplier"))
    patience: int = setting(5, "epochs without a better validation ELBO before the rate changes", POSITIVE_INTEGER)
    threshold: float = setting(0.1, "nats by which an epoch must beat the best to count as better", NATS)
    min_lr: float = setting(1.0e-5, "the rate never falls below it", at_least(0, "must be a number >= 0"))


@dataclass
class LikelihoodConfig:
    """likelihood=: the observation model p(x|z)."""

    name: str = MISSING


@dataclass
class ScaledLikelihoodConfig(LikelihoodConfig):
    scale_mode: ScaleMode = setting(
        ScaleMode.predicted,
        "predicted (per pixel), optimal (Gaussian: one calibrated sigma), learned, per_pixel or fixed",
    )
    fixed_scale: float = setting(0.1, "the scale when scale_mode=fixed", POSITIVE)
    min_pixel_scale: float = setting(1.0e-3, "floor on every learned, predicted or calibrated scale", POSITIVE)


@dataclass
class LoggerConfig:
    """logger=: the Lightning logger its ``_target_`` builds (pyro_vae.runs.loop.loggers)."""

    name: str = MISSING
    _target_: Optional[str] = setting(None, "the logger's class, MODULE.CLASS (a Lightning Logger)")


@dataclass
class TensorBoardConfig(LoggerConfig):
    image_every: int = setting(5, "reconstructions and prior samples every this many epochs", POSITIVE_INTEGER)


@dataclass
class MLflowConfig(LoggerConfig):
    tracking_uri: Optional[str] = setting(None, "null: a file store in RUN_DIR/mlruns; or an MLflow server's address")


@dataclass
class TaskConfig:
    """task=: the run itself, or a task on a finished run."""

    name: str = MISSING


@dataclass
class FinishedRunTaskConfig(TaskConfig):
    run_dir: Optional[str] = setting(None, "the run directory (holding checkpoint.pt); the outputs go to hydra.run.dir")


@dataclass
class SampleTaskConfig(FinishedRunTaskConfig):
    n: int = setting(64, "draws from the prior, decoded", POSITIVE_INTEGER)
    per_class: bool = setting(False, "true (model=cvae runs): n draws for each class, one row per class")


@dataclass
class ReconstructTaskConfig(FinishedRunTaskConfig):
    n: int = setting(10, "the first n test images, when no images are given", POSITIVE_INTEGER)
    images: Optional[List[str]] = setting(None, "[a.png,b.png]: image files of the run's size to reconstruct instead")
    labels: Optional[List[int]] = setting(None, "their class indices, one per file, for a conditional VAE")


@dataclass
class InterpolateTaskConfig(FinishedRunTaskConfig):
    start: int = setting(0, "index of the test image at one end", TEST_IMAGE)
    end: int = setting(1, "index of the test image at the other end", TEST_IMAGE)
    steps: int = setting(
        10, "points decoded along the line, both ends included", integer(2, "must be an integer >= 2 (both ends count)")
    )


@dataclass
class SampleQualityTaskConfig(FinishedRunTaskConfig):
    n: int = setting(10000, "samples of each kind scored, against the whole test set", POSITIVE_INTEGER)
    kid_subsets: int = setting(
        100, "KID: the mean and spread over this many random subsets of each set", POSITIVE_INTEGER
    )
    kid_subset_size: Optional[int] = setting(
        None, "KID: images in each subset; null: 1000, or all of the smallest scored set", POSITIVE_INTEGER_OR_NULL
    )
    k: int = setting(3, "precision and recall: the k-th nearest neighbour bounds each point's ball", POSITIVE_INTEGER)


@dataclass
class Config:
    """The whole config: the options of the groups (conf/config.yaml's defaults list) and the top level."""

    # The config groups: each node takes the type of the chosen option's schema (OPTIONS). Any
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

    latent_dim: int = setting(20, "dimensions of z", POSITIVE_INTEGER)
    epochs: int = setting(30, "training epochs", POSITIVE_INTEGER)
    batch_size: int = setting(128, "images per step (the global batch over every process)", POSITIVE_INTEGER)
    lr: float = setting(1.0e-3, "the learning rate", learning_rate("lr", "1e-3"))
    seed: int = setting(0, "seeds torch, Pyro and the fixed binarizations", SEED)
    device: Device = setting(Device.auto, "auto (CUDA when present), cpu or cuda")
    svi_step: SviStep = setting(SviStep.torch, "torch: one torch optimizer over the loss; pyro: pyro.infer.SVI")
    threads: Optional[int] = setting(
        None,
        "torch CPU threads; null: one per core that other processes leave idle, followed as the run goes on",
        or_null(POSITIVE_INTEGER, POSITIVE_INTEGER.requirement),
    )
    resume: bool = setting(False, "true: continue the run in hydra.run.dir from its last.pt")
    kl_weight: float = setting(
        1.0, "beta: the KL term's weight in training", at_least(0, "must be a number >= 0 (1 is the ELBO)")
    )
    kl_warmup_epochs: int = setting(
        0, "> 0: the KL weight rises from 0 over this many epochs", integer(0, "must be an integer >= 0")
    )
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    # A user's own Lightning callbacks, each built from its _target_ (pyro_vae.runs.loop.user_callbacks).
    callbacks: Dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Option:
    """One option of a config group, declared once: ``node``, its settings (an instance of its group's schema,
    with the defaults that are the option's own), what it builds (``module:attribute``, imported on first
    use so that declaring it imports nothing; a prior and a logger name theirs as ``_target_``), for a
    model not trained by the VAE's loop the ``task=train`` of its own (``trains``, the same form),
    ``file``: conf/GROUP/NAME.yaml selects it, for the changes it makes to other groups' defaults, and for a
    model ``likelihood_free``: it defines no p(x|z) (model=gan)."""

    node: Any
    builds: Optional[str] = None
    trains: Optional[str] = None
    file: bool = False
    likelihood_free: bool = False

    @property
    def schema(self) -> type:
        return type(self.node)

    def component(self, declared: str = "builds") -> Any:
        module, _, attribute = getattr(self, declared).partition(":")
        return getattr(import_module(module), attribute)


_VAE, _GUIDES, _PRIORS, _LIKELIHOODS, _NETS, _OBJECTIVES, _TASKS = (
    "pyro_vae.modelling.vae",
    "pyro_vae.modelling.guides",
    "pyro_vae.modelling.priors",
    "pyro_vae.modelling.likelihoods",
    "pyro_vae.modelling.networks",
    "pyro_vae.modelling.objectives",
    "pyro_vae.runs.tasks.tasks",
)


def _data(name: str, node: type = DatasetConfig, **own: Any) -> Option:
    """``dataset=NAME``, read by its module's READER."""
    module = {"folder": "image_folder"}.get(name, name)
    return Option(node(name=name, **own), f"pyro_vae.data.{module}:READER")


# Every option of every config group: the schema, the builders (pyro_vae/runs/configuration/builders.py) and the
# refusals (which list an option's choices) read this table, and nothing else names the options. Hydra finds them
# in its ConfigStore (register_schemas); experiment/, hparams_search/ and cluster/ are files of conf/ that only set
# keys declared here (and Hydra's).
OPTIONS: Dict[str, Dict[str, Option]] = {
    "model": {
        "vae": Option(ModelConfig(name="vae"), f"{_VAE}:VAE"),
        "cvae": Option(ModelConfig(name="cvae"), f"{_VAE}:ConditionalVAE"),
        "hvae": Option(HierarchicalModelConfig(name="hvae"), "pyro_vae.modelling.hierarchical:HierarchicalVAE"),
        "gan": Option(
            GanModelConfig(name="gan"),
            "pyro_vae.modelling.gan:GAN",
            trains="pyro_vae.runs.tasks.gan_training:train_gan",
            likelihood_free=True,
        ),
        "m2": Option(
            SemiSupervisedModelConfig(name="m2"),
            "pyro_vae.modelling.semi_supervised:SemiSupervisedVAE",
            trains="pyro_vae.runs.tasks.semi_supervised_run:train_m2",
        ),
    },
    "guide": {
        "diagonal": Option(GuideConfig(name="diagonal")),
        "full": Option(GuideConfig(name="full", _target_=f"{_GUIDES}.FullCovarianceGaussian")),
        "iaf": Option(IafGuideConfig(name="iaf", _target_=f"{_GUIDES}.InverseAutoregressiveFlow")),
    },
    "prior": {
        "standard": Option(PriorConfig(name="standard")),
        "vampprior": Option(VampPriorConfig(name="vampprior", _target_=f"{_PRIORS}.VampPrior")),
        "flow": Option(FlowPriorConfig(name="flow", _target_=f"{_PRIORS}.FlowPrior")),
    },
    "dataset": {
        "mnist": _data("mnist", root=None),
        "fashion_mnist": _data("fashion_mnist"),
        "kmnist": _data("kmnist"),
        "binarized_mnist": _data("binarized_mnist", binarize=Binarization.static),
        "omniglot": _data("omniglot", val_size=1345),
        "cifar10": _data("cifar10", val_size=5000),
        "svhn": _data("svhn", val_size=5000),
        "celeba": _data("celeba", CelebaDatasetConfig, val_size=19867),
        "folder": _data("folder", FolderDatasetConfig, root=None, image_size=28, val_size=100),
    },
    "net": {
        "mlp": Option(NetConfig(name="mlp"), f"{_NETS}:MLP"),
        "conv": Option(NetConfig(name="conv", widths=[32, 64, 128]), f"{_NETS}:CONV"),
    },
    "optimizer": {
        "adam": Option(AdamConfig(name="adam", _target_="torch.optim.Adam")),
        "adagrad": Option(OptimizerConfig(name="adagrad")),
        "clipped_adam": Option(ClippedAdamConfig(name="clipped_adam", _target_="pyro.optim.clipped_adam.ClippedAdam")),
        "rmsprop": Option(RMSpropConfig(name="rmsprop", _target_="torch.optim.RMSprop")),
    },
    "objective": {
        "trace": Option(ObjectiveConfig(name="trace"), f"{_OBJECTIVES}:DeviceTrace_ELBO"),
        "jit": Option(ObjectiveConfig(name="jit"), f"{_OBJECTIVES}:CorrectedJitTrace_ELBO"),
        "meanfield": Option(ObjectiveConfig(name="meanfield"), "pyro.infer:TraceMeanField_ELBO"),
        "iwae": Option(IwaeObjectiveConfig(name="iwae", num_particles=5), f"{_OBJECTIVES}:IWAE_ELBO"),
    },
    "schedule": {
        "constant": Option(ScheduleConfig(name="constant")),
        "burda": Option(BurdaScheduleConfig(name="burda"), "pyro_vae.runs.loop.schedules:burda_schedule"),
        "cosine": Option(CosineScheduleConfig(name="cosine"), "pyro_vae.runs.loop.schedules:cosine_schedule"),
        "plateau": Option(PlateauScheduleConfig(name="plateau"), "pyro_vae.runs.loop.schedules:plateau_schedule"),
    },
    # gaussian and discretized_logistic bring CIFAR-10 and the convolutional networks: their files do.
    "likelihood": {
        "bernoulli": Option(LikelihoodConfig(name="bernoulli"), f"{_LIKELIHOODS}:BernoulliPixels"),
        "gaussian": Option(ScaledLikelihoodConfig(name="gaussian"), f"{_LIKELIHOODS}:GaussianPixels", file=True),
        "discretized_logistic": Option(
            ScaledLikelihoodConfig(name="discretized_logistic"), f"{_LIKELIHOODS}:DiscretizedLogisticPixels", file=True
        ),
    },
    "logger": {
        "none": Option(LoggerConfig(name="none")),
        "csv": Option(LoggerConfig(name="csv", _target_="lightning.pytorch.loggers.CSVLogger")),
        "tensorboard": Option(
            TensorBoardConfig(name="tensorboard", _target_="pyro_vae.runs.loop.loggers.RunTensorBoardLogger")
        ),
        "mlflow": Option(MLflowConfig(name="mlflow", _target_="pyro_vae.runs.loop.loggers.mlflow_logger")),
    },
    "task": {
        "train": Option(TaskConfig(name="train"), "pyro_vae.runs.tasks.training_run:train"),
        "evaluate": Option(FinishedRunTaskConfig(name="evaluate"), f"{_TASKS}:evaluate_run"),
        "sample": Option(SampleTaskConfig(name="sample"), f"{_TASKS}:sample_run"),
        "reconstruct": Option(ReconstructTaskConfig(name="reconstruct"), f"{_TASKS}:reconstruct_run"),
        "interpolate": Option(InterpolateTaskConfig(name="interpolate"), f"{_TASKS}:interpolate_run"),
        "sample_quality": Option(
            SampleQualityTaskConfig(name="sample_quality"), "pyro_vae.runs.tasks.sample_quality:sample_quality_run"
        ),
    },
}


def option(group: str, name: str) -> Option:
    """The declaration of ``GROUP=NAME`` (Hydra has refused an unknown one while composing; a
    config built in Python is refused here, in the same words)."""
    if name not in OPTIONS[group]:
        raise ConfigError(f"{group}={name}: choose one of {', '.join(OPTIONS[group])}")
    return OPTIONS[group][name]


def likelihood_free(cfg: DictConfig) -> bool:
    """Whether ``model=NAME`` defines no likelihood (model=gan)."""
    return option("model", cfg.model.name).likelihood_free


def declared_settings(schema: type, prefix: str = "") -> Iterator[Tuple[str, Field]]:
    """Every setting ``schema`` declares, through its nested settings, as (dotted name, its field)."""
    for declared in fields(schema):
        if isinstance(declared.default_factory, type) and is_dataclass(declared.default_factory):
            yield from declared_settings(declared.default_factory, f"{prefix}{declared.name}.")
        elif "meaning" in declared.metadata:
            yield prefix + declared.name, declared


def every_setting() -> Iterator[Tuple[str, Field]]:
    """Every setting declared: the top level's and those of every option of every group."""
    yield from declared_settings(Config)
    for group, options in OPTIONS.items():
        for declared in options.values():
            yield from declared_settings(declared.schema, f"{group}.")


def chosen_settings(cfg: DictConfig) -> Iterator[Tuple[str, Field]]:
    """The settings of ``cfg``: the top level's and those of each group's chosen option."""
    yield from declared_settings(Config)
    for group in OPTIONS:
        yield from declared_settings(option(group, cfg[group].name).schema, f"{group}.")


CONFIG_SCHEMA = "config_schema"


def schema_name(group: str, option: str) -> str:
    """The ConfigStore name of an option that a file, conf/GROUP/OPTION.yaml, selects (``Option.file``)."""
    return f"{group}_{option}_schema"


def register_schemas() -> None:
    """Store every schema in Hydra's ConfigStore; call it before any composition (run.py and
    ``compose_config`` do). Storing again replaces the same nodes, so a second call changes nothing."""
    _share_the_store()
    store = ConfigStore.instance()
    store.store(name=CONFIG_SCHEMA, node=Config)
    store.store(group="hydra/help", name="settings", node={"settings": settings_listing()})
    for group, options in OPTIONS.items():
        for name, declared in options.items():
            if declared.file:  # conf/GROUP/NAME.yaml selects it, with what it changes in other groups
                store.store(name=schema_name(group, name), node=declared.node)
            else:
                store.store(group=group, name=name, node=declared.node)


def settings_listing() -> str:
    """The top level's settings as ``--help`` lists them: each with its default, as a command line gives it,
    and its meaning (conf/hydra/help/pyro_vae.yaml; a group's settings follow its option)."""
    lines = []
    for name, declared in declared_settings(Config):
        default = declared.default_factory() if callable(declared.default_factory) else declared.default
        shown = "null" if default is None else str(default).lower() if isinstance(default, bool) else str(default)
        lines.append(f"{name}={shown.replace(' ', '')}".ljust(32) + f" {declared.metadata['meaning']}")
    # Escaped twice: OmegaConf resolves the help text (\${), then string.Template substitutes it ($$).
    return "\n".join(lines).replace("${", "$\\${")


def _share_the_store() -> None:
    """Let Hydra's copies of its config repository share the one ConfigStore, as Hydra's main branch
    does (facebookresearch/hydra#2928 reads the live singleton instead of holding it).

    Hydra 1.3 deep-copies the repository, and with it the whole ConfigStore (these schemas and its
    plugins' configs), each time it composes or lists a group: ``python run.py --help`` lists every
    group: 139 copies, 3 of the 4 CPU seconds it took. The store needs no copy: ``ConfigStore.load`` hands out
    a deep copy of the node it loads, and nothing else writes to the store while composing."""
    if "__deepcopy__" not in vars(ConfigStore):
        ConfigStore.__deepcopy__ = lambda self, memo: self  # type: ignore[attr-defined]
