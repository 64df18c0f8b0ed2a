"""The figures of a GAN run (model=gan): its samples, and the learning curve of both networks.

A GAN has no bound to plot, so its curve shows what the adversarial game does instead: the two
losses, and the discriminator's mean belief that training images and samples are real.
"""

from pathlib import Path
from typing import Dict, List, Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ...modelling.gan import GAN
from . import figures


def loss_curve(history: Sequence[Dict[str, float]], path: Path) -> None:
    """Per epoch: the discriminator's and the generator's mean loss (left), and the mean D(x) of training
    images and D(G(z)) of samples (right; both near 1/2 when D can no longer tell them apart)."""
    epochs = [row["epoch"] for row in history]
    style = {"marker": "o", "ms": 3} if len(history) <= 50 else {}
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_belief = fig.subplots(1, 2)
    ax_loss.plot(epochs, [row["discriminator_loss"] for row in history], label="discriminator", **style)
    ax_loss.plot(epochs, [row["generator_loss"] for row in history], label="generator (non-saturating)", **style)
    ax_loss.set_ylabel("mean loss per minibatch (nats)")
    ax_belief.plot(epochs, [row["d_real"] for row in history], label="D(x), training images", **style)
    ax_belief.plot(epochs, [row["d_fake"] for row in history], label="D(G(z)), samples", **style)
    ax_belief.axhline(0.5, color="black", linestyle="--", linewidth=1)
    ax_belief.set_ylim(0, 1)
    ax_belief.set_ylabel("discriminator's mean probability of real")
    for ax in (ax_loss, ax_belief):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figures.save(fig, path)


def write_all(gan: GAN, history: Sequence[Dict[str, float]], out_dir: Path) -> List[Path]:
    """samples.png (G's samples, in eval mode) and loss_curve.png into ``out_dir``; returns their paths."""
    gan.eval()
    paths = {name: out_dir / f"{name}.png" for name in ("samples", "loss_curve")}
    figures.samples(gan, paths["samples"])
    loss_curve(history, paths["loss_curve"])
    return list(paths.values())
