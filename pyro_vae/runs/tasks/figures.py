"""The figures of a run: the source paper's Figures 7-10 plus training and latent-space views.

Built with matplotlib's object API (no pyplot state, no display needed) and written atomically.
"""

import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torchvision.utils import make_grid

from ...atomic import atomic_path
from ...modelling.gan import GAN
from ...modelling.priors import StandardNormal
from ...modelling.vae import VAE

MANIFOLD_STEPS = 20
# The most images a grid figure holds a side is settings.MAX_GRID_SIDE, which refuses a task that asks for more.
# Prior draws decoded at once: what decoding takes stays bounded whatever their number.
DRAW_CHUNK = 1024


def save(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def show(ax, images: torch.Tensor, nrow: int, title: str = "") -> None:
    """Tile (N, C, H, W) images in [0, 1] into one panel of ``nrow`` per row."""
    grid = make_grid(images.detach().float().clamp(0, 1).cpu(), nrow=nrow, padding=1, pad_value=1.0)
    if images.shape[1] == 1:
        ax.imshow(grid[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(grid.permute(1, 2, 0).numpy())
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def reconstruct(vae: VAE, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Decoded posterior means of ``x``: the bottom row of Figure 9 (and of TensorBoard's view)."""
    return vae.picture(vae.encode(x, y).mean, y)


def prior_draws(vae: VAE, n: int, sampled: bool = False) -> torch.Tensor:
    """``n`` draws z ~ p(z) decoded, ``DRAW_CHUNK`` at a time (a conditional VAE cycles through the classes):
    Figure 10. Each is the mean of p(x|z), or with ``sampled`` a draw x ~ p(x|z)."""
    chunks = (_decoded_draws(vae, start, min(DRAW_CHUNK, n - start), sampled) for start in range(0, n, DRAW_CHUNK))
    return torch.cat(list(chunks))


def _decoded_draws(vae: VAE, start: int, count: int, sampled: bool) -> torch.Tensor:
    """Draws ``start`` to ``start + count`` of ``prior_draws``, decoded (the labels continue the cycle)."""
    z = vae.prior(count).sample()
    y = torch.arange(start, start + count, device=z.device) % vae.num_classes if vae.conditional else None
    return vae.picture(z, y, sampled)


@torch.no_grad()
def reconstructions_of(vae: VAE, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """:func:`reconstruct` of any number of images, ``DRAW_CHUNK`` at a time."""
    chunks = range(0, len(images), DRAW_CHUNK)
    return torch.cat([reconstruct(vae, images[i : i + DRAW_CHUNK], labels[i : i + DRAW_CHUNK]) for i in chunks])


@torch.no_grad()
def encoding(vae: VAE, image: torch.Tensor, label: torch.Tensor, path: Path) -> None:
    """Figure 7: one image and its encoding, the mean and spread of q(z|x) per latent dimension."""
    guide = vae.encode(image[None], label[None])
    loc, scale = guide.mean[0].cpu().numpy(), guide.stddev[0].cpu().numpy()  # marginal sd for any covariance
    fig = Figure(figsize=(9, 3))
    ax_image, ax_code = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 3]})
    show(ax_image, image[None], 1, "input x")
    ax_code.bar(range(len(loc)), loc, yerr=2 * scale, capsize=2, color="tab:blue", ecolor="tab:gray")
    ax_code.axhline(0, color="black", lw=0.5)
    ax_code.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_code.set_xlabel("latent dimension")
    ax_code.set_ylabel("mean of q(z|x), bars +-2 sd")
    ax_code.set_title("encoding of x: the mean and marginal spread of q(z|x)", fontsize=9)
    save(fig, path)


@torch.no_grad()
def decoding(vae: VAE, image: torch.Tensor, label: torch.Tensor, path: Path, draws: int = 7) -> None:
    """Figure 8: the image, its decoding at the posterior mean, and decodings of draws from q(z|x)."""
    y = label[None]
    guide = vae.encode(image[None], y)
    at_mean = vae.picture(guide.mean, y)
    sampled = vae.picture(guide.sample((draws,))[:, 0], y.expand(draws))
    fig = Figure(figsize=(9, 2))
    ax_in, ax_mean, ax_draws = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, draws]})
    show(ax_in, image[None], 1, "input x")
    show(ax_mean, at_mean, 1, "decoded mu(x)")
    show(ax_draws, sampled, draws, f"decoded z ~ q(z|x), {draws} draws")
    save(fig, path)


@torch.no_grad()
def reconstructions(
    vae: VAE, splits: Dict[str, Tuple[torch.Tensor, torch.Tensor]], path: Path, count: int = 10
) -> None:
    """Figure 9: inputs above their reconstructions (decoded posterior means), per split of (images, labels)."""
    fig = Figure(figsize=(count * 0.9, 2.2 * len(splits)))
    axes = fig.subplots(len(splits), 1, squeeze=False)[:, 0]
    for ax, (name, (images, labels)) in zip(axes, splits.items()):
        x, y = images[:count], labels[:count]
        show(ax, torch.cat([x, reconstruct(vae, x, y)]), count, f"{name}: inputs (top) and reconstructions (bottom)")
    save(fig, path)


@torch.no_grad()
def model_samples(model: Union[VAE, GAN], n: int) -> torch.Tensor:
    """``n`` samples (n, C, H, W) in [0, 1] of a run's model: a VAE's decoded prior draws (:func:`prior_draws`)
    or a GAN's G(z), z ~ N(0, I) (``GAN.sample``)."""
    return model.sample(n) if isinstance(model, GAN) else prior_draws(model, n)


def prior_title(vae: Union[VAE, GAN]) -> str:
    """The samples figure's title, naming the prior: the paper's N(0, I) or the learned one's class."""
    if isinstance(vae, GAN):
        return "generator G(z) of draws z ~ N(0, I)"
    prior = vae.latent_prior
    if isinstance(prior, StandardNormal):
        return "decoded draws from the prior p(z) = N(0, I)"
    return f"decoded draws from the learned prior p(z), {type(prior).__name__}"


@torch.no_grad()
def samples(vae: Union[VAE, GAN], path: Path, n: int = 64) -> None:
    """Figure 10: decodings of ``n`` draws z ~ p(z) from the prior (N(0, I), or a learned one) in a near-square grid
    (a conditional VAE cycles through the classes); for a GAN, ``n`` of its samples."""
    per_row = math.ceil(math.sqrt(n))
    fig = Figure(figsize=(per_row * 0.75, math.ceil(n / per_row) * 0.75 + 0.4))
    show(fig.subplots(), model_samples(vae, n), per_row, prior_title(vae))
    save(fig, path)


def panels(sets: Sequence[Tuple[str, torch.Tensor]], path: Path) -> None:
    """Sets of images side by side, each a near-square grid under its title (the same count from each)."""
    per_row = max(math.ceil(math.sqrt(len(images))) for _, images in sets)
    side = per_row * 0.3 + 0.4
    fig = Figure(figsize=(side * len(sets), side + 0.3), layout="constrained")
    for ax, (title, images) in zip(fig.subplots(1, len(sets), squeeze=False)[0], sets):
        show(ax, images, per_row, title)
    save(fig, path)


@torch.no_grad()
def class_samples(vae: VAE, path: Path, class_names: List[str], per_class: int = 5) -> None:
    """A conditional VAE's digits on demand: ``per_class`` prior draws decoded with each label (one row per class)."""
    classes = len(class_names)
    z = vae.prior(classes * per_class).sample()
    y = torch.arange(classes, device=z.device).repeat_interleave(per_class)
    decoded = vae.picture(z, y)
    fig = Figure(figsize=(per_class * 0.9 + 1, classes * 0.9))
    ax = fig.subplots()
    show(ax, decoded, per_class, f"{per_class} draws of z ~ p(z) decoded with each label")
    ax.axis("on")
    ax.set_xticks([])
    step = decoded.shape[-2] + 1  # image height plus the grid's padding
    ax.set_yticks([step * (i + 0.5) for i in range(classes)], class_names, fontsize=8)
    save(fig, path)


@torch.no_grad()
def interpolation(vae: VAE, ends: torch.Tensor, labels: torch.Tensor, steps: int, title: str, path: Path) -> None:
    """Both images of ``ends`` with ``steps`` decodings of evenly spaced points from one posterior mean to
    the other between them; a conditional VAE decodes all of them with the first image's label."""
    z = vae.encode(ends, labels).mean
    line = torch.lerp(z[0], z[1], torch.linspace(0, 1, steps, device=z.device)[:, None])
    decoded = vae.picture(line, labels[:1].expand(steps))  # an unconditional VAE ignores the label
    fig = Figure(figsize=((steps + 2) * 0.9, 1.8))
    show(fig.subplots(), torch.cat([ends[:1], decoded, ends[1:]]), steps + 2, title)
    save(fig, path)


@torch.no_grad()
def uncertainty(
    vae: VAE, images: torch.Tensor, labels: torch.Tensor, path: Path, count: int = 8, draws: int = 20
) -> None:
    """A Bayesian decoder's uncertainty: for test images, the reconstruction averaged over ``draws``
    weight draws W ~ q(W), and its per-pixel standard deviation across them."""
    x, y = images[:count], labels[:count]
    z = vae.encode(x, y).mean
    decoded = torch.stack([vae.picture(z, y) for _ in range(draws)])
    spread = decoded.std(0).mean(1, keepdim=True)  # per pixel, averaged over colour channels
    fig = Figure(figsize=(count * 0.9, 3.3))
    ax_in, ax_mean, ax_std = fig.subplots(3, 1)
    show(ax_in, x, count, "test inputs")
    show(ax_mean, decoded.mean(0), count, f"reconstruction, mean over {draws} weight draws W ~ q(W)")
    show(
        ax_std,
        spread / spread.max().clamp_min(1e-12),
        count,
        f"per-pixel standard deviation across weight draws (white = {spread.max().item():.3f})",
    )
    save(fig, path)


class Mark(NamedTuple):
    """A figure set beside a learning curve: with an ``epoch``, a point (a checkpoint's test bound);
    without one, a dashed line across (a published figure)."""

    label: str
    value: float
    epoch: Optional[int] = None


def test_bound_mark(metrics: Mapping[str, Any]) -> Mark:
    """The test log-likelihood bound of ``metrics`` (of ``metrics.json``), at ``best_epoch``, the
    epoch of the checkpoint it scored."""
    epoch = metrics["best_epoch"]
    label = f"test {metrics['likelihood_of']} bound, K = {metrics['iwae_k']} (epoch {epoch})"
    return Mark(label, metrics["test_log_likelihood"], epoch)


def elbo_curve(
    history: Sequence[Dict[str, float]], path: Path, train_bound: str = "ELBO", marks: Sequence[Mark] = ()
) -> None:
    """Train and validation figures per epoch, each named by its bound (``train_bound``: the
    training objective's), and ``marks`` beside them; long runs on a log epoch axis, the first
    epochs' low values off the scale."""
    epochs = [row["epoch"] for row in history]
    train, val = [row["train_elbo"] for row in history], [row["val_elbo"] for row in history]
    long_run = len(history) > 50
    style = {} if long_run else {"marker": "o", "ms": 3}
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot(epochs, train, label=f"train {train_bound} (minibatch estimate)", **style)
    ax.plot(epochs, val, label="validation ELBO", **style)
    for mark in marks:
        if mark.epoch is None:
            ax.axhline(mark.value, color="black", linestyle="--", linewidth=1, label=mark.label)
        else:
            ax.plot([mark.epoch], [mark.value], "k*", ms=10, label=mark.label)
    if long_run:
        ax.set_xscale("log")
        settled = train[len(train) // 20 :] + val[len(val) // 20 :] + [mark.value for mark in marks]
        low, high = min(settled), max(settled)
        ax.set_ylim(low - 0.1 * (high - low), high + 0.1 * (high - low))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
    ax.set_xlabel("epoch")
    ax.set_ylabel("bound on log p(x) (nats per image)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, path)


@torch.no_grad()
def latent_space(vae: VAE, images: torch.Tensor, labels: torch.Tensor, class_names: List[str], path: Path) -> None:
    """Posterior means of test images in 2-D (the first two principal components past 2 dimensions)."""
    means = torch.cat([vae.encode(x, y).mean for x, y in zip(images.split(1024), labels.split(1024))]).cpu()
    if means.shape[1] > 2:
        centred = means - means.mean(0)
        _, _, components = torch.pca_lowrank(centred, q=2, center=False)
        points, axis = centred @ components, "principal component"
    else:
        points, axis = means, "z"
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    points = points.numpy()
    labels = labels.cpu()
    # Colour limits fixed by the classes of the data set, not those present (a small test set may lack
    # some); a legend of the classes present while a qualitative palette has a colour for each, else a
    # colour bar of class indices (Omniglot's 50 alphabets).
    classes = len(class_names)
    cmap = "tab10" if classes <= 10 else "tab20" if classes <= 20 else "viridis"
    colours = dict(c=labels.numpy(), cmap=cmap, vmin=0, vmax=max(classes - 1, 1))
    scatter = ax.scatter(points[:, 0], points[:, -1], s=3, alpha=0.7, **colours)
    if classes <= 20:
        handles, _ = scatter.legend_elements()
        ax.legend(handles, [class_names[i] for i in labels.unique().tolist()], fontsize=7, markerscale=0.8, loc="best")
    else:
        fig.colorbar(scatter, ax=ax, label="class index")
    ax.set_xlabel(f"{axis} 1")
    ax.set_ylabel(f"{axis} 2")
    ax.set_title("test images: posterior means E[z|x]", fontsize=9)
    save(fig, path)


@torch.no_grad()
def manifold(vae: VAE, path: Path, steps: int = MANIFOLD_STEPS) -> None:
    """For a 2-D latent space: decodings over a grid of prior quantiles (Kingma & Welling, Figure 4)."""
    quantiles = torch.linspace(0.5 / steps, 1 - 0.5 / steps, steps, device=next(vae.encoder.parameters()).device)
    values = torch.distributions.Normal(0.0, 1.0).icdf(quantiles)
    z2, z1 = torch.meshgrid(values.flip(0), values, indexing="ij")
    z = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=-1)
    fig = Figure(figsize=(7, 7))
    show(fig.subplots(), vae.picture(z), steps, "decoded z over a grid of N(0, 1) quantiles")
    save(fig, path)


def write_all(
    vae: VAE,
    train: Tuple[torch.Tensor, torch.Tensor],
    test: Tuple[torch.Tensor, torch.Tensor],
    class_names: List[str],
    history: Sequence[Dict[str, float]],
    out_dir: Path,
    train_bound: str = "ELBO",
    curve_marks: Sequence[Mark] = (),
) -> List[Path]:
    """Every figure of the output contract into ``out_dir`` from (images, labels) of each split
    (``train_bound`` names the training objective in the learning curve, ``curve_marks`` are set
    beside it); returns their paths."""
    vae.eval()
    (test_images, test_labels) = test
    paths = {
        name: out_dir / f"{name}.png"
        for name in ("encoding", "decoding", "reconstructions", "samples", "elbo_curve", "latent_space")
    }
    encoding(vae, test_images[0], test_labels[0], paths["encoding"])
    decoding(vae, test_images[0], test_labels[0], paths["decoding"])
    reconstructions(vae, {"train": train, "test": test}, paths["reconstructions"])
    samples(vae, paths["samples"])
    elbo_curve(history, paths["elbo_curve"], train_bound, curve_marks)
    latent_space(vae, test_images, test_labels, class_names, paths["latent_space"])
    if vae.latent_dim == 2 and not vae.conditional and len(vae.layer_dims) == 1:  # a plane of z to decode
        paths["manifold"] = out_dir / "manifold.png"
        manifold(vae, paths["manifold"])
    if vae.conditional:
        paths["class_samples"] = out_dir / "class_samples.png"
        class_samples(vae, paths["class_samples"], class_names)
    if vae.bayesian:
        paths["uncertainty"] = out_dir / "uncertainty.png"
        uncertainty(vae, test_images, test_labels, paths["uncertainty"])
    return list(paths.values())
