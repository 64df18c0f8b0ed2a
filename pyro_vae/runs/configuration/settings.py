"""The checks of a composed config that Hydra's schema cannot make, run once before any work, and
the device and thread choices.

Hydra has already refused unknown keys, values of the wrong type and values outside a closed set
(the Enum fields of ``schema.py``). What is left is three tables: the range of each setting
(``RANGES``), the rules between settings (``RULES``) and the rules that ask the chosen options' own
classes (``MODEL_RULES``: the likelihood, the data set's reader, the networks, the memory), each entry
with the one line that refuses it.

This module loads no torch: ``python run.py`` checks ``RANGES`` and ``RULES`` while it reads its
command line, so that their refusals answer at once; ``MODEL_RULES`` import the modelling wing and
the data sets (and with them torch) when they run, last.
"""

from typing import TYPE_CHECKING, Any, Callable, List, Optional, Tuple

from omegaconf import DictConfig, OmegaConf

from ...errors import ConfigError
from ...setting_types import Binarization
from .memory_estimate import memory_refusal
from .schema import OPTIONS, chosen_settings, likelihood_free, option
from .trainer_settings import beyond_one_float32_process, require_logger_package, started_outside, strategy, world_size
from .values import positive_int

if TYPE_CHECKING:
    import torch

    from .cores import ThreadsFollowLoad

_ABSENT = object()


def _reweighted(cfg: DictConfig) -> bool:
    return cfg.kl_weight != 1 or cfg.kl_warmup_epochs > 0


def _component(cfg: DictConfig, group: str) -> type:
    return option(group, cfg[group].name).component()


def _open_form_kl(cfg: DictConfig) -> Optional[str]:
    """The setting that leaves KL(q(z|x) || p(z)) without a closed form, or None."""
    if cfg.model.name == "hvae":
        return "model=hvae (q(z2|z1) and p(z1|z2) depend on a draw)"
    from .builders import guide_class, prior_class

    if not prior_class(cfg.prior).closed_form_kl:
        return f"prior={cfg.prior.name}"
    if not guide_class(cfg.guide).closed_form_kl:
        return f"guide={cfg.guide.name}"
    return None


def _target_refusal(cfg: DictConfig) -> Optional[str]:
    """A ``prior._target_`` or ``optimizer._target_`` that cannot be imported, is not a prior (an optimizer), or
    does not take the option's settings; a ``guide._target_`` that cannot be imported."""
    from .builders import guide_class, optimizer_class_of, prior_class

    try:
        prior_class(cfg.prior)
        optimizer_class_of(cfg.optimizer)
        guide_class(cfg.guide)
    except ConfigError as exc:
        return str(exc)
    return None


def _scale_mode_refusal(cfg: DictConfig) -> Optional[str]:
    from .builders import likelihood_class

    scales = getattr(likelihood_class(cfg.likelihood), "scales", None)
    if scales is None or cfg.likelihood.scale_mode in scales:
        return None
    choices = ", ".join(scales)
    mode, name = cfg.likelihood.scale_mode, cfg.likelihood.name
    return f"likelihood.scale_mode={mode}: choose one of {choices} for likelihood={name}"


def _binarization_refusal(cfg: DictConfig) -> Optional[str]:
    from ...data.transform import binarization_mismatch
    from .builders import likelihood_class

    if likelihood_free(cfg):  # a GAN sees the binary draws asked for, or the grey levels
        return None
    observes = likelihood_class(cfg.likelihood).observes
    return binarization_mismatch(cfg.dataset.binarize, observes, cfg.likelihood.name)


def _dataset_refusal(cfg: DictConfig) -> Optional[str]:
    """What the data set itself rules out (``DatasetReader``): unverified files unsafe to read, labels it
    lacks, grey levels or a fresh binarization of pixels that are binary already, settings of its own it cannot read."""
    from ...data.transform import Observation
    from .builders import dataset_reader, likelihood_class

    reader, name = dataset_reader(cfg), cfg.dataset.name
    if reader.refusal and (refusal := reader.refusal(cfg.dataset)):
        return refusal
    if not OmegaConf.select(cfg, "dataset.verify", default=True) and reader.verify_refusal:
        return reader.verify_refusal
    if not reader.labelled and _component(cfg, "model").conditional:
        return f"model={cfg.model.name} conditions on the label, and dataset={name} has no labels; use model=vae"
    classes, labels = len(reader.class_names), cfg.dataset.num_labels
    if labels is not None and labels % classes:
        return f"dataset.num_labels={labels}: must be a positive multiple of the {classes} classes"
    if reader.binary and likelihood_class(cfg.likelihood).observes != Observation.binary:
        return (
            f"likelihood={cfg.likelihood.name}: dataset={name} holds binary pixels, which only likelihood=bernoulli "
            "models; use likelihood=bernoulli, or dataset=mnist for grey levels"
        )
    if reader.binary and cfg.dataset.binarize != Binarization.static:
        return (
            f"dataset.binarize={cfg.dataset.binarize}: dataset={name} is binarized already (one fixed draw); set "
            "dataset.binarize=static, which keeps its pixels as they are"
        )
    return None


def _conv_layers_refusal(cfg: DictConfig) -> Optional[str]:
    if cfg.net.name != "conv":
        return None
    from ...modelling.networks import conv_sizes
    from .builders import dataset_reader

    try:
        conv_sizes(dataset_reader(cfg).image_shape, len(cfg.net.widths))
    except ValueError as exc:
        return f"net.widths={list(cfg.net.widths)}: {exc} of dataset={cfg.dataset.name}"
    return None


ELBO_FREE = "model=gan has no ELBO"
# The settings of the VAE that a GAN has no use for, each with the value conf/config.yaml gives it (a group's
# by its option's name) and why: with model=gan any other value is refused, whether it comes from the command
# line or an experiment= file, rather than recorded as if it had done something (tests/runs/test_gan.py checks
# that these are the defaults).
GAN_UNUSED: List[Tuple[str, Any, str]] = [
    ("objective", "trace", "model=gan is trained by its adversarial loss, not an ELBO objective"),
    ("objective.num_particles", 1, f"{ELBO_FREE} to estimate"),
    ("likelihood", "bernoulli", "model=gan defines no likelihood p(x|z): its generator outputs the pixels"),
    ("guide", "diagonal", "model=gan has no encoder q(z|x)"),
    ("prior", "standard", "model=gan draws z ~ N(0, I), the standard prior"),
    *(
        (name, default, "model=gan builds DCGAN networks sized by model.generator_width and model.discriminator_width")
        for name, default in (("net", "mlp"), ("net.widths", [512, 256]), ("net.activation", "relu"))
    ),
    *(
        (name, default, "model=gan trains both of its networks with Adam at model.lr and model.betas")
        for name, default in (("optimizer", "adam"), ("optimizer.betas", [0.9, 0.999]), ("lr", 1.0e-3))
    ),
    ("schedule", "constant", f"{ELBO_FREE} to schedule the learning rate by; it keeps model.lr"),
    ("svi_step", "torch", "model=gan takes no SVI step"),
    ("kl_weight", 1.0, "model=gan has no KL term to weight"),
    ("kl_warmup_epochs", 0, "model=gan has no KL term to warm up"),
    ("decoder.bayesian", False, "model=gan's generator has point-estimate weights, not a Bayesian decoder"),
    ("early_stopping.patience", None, f"{ELBO_FREE} on the validation images to stop by"),
    ("eval.iwae_k", 1000, "model=gan has no likelihood to estimate log p(x) of"),
    ("eval.val_iwae_k", None, "model=gan has no likelihood to estimate log p(x) of"),
    (
        "logger",
        ("csv", "none"),
        "TensorBoard and MLflow show a VAE's bounds and reconstructions; model=gan logs its losses to csv",
    ),
    *(
        (name, default, "model=gan trains in one float32 process")
        for name, default in (("trainer.devices", 1), ("trainer.num_nodes", 1), ("trainer.precision", "32-true"))
    ),
]


M2 = "model=m2"
# The settings of the VAE's loop that model=m2 (its own training task) has no use for, as GAN_UNUSED is for model=gan.
M2_UNUSED: List[Tuple[str, Any, str]] = [
    ("objective", "trace", f"{M2} sums the label out exactly (TraceEnum_ELBO) on one draw of z"),
    ("objective.num_particles", 1, f"{M2} sums the label out exactly (TraceEnum_ELBO) on one draw of z"),
    ("prior", ("standard", "flow"), f"prior=vampprior mixes q(z|u_k), which {M2}'s encoder cannot form unlabelled"),
    ("guide", ("diagonal", "full"), f"{M2}'s q(z|x, y) is a Gaussian: guide=diagonal or guide=full"),
    ("svi_step", "torch", f"{M2} steps on a labelled and an unlabelled minibatch at once"),
    ("schedule", "constant", f"{M2} trains at the constant rate lr"),
    ("kl_weight", 1.0, f"{M2} trains on its bound itself"),
    ("kl_warmup_epochs", 0, f"{M2} trains on its bound itself"),
    ("decoder.bayesian", False, f"{M2}'s decoder has point-estimate weights"),
    ("early_stopping.patience", None, f"{M2} keeps the epoch of the best validation error and trains every epoch"),
    ("eval.iwae_k", 1000, f"{M2} reports its bounds with and without the labels, not an importance-sampled log p(x)"),
    ("eval.val_iwae_k", None, f"{M2} chooses by the validation error"),
    *(
        (name, default, f"{M2} trains in one float32 process")
        for name, default in (("trainer.devices", 1), ("trainer.num_nodes", 1), ("trainer.precision", "32-true"))
    ),
]
UNUSED = {"gan": GAN_UNUSED, "m2": M2_UNUSED}


def _unused_refusal(cfg: DictConfig) -> Optional[str]:
    """With a model of ``UNUSED``, the first setting of its table given a value of its own."""
    for name, default, reason in UNUSED.get(cfg.model.name, ()):
        value = cfg[name].name if name in OPTIONS else _shown(OmegaConf.select(cfg, name))
        if value not in (default if isinstance(default, tuple) else (default,)):  # a tuple: the values allowed
            return f"{name}={_override_text(value)}: {reason}; drop it with model={cfg.model.name}"
    return None


def _gan_shape_refusal(cfg: DictConfig) -> Optional[str]:
    """The DCGAN's image sides (28 and 32), known from the data set's settings before any file is read."""
    if not likelihood_free(cfg):
        return None
    from ...modelling.gan import supported_shape_refusal
    from .builders import dataset_reader

    refusal = supported_shape_refusal(dataset_reader(cfg).image_shape)
    if refusal is None:
        return None
    fix = "set dataset.image_size=32" if "image_size" in cfg.dataset else "use a data set of 28x28 or 32x32 images"
    return f"dataset={cfg.dataset.name}: {refusal}; {fix}"


def _rule(when: Callable[[DictConfig], bool], message: str) -> Callable[[DictConfig], Optional[str]]:
    return lambda cfg: message.format(cfg=cfg) if when(cfg) else None


def _task(name: str, when: Callable[[DictConfig], bool]) -> Callable[[DictConfig], bool]:
    """``when`` of the task's settings, for ``task=NAME`` only (another task has none of them)."""
    return lambda cfg: cfg.task.name == name and when(cfg.task)


# The most images a grid figure holds a side (a row, a column). Its tiles are 0.75-0.9 inches at 110 dpi, so 64
# of them make a figure over 4,000 pixels wide (64x64 samples: 4114x4134, peak memory 2.4 GB), more than a 4K
# screen shows: more tiles only shrink each one when viewed, while the canvas grows with their square
# (task.n=100000 samples reached 24 GB and was killed).
MAX_GRID_SIDE = 64
ROW = f"a figure shows at most {MAX_GRID_SIDE} images a row"


# The rules between settings, in the order they are checked: each gives the refusal of a config that
# breaks it, or None. They read the settings alone (a rule that asks an option's class, for that option
# only, loads it then: objective=meanfield, model=gan), before MODEL_RULES.
RULES: List[Callable[[DictConfig], Optional[str]]] = [
    _unused_refusal,  # first: the rules below are between settings that a GAN or M2 refuses
    _rule(
        lambda cfg: cfg.model.name == "m2" and cfg.dataset.num_labels is None,
        "model=m2 learns from a few labelled images and many unlabelled ones: set dataset.num_labels, e.g. "
        "dataset.num_labels=100",
    ),
    _rule(
        lambda cfg: cfg.model.name != "m2" and cfg.dataset.num_labels is not None,
        "dataset.num_labels={cfg.dataset.num_labels}: only model=m2 learns from part of the labels; drop it, or set "
        "model=m2",
    ),
    _gan_shape_refusal,
    _rule(
        lambda cfg: _reweighted(cfg) and cfg.objective.name == "iwae",
        "kl_weight/kl_warmup_epochs reweight the KL term, which objective=iwae does not separate; use objective=trace",
    ),
    _rule(
        lambda cfg: cfg.kl_warmup_epochs > 0 and cfg.objective.name == "jit",
        "kl_warmup_epochs changes the KL weight every step, which objective=jit would recompile for; use "
        "objective=trace",
    ),
    _rule(
        lambda cfg: cfg.objective.name == "jit" and OmegaConf.select(cfg, "likelihood.scale_mode") == "optimal",
        "likelihood.scale_mode=optimal updates its running sigma at every step, which objective=jit's compiled graph "
        "skips; use objective=trace",
    ),
    _rule(
        lambda cfg: cfg.decoder.bayesian and cfg.objective.num_particles > 1,
        "decoder.bayesian=true draws one set of decoder weights per step; set objective.num_particles=1 (now "
        "{cfg.objective.num_particles})",
    ),
    _rule(
        lambda cfg: cfg.decoder.bayesian and cfg.objective.name == "iwae",
        "decoder.bayesian=true with objective=iwae: the weights' log p(W) - log q(W) has no per-image weight to enter; "
        "use objective=trace",
    ),
    _rule(
        lambda cfg: cfg.trainer.strategy == "ddp_spawn" and cfg.trainer.num_nodes > 1,
        "trainer.strategy=ddp_spawn starts processes on this node only; for trainer.num_nodes > 1 use "
        "trainer.strategy=ddp under srun or torchrun (README, Scaling out)",
    ),
    _rule(
        lambda cfg: strategy(cfg.trainer) == "ddp" and not started_outside(),
        "trainer.strategy=ddp joins processes that srun or torchrun started, and none did: run the command under "
        "srun or torchrun --nproc_per_node={cfg.trainer.devices}, or use trainer.strategy=ddp_spawn on one node",
    ),
    _rule(
        lambda cfg: beyond_one_float32_process(cfg.trainer) and cfg.svi_step != "torch",
        "svi_step={cfg.svi_step} steps outside the module that DDP and autocast wrap; use svi_step=torch with "
        "trainer.devices, trainer.num_nodes or trainer.precision",
    ),
    lambda cfg: (
        f"batch_size={cfg.batch_size} is the global batch, split over {world_size(cfg.trainer)} processes "
        "(trainer.devices x trainer.num_nodes): make it a multiple of that"
        if cfg.batch_size % world_size(cfg.trainer)
        else None
    ),
    _rule(
        lambda cfg: cfg.svi_step == "pyro" and cfg.schedule.name != "constant",
        "schedule={cfg.schedule.name} drives one torch optimizer, and svi_step=pyro trains with Pyro's per-parameter "
        "optimizers (pyro.optim); use svi_step=torch or schedule=constant",
    ),
    lambda cfg: (
        f"objective=meanfield needs the KL to the prior in closed form, which {_open_form_kl(cfg)} has not; use "
        "objective=trace"
        if cfg.objective.name == "meanfield" and _open_form_kl(cfg)
        else None
    ),
    _rule(
        lambda cfg: cfg.prior.name == "vampprior" and cfg.guide.name == "iaf",
        "prior=vampprior scores every z under q(z|u_k) at each pseudo-input, which guide=iaf can only do by inverting "
        "its flow (latent_dim passes per pseudo-input); use guide=diagonal or guide=full with it",
    ),
    _rule(
        lambda cfg: cfg.guide.name == "iaf" and OmegaConf.select(cfg, "objective.gradient") == "dreg",
        "objective.gradient=dreg holds guide=iaf's parameters fixed, which scores each z by inverting the flow "
        "(latent_dim network passes per step, measured 20x slower); use objective.gradient=standard with guide=iaf",
    ),
    _rule(
        lambda cfg: cfg.model.name == "hvae" and cfg.prior.name == "vampprior",
        "prior=vampprior is a mixture of q(z|u_k), and model=hvae's top layer has no q(z2|x) of its own to mix (its "
        "guide is q(z1|x) q(z2|z1)); use prior=standard or prior=flow with model=hvae",
    ),
    _rule(
        lambda cfg: cfg.model.name == "hvae" and cfg.guide.name == "iaf",
        "guide=iaf with model=hvae: the importance-sampled log p(x) would score each z1 by inverting the flow "
        "(latent_dim passes per sample); use guide=diagonal or guide=full with model=hvae",
    ),
    _rule(
        lambda cfg: cfg.model.name == "hvae" and cfg.decoder.bayesian,
        "decoder.bayesian=true is built for model=vae and model=cvae; set decoder.bayesian=false with model=hvae",
    ),
    _rule(
        lambda cfg: cfg.model.name == "cvae" and cfg.prior.name == "vampprior",
        "prior=vampprior mixes the guide's q(z|u_k) at pseudo-inputs that have no label, which model=cvae's "
        "encoder needs; use prior=standard with model=cvae",
    ),
    # the size of a task's figure (MAX_GRID_SIDE): its canvas grows with the images it holds
    _rule(
        _task("sample", lambda task: not task.per_class and task.n > MAX_GRID_SIDE**2),
        f"task.n={{cfg.task.n}}: a samples figure shows at most {MAX_GRID_SIDE**2} draws, {MAX_GRID_SIDE} a side; "
        "draw several figures, each with its own seed=...",
    ),
    _rule(
        _task("sample", lambda task: task.per_class and task.n > MAX_GRID_SIDE),
        f"task.n={{cfg.task.n}}: task.per_class=true draws a row of task.n per class, and {ROW}; set task.n <= "
        f"{MAX_GRID_SIDE}",
    ),
    _rule(
        _task("reconstruct", lambda task: task.images is None and task.n > MAX_GRID_SIDE),
        f"task.n={{cfg.task.n}}: the reconstructions figure shows task.n test images in a row, and {ROW}; set "
        f"task.n <= {MAX_GRID_SIDE}",
    ),
    lambda cfg: (
        f"task.images: {len(cfg.task.images)} files, but the reconstructions figure shows them in a row, and {ROW}; "
        f"reconstruct them {MAX_GRID_SIDE} at a time"
        if _task("reconstruct", lambda task: task.images is not None and len(task.images) > MAX_GRID_SIDE)(cfg)
        else None
    ),
    _rule(
        _task("interpolate", lambda task: task.steps > MAX_GRID_SIDE - 2),
        f"task.steps={{cfg.task.steps}}: the interpolation figure shows task.steps images and the two ends in a row, "
        f"and {ROW}; set task.steps <= {MAX_GRID_SIDE - 2}",
    ),
]

# The rules that ask the chosen options' own classes (the likelihood, the data set's reader, the networks),
# which load the modelling wing, the data sets and torch: checked after RANGES and RULES.
MODEL_RULES: List[Callable[[DictConfig], Optional[str]]] = [
    _target_refusal,
    _scale_mode_refusal,
    _dataset_refusal,
    _binarization_refusal,
    _conv_layers_refusal,
    memory_refusal,  # last: the sizes above are known to be buildable; the machine's memory (memory_estimate.py)
]


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError, naming the setting and what it accepts, for the first bad value; then check
    that a logger's package is installed. Reads no data and builds nothing; torch loads with the first
    rule that asks an option's class (``MODEL_RULES``, after ``RANGES`` and ``RULES``)."""
    for group in OPTIONS:  # Hydra refuses an unknown option while composing; a config built in Python, here
        option(group, cfg[group].name)
    for name, declared in chosen_settings(cfg):
        check = declared.metadata["check"]
        value = OmegaConf.select(cfg, name, default=_ABSENT)
        if check is not None and value is not _ABSENT and not check.accepted(value):
            raise ConfigError(f"{name}={_shown(value)}: {check.requirement}")
    for rule in [*RULES, *MODEL_RULES]:
        refusal = rule(cfg)
        if refusal:
            raise ConfigError(refusal)
    require_logger_package(cfg.logger.name)


def _shown(value: Any) -> Any:
    return list(value) if OmegaConf.is_list(value) else value


def _override_text(value: Any) -> str:
    """``value`` as a command line gives it: true, null, [200,200]."""
    if isinstance(value, list):
        return f"[{','.join(_override_text(item) for item in value)}]"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def resolve_device(name: str) -> "torch.device":
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is an error rather than a silent CPU run."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda: no CUDA device is visible to torch; use device=auto or device=cpu")
    return torch.device(str(name))


def apply_threads(threads: Optional[int]) -> "Optional[ThreadsFollowLoad]":
    """Set torch's CPU threads to ``threads``; null follows the load (:class:`ThreadsFollowLoad`): one
    thread per core that other processes leave idle, chosen now and, by a training loop that calls its
    ``update``, as the run goes on (README, Performance, "Threads")."""
    import torch

    from .cores import ThreadsFollowLoad

    if threads is None:
        return ThreadsFollowLoad()
    positive_int("threads", threads)
    torch.set_num_threads(threads)
    return None
