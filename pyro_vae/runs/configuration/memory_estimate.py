"""The memory a training run needs, estimated from its settings before anything is built, and the
line refusing a run that the machine cannot hold (``settings.RULES`` checks it last).

Without it, ``latent_dim=1000000`` built a 771-million-parameter model and ended in the allocator's
traceback for a 40 GB tensor (its 10,000 test images' posterior means) on a 24 GB machine. The estimate
counts what grows with the settings that multiply:

- the parameters (every network, the guide's and the prior's flows, VampPrior's pseudo-inputs, a learned
  per-pixel scale), counted layer by layer as ``build_model`` builds them, each held with its gradient and
  the optimizer's state (Adam: two moments), and the flows' masks;
- a training step's activations: the encoder's per image, the decoder's, the latent draws' and the
  flows' per image and particle (``batch_size`` x ``objective.num_particles``), the pseudo-inputs'
  encodings and a Bayesian decoder's drawn weights per step, twice over (kept for the backward pass,
  and their gradients);
- evaluation's tensors, which replace the step's: ``eval.chunk_size`` (image, sample) pairs decoded at
  once, the log-weights of the images of a chunk over ``eval.iwae_k`` samples, and the posterior means of
  the evaluated images.

Against the peaks measured of steps and evaluations it is 0.7x to 1.3x (docs/performance.md, "Memory"). It
leaves out the data set (each reader bounds its own, e.g. CelebA's ``MAX_BYTES``), torch's own workspace and
the interpreter, so a run it accepts close to the limit may still run out. The default run needs 36 MiB by
it, every run of ``conf/experiment/`` under 0.35 GiB (tests/runs/test_resource_refusals.py).
"""

import copy
import os
from dataclasses import dataclass
from math import prod
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

FLOAT = 4  # bytes of a float32: parameters, their gradients and optimizer state stay float32 in every precision
GIB = 2**30
# float32 numbers the optimizer keeps per parameter
OPTIMIZER_STATE = {"adam": 2, "clipped_adam": 2, "rmsprop": 1, "adagrad": 1}
LATENT_TERMS = 4  # per latent dimension of a draw: z, the guide's base noise, log q's and log p's terms
PIXEL_TERMS = 2  # per pixel of a decoded draw in a training step: its log-probability and a gradient's term
MIXTURE_TERMS = 6  # per component and dimension of VampPrior's log-density: the Normal's terms autograd keeps
TRIANGLE_TERMS = 2  # per entry of guide=full's d x d Cholesky factor: the factor filled from the head, and its solve
# A step's backward pass holds a gradient beside each activation it reads: the measured peaks of the default network
# (batch 8,192), a 100,000-dimensional latent, CIFAR-10's conv nets, VampPrior, IAF, flow and two-layer models are
# 0.8x to 1.3x of twice the activations kept (docs/performance.md, "Memory").
BACKWARD = 2
UNKNOWN_EVAL_IMAGES = 10_000  # test images when dataset.test_size is null: MNIST's 10,000 (CelebA has 19,962)
KERNEL = 4  # networks.KERNEL: every stride-2 convolution is 4x4

# The settings that the estimate grows with, each with the default it is compared to when a run does not fit: the
# refusal names the one whose default would save the most.
DRIVERS: List[Tuple[str, int]] = [
    ("latent_dim", 20),
    ("net.widths", 512),  # a list: each width capped; conv nets' default widths go up to 128
    ("batch_size", 128),
    ("objective.num_particles", 1),
    ("eval.chunk_size", 2048),
    ("eval.iwae_k", 1000),
    ("eval.val_iwae_k", 1000),
    ("prior.num_pseudo_inputs", 500),
    ("guide.steps", 2),
    ("guide.widths", 200),
    ("guide.context_dim", 50),
    ("prior.steps", 2),
    ("prior.widths", 200),
    ("model.top_latent_dim", 50),
    ("model.top_widths", 100),
    ("model.generator_width", 64),
    ("model.discriminator_width", 64),
    ("dataset.image_size", 64),
    ("dataset.test_size", UNKNOWN_EVAL_IMAGES),
    ("dataset.val_size", UNKNOWN_EVAL_IMAGES),
    ("trainer.devices", 1),
]
CONV_WIDTH = 128  # net=conv's widest default layer


class Memory(NamedTuple):
    """Bytes the run may use, and where that figure comes from, as the refusal names it."""

    bytes: int
    source: str


@dataclass(frozen=True)
class Estimate:
    """A run's memory, in bytes, on each device that holds a process of it."""

    parameters: int  # the numbers the optimizer trains
    state: int  # the parameters with their gradients, the optimizer's state and the buffers that grow with them
    step: int  # one training step's activations
    evaluation: int  # one evaluation chunk's tensors and the evaluated images' posterior means
    processes: int  # processes of the run that share the device's memory (CPU processes of one node)

    @property
    def total(self) -> int:
        return self.processes * (self.state + max(self.step, self.evaluation))


class _Net(NamedTuple):
    """A network's parameters, bool mask entries (a flow's masked layers), and the floats per input that a
    training step keeps for the backward pass (each hidden layer before and after its activation, and the
    output) and that inference holds (each layer's output once)."""

    params: int
    masks: int
    kept: int
    outputs: int


def _mlp(in_dim: int, widths: Sequence[int], out_dim: int) -> _Net:
    """``networks.mlp``: linear layers with an activation between them."""
    dims = [in_dim, *widths, out_dim]
    weights = sum(a * b for a, b in zip(dims, dims[1:]))
    return _Net(weights + sum(dims[1:]), 0, 2 * sum(widths) + out_dim, sum(widths) + out_dim)


def _made(features: int, context: int, widths: Sequence[int]) -> _Net:
    """One of Zuko's masked autoregressive affine steps (a shift and a log-scale per feature), with its
    masks (one bool per weight) and the step's output."""
    net = _mlp(features + context, widths, 2 * features)
    dims = [features + context, *widths, 2 * features]
    masks = sum(a * b for a, b in zip(dims, dims[1:]))
    return _Net(net.params, masks, net.kept + features, net.outputs + features)


def _conv_encoder(image_shape: Sequence[int], channels: Sequence[int], head: int, context: int) -> _Net:
    from ...modelling.networks import conv_sizes

    sizes = conv_sizes(image_shape, len(channels))
    dims = [image_shape[0], *channels]
    params = sum(a * b * KERNEL**2 + b for a, b in zip(dims, dims[1:]))
    maps = sum(c * prod(size) for c, size in zip(channels, sizes[1:]))
    flat = channels[-1] * prod(sizes[-1]) + context
    return _Net(params + flat * head + head, 0, 2 * maps + head, maps + head)


def _conv_decoder(in_dim: int, channels: Sequence[int], image_shape: Sequence[int], out_channels: int) -> _Net:
    from ...modelling.networks import conv_sizes

    sizes = conv_sizes(image_shape, len(channels))[::-1]
    dims = [*channels, out_channels]
    first = channels[0] * prod(sizes[0])
    params = in_dim * first + first + sum(a * b * KERNEL**2 + b for a, b in zip(dims, dims[1:]))
    maps = first + sum(c * prod(size) for c, size in zip(dims[1:], sizes[1:]))
    return _Net(params, 0, 2 * maps - dims[-1] * prod(sizes[-1]), maps)


def _setting(cfg: DictConfig, name: str, default: Any = None) -> Any:
    return OmegaConf.select(cfg, name, default=default)


class _Floats(NamedTuple):
    """Floats that a training step keeps for its backward pass (``kept``) and that evaluation holds."""

    kept: int
    held: int

    def __add__(self, other: "_Floats") -> "_Floats":  # type: ignore[override]
        return _Floats(self.kept + other.kept, self.held + other.held)


def _vae(cfg: DictConfig, image_shape: Tuple[int, int, int], num_classes: int, batch: int) -> Tuple[int, int, int, int]:
    """(parameters, other bytes kept, a step's bytes, evaluation's bytes) of ``model=vae|cvae|hvae``."""
    from .schema import option

    pixels = prod(image_shape)
    latent = cfg.latent_dim
    scale_mode = _setting(cfg, "likelihood.scale_mode")
    outputs = 2 if scale_mode == "predicted" else 1  # the likelihood's parameters per pixel
    context = num_classes if option("model", cfg.model.name).component().conditional else 0
    guide = cfg.guide.name
    head = {"full": latent + latent * (latent + 1) // 2, "iaf": 2 * latent + _setting(cfg, "guide.context_dim", 0)}
    head = head.get(guide, 2 * latent)
    widths = list(cfg.net.widths)
    if cfg.net.name == "conv":
        encoder = _conv_encoder(image_shape, widths, head, context)
        decoder = _conv_decoder(latent + context, widths[::-1], image_shape, outputs * image_shape[0])
    else:
        encoder = _mlp(pixels + context, widths, head)
        decoder = _mlp(latent + context, widths[::-1], outputs * pixels)
    # per (image, particle): the decoder, the pixels' log-probabilities, the latent draw's terms
    per_draw = _Floats(decoder.kept + PIXEL_TERMS * pixels, decoder.outputs + pixels) + _latent(latent)
    flows: List[_Net] = []
    if guide == "iaf":
        flows += [_made(latent, cfg.guide.context_dim, cfg.guide.widths)] * cfg.guide.steps
    prior_dim = latent
    params = encoder.params + decoder.params * (2 if cfg.decoder.bayesian else 1)  # q(W): a mean and a scale
    params += {"per_pixel": pixels, "learned": 1}.get(scale_mode, 0)
    if cfg.model.name == "hvae":
        top, top_widths = cfg.model.top_latent_dim, list(cfg.model.top_widths)
        layers = [_mlp(latent, top_widths, 2 * top), _mlp(top, top_widths[::-1], 2 * latent)]
        params += sum(layer.params for layer in layers)
        per_draw += _Floats(sum(layer.kept for layer in layers), sum(layer.outputs for layer in layers))
        per_draw += _latent(top)
        prior_dim = top
    per_step = 0  # floats a step holds whatever its batch
    if cfg.decoder.bayesian:
        per_step += 2 * decoder.params  # the weights drawn from q(W), and their noise
    if cfg.prior.name == "vampprior":
        pseudo_inputs = cfg.prior.num_pseudo_inputs
        params += pseudo_inputs * pixels
        per_step += pseudo_inputs * (pixels + encoder.kept)  # encoded every step
        components = pseudo_inputs * prior_dim  # each draw scored under every component
        per_draw += _Floats(MIXTURE_TERMS * components, 2 * components)
    elif cfg.prior.name == "flow":
        flows += [_made(prior_dim, 0, cfg.prior.widths)] * cfg.prior.steps
    params += sum(flow.params for flow in flows)
    per_draw += _Floats(sum(flow.kept for flow in flows), sum(flow.outputs for flow in flows))
    per_image = _Floats(pixels + encoder.kept, pixels + encoder.outputs)
    if guide == "full":
        per_image += _Floats(TRIANGLE_TERMS * latent**2, TRIANGLE_TERMS * latent**2)
    particles = cfg.objective.num_particles
    step = FLOAT * BACKWARD * (batch * per_image.kept + batch * particles * per_draw.kept + per_step)
    means = latent + (cfg.model.top_latent_dim if cfg.model.name == "hvae" else 0)
    evaluation = FLOAT * (_evaluation_floats(cfg, per_image.held, per_draw.held, means) + per_step)
    return params, sum(flow.masks for flow in flows), step, evaluation


def _latent(dim: int) -> _Floats:
    return _Floats(LATENT_TERMS * dim, LATENT_TERMS * dim)


def _evaluation_floats(cfg: DictConfig, per_image: int, per_draw: int, means_per_image: int) -> int:
    """``estimators.evaluate``: at most ``eval.chunk_size`` (image, sample) pairs decoded at once, the
    log-weights of a chunk's images over all K samples (three lists of them), and a mean per evaluated image."""
    chunk = cfg.eval.chunk_size
    samples = max(cfg.eval.iwae_k, cfg.eval.val_iwae_k or 0)  # a null val_iwae_k is min(eval.iwae_k, 100)
    evaluated = max(_setting(cfg, "dataset.test_size") or UNKNOWN_EVAL_IMAGES, cfg.dataset.val_size)
    images_per_chunk = min(evaluated, max(1, chunk // samples))
    pairs = images_per_chunk * min(samples, chunk)
    return pairs * per_draw + images_per_chunk * (per_image + 3 * samples) + evaluated * means_per_image


def _gan(cfg: DictConfig, image_shape: Tuple[int, int, int], batch: int) -> Tuple[int, int, int, int]:
    """``model=gan``: DCGAN's generator and discriminator (``modelling.gan``), trained with Adam each."""
    from ...modelling.gan import BASE_SIDES

    channels, side = image_shape[0], image_shape[1]
    base = BASE_SIDES.get(side)
    if base is None or image_shape[2] != side:
        return 0, 0, 0, 0  # refused by the rules before (supported_shape_refusal)
    steps = (side // base).bit_length() - 1
    g_widths = [cfg.model.generator_width * 2**k for k in reversed(range(steps))]
    d_widths = [cfg.model.discriminator_width * 2**k for k in range(steps)]
    params = cfg.latent_dim * g_widths[0] * base**2 + 2 * g_widths[0]
    params += sum(a * b * KERNEL**2 + 2 * b for a, b in zip(g_widths, g_widths[1:]))
    params += g_widths[-1] * channels * KERNEL**2 + channels
    params += channels * d_widths[0] * KERNEL**2 + d_widths[0]
    params += sum(a * b * KERNEL**2 + 2 * b for a, b in zip(d_widths, d_widths[1:]))
    params += d_widths[-1] * base**2 + 1
    generated = sum(2 * width * (base * 2**i) ** 2 for i, width in enumerate(g_widths)) + 2 * channels * side**2
    judged = sum(2 * width * (side // 2 ** (i + 1)) ** 2 for i, width in enumerate(d_widths)) + 1
    running_statistics = 2 * (sum(g_widths) + sum(d_widths[1:]))
    step = FLOAT * BACKWARD * batch * (generated + 2 * judged)  # D sees the real and the generated images
    return params, FLOAT * running_statistics, step, 0


class Images(NamedTuple):
    """What the estimate needs of the data set: its image shape and number of classes."""

    shape: Tuple[int, int, int]
    classes: int


def images_of(cfg: DictConfig) -> Images:
    """The data set's ``Images``, from its reader (known before any file is read)."""
    from .builders import dataset_reader

    reader = dataset_reader(cfg)
    return Images(tuple(reader.image_shape), len(reader.class_names))


def estimate(cfg: DictConfig, images: Optional[Images] = None, device: str = "cpu") -> Estimate:
    """The memory of training ``cfg`` (checked in range by ``settings.RANGES`` and its rules before) on
    ``images`` (by default, its data set's) on ``device``: the CPU's memory holds every process of a node
    (``trainer.devices``), a GPU's one."""
    from .builders import likelihood_free

    images = images or images_of(cfg)
    devices, nodes = cfg.trainer.devices, cfg.trainer.num_nodes
    batch = -(-cfg.batch_size // (devices * nodes))  # each process's share of the global batch
    if likelihood_free(cfg):
        params, kept, step, evaluation = _gan(cfg, images.shape, batch)
        slots = OPTIMIZER_STATE["adam"]
    else:
        params, kept, step, evaluation = _vae(cfg, images.shape, images.classes, batch)
        slots = OPTIMIZER_STATE.get(cfg.optimizer.name, 2)
    copies = 2 + slots  # the parameter, its gradient and the optimizer's state
    if devices * nodes > 1:
        copies += 1  # DDP's gradient buckets
    state = FLOAT * copies * params + kept
    if cfg.trainer.precision == "bf16-mixed":
        state += 2 * params  # autocast's bfloat16 copies of the weights
        step //= 2  # the activations of the matrix products in bfloat16
    return Estimate(params, state, step, evaluation, processes=devices if device == "cpu" else 1)


def available_memory(device: str, one_process: bool = True) -> Optional[Memory]:
    """The memory a run on ``device`` ("cpu" or "cuda") may use, or None where it cannot be read. The CPU:
    ``MemAvailable`` of /proc/meminfo (``MemTotal`` where the kernel gives none), lowered to what a
    cgroup's memory limit leaves (a SLURM job's, a container's). CUDA: ``torch.cuda.mem_get_info``'s free
    bytes on the device of this process; for a run of several processes, the device's total (reading the
    free bytes would open a CUDA context on the device in each process). Tests stand in for this function."""
    if device == "cuda":
        import torch

        index = int(os.environ.get("LOCAL_RANK", "0"))
        name = torch.cuda.get_device_name(index)
        if one_process:
            return Memory(torch.cuda.mem_get_info(index)[0], f"cuda:{index} ({name}) has free")
        return Memory(torch.cuda.get_device_properties(index).total_memory, f"cuda:{index} ({name}) has")
    host = _meminfo()
    limit = _cgroup_room()
    if limit is not None and (host is None or limit.bytes < host.bytes):
        return limit
    return host


MEMINFO = "/proc/meminfo"
CGROUP = "/sys/fs/cgroup"
SELF_CGROUP = "/proc/self/cgroup"  # this process's groups: "0::PATH" (v2), "N:memory:PATH" (v1)


def _meminfo() -> Optional[Memory]:
    try:
        with open(MEMINFO, encoding="ascii", errors="replace") as file:
            fields = dict(line.split(":", 1) for line in file if ":" in line)
    except OSError:
        return None
    for key, source in (("MemAvailable", "available"), ("MemTotal", "in all")):
        value = fields.get(key, "").split()
        if value and value[0].isdigit():
            return Memory(int(value[0]) * 1024, f"this machine has {source} (/proc/meminfo {key})")
    return None


# (the controllers field of /proc/self/cgroup, the folder under CGROUP, the limit's file, the usage's file)
CGROUP_FILES = [
    ("", "", "memory.max", "memory.current"),
    ("memory", "memory", "memory.limit_in_bytes", "memory.usage_in_bytes"),
]
NO_LIMIT = 2**60  # cgroup v1 writes "no limit" as the largest page-aligned 63-bit number, v2 as "max"


def _cgroup_room() -> Optional[Memory]:
    """What this process's cgroup memory limit (v2 memory.max, v1 memory.limit_in_bytes) leaves, or None
    without one. A container sees its own group as the root of the hierarchy, so the root is read too."""
    try:
        with open(SELF_CGROUP, encoding="ascii") as file:
            groups = [line.rstrip("\n").split(":", 2) for line in file]
    except OSError:
        return None
    rooms = []
    for _, controllers, path in (group for group in groups if len(group) == 3):
        for wanted, mount, limit_file, usage_file in CGROUP_FILES:
            if wanted != controllers and wanted not in controllers.split(","):
                continue
            for folder in dict.fromkeys([os.path.join(CGROUP, mount, path.lstrip("/")), os.path.join(CGROUP, mount)]):
                try:
                    with open(os.path.join(folder, limit_file), encoding="ascii") as file:
                        limit = file.read().strip()
                    with open(os.path.join(folder, usage_file), encoding="ascii") as file:
                        used = int(file.read().strip())
                except (OSError, ValueError):
                    continue
                if limit.isdigit() and int(limit) < NO_LIMIT:
                    rooms.append(Memory(max(0, int(limit) - used), f"this cgroup's memory limit leaves ({limit_file})"))
                break
    return min(rooms, default=None)


def _device(cfg: DictConfig) -> Optional[str]:
    """The device the run trains on, as ``settings.resolve_device`` picks it; None for device=cuda without a
    GPU, which resolve_device refuses."""
    if cfg.device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return None if cfg.device == "cuda" else "cpu"


def memory_refusal(cfg: DictConfig) -> Optional[str]:
    """The line refusing a training run whose estimated memory (:func:`estimate`) exceeds what the device
    has (:func:`available_memory`); None where it fits, the memory cannot be read, or the task is not
    training (a task works on a finished run, whose settings were checked when it trained)."""
    if cfg.task.name != "train":
        return None
    device = _device(cfg)
    if device is None:
        return None
    images = images_of(cfg)
    needed = estimate(cfg, images, device)
    memory = available_memory(device, one_process=cfg.trainer.devices * cfg.trainer.num_nodes == 1)
    if memory is None or needed.total <= memory.bytes:
        return None
    driver = _driver(cfg, images, device, needed.total)
    head = f"{driver}={_shown(_setting(cfg, driver))}" if driver else "these settings"
    processes = f" for its {needed.processes} processes" if needed.processes > 1 else ""
    if driver is None:
        fix = "lower batch_size, objective.num_particles or eval.chunk_size, or the networks (latent_dim, net.widths)"
    else:
        fitting = _largest_fitting(cfg, images, device, driver, memory.bytes)
        fix = f"lower {driver}" + (f" (up to {fitting} fits the estimate)" if fitting is not None else "")
    parts = [
        f"{needed.parameters:,} parameters with their gradients and optimizer state: {_gib(needed.state)}",
        f"a step's activations: {_gib(needed.step)}",
        *([f"evaluation: {_gib(needed.evaluation)}"] if needed.evaluation else []),
    ]
    return (
        f"{head}: training needs about {_gib(needed.total)}{processes} ({'; '.join(parts)}), more than the "
        f"{_gib(memory.bytes)} {memory.source}; {fix}"
    )


def _driver(cfg: DictConfig, images: Images, device: str, total: int) -> Optional[str]:
    """The setting of ``DRIVERS`` above its default whose default would save the most memory, or None."""
    savings = []
    for name, default in DRIVERS:
        value = _setting(cfg, name)
        if value is None or isinstance(value, bool):
            continue
        if name == "net.widths" and cfg.net.name == "conv":
            default = CONV_WIDTH
        if OmegaConf.is_list(value):
            lowered = [min(width, default) for width in value]
            if lowered == list(value):
                continue
        elif value > default:
            lowered = default
        else:
            continue
        savings.append((total - _total_with(cfg, images, device, name, lowered), name))
    best = max(savings, default=None)
    return best[1] if best and best[0] > 0 else None


def _total_with(cfg: DictConfig, images: Images, device: str, name: str, value: Any) -> int:
    """The estimate of ``cfg`` with the setting ``name`` at ``value``."""
    trial = copy.deepcopy(cfg)
    with read_write(trial), open_dict(trial):
        OmegaConf.update(trial, name, value, merge=False)
    if name == "dataset.image_size":  # the side of CelebA's and a folder's images
        images = images._replace(shape=(images.shape[0], value, value))
    return estimate(trial, images, device).total


def _largest_fitting(cfg: DictConfig, images: Images, device: str, name: str, room: int) -> Optional[int]:
    """The largest value of the integer setting ``name`` whose estimate fits in ``room`` bytes, others kept;
    None for a list (net.widths) or where even its default does not fit."""
    value = _setting(cfg, name)
    low = dict(DRIVERS)[name]
    if OmegaConf.is_list(value) or _total_with(cfg, images, device, name, low) > room:
        return None
    high = value  # the estimate grows with every driver: low fits, high does not
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if _total_with(cfg, images, device, name, middle) <= room else (low, middle)
    return low


def _gib(size: int) -> str:
    return f"{size / GIB:,.1f} GiB" if size >= GIB else f"{size / 2**20:,.0f} MiB"


def _shown(value: Any) -> str:
    if OmegaConf.is_list(value):
        return f"[{','.join(str(item) for item in value)}]"
    return str(value)
