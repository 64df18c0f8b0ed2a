"""The figures of a model=m2 run: Kingma et al.'s analogies (their Figure 1), the test confusion matrix of
q(y|x), and the validation error and bounds per epoch."""

from pathlib import Path
from typing import Dict, List, Sequence

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from ...modelling.semi_supervised import SemiSupervisedVAE
from .figures import class_samples, save, show

ANALOGY_ROWS = 8


@torch.no_grad()
def analogies(m2: SemiSupervisedVAE, images: torch.Tensor, labels: torch.Tensor, path: Path) -> None:
    """Each row: a test image, then its style z (the mean of q(z|x, y) with its own label) decoded with every
    class, the label varied while z is held: the paper's Figure 1."""
    x, y = images[:ANALOGY_ROWS], labels[:ANALOGY_ROWS]
    decoded = m2.analogies(m2.encode(x, y).mean)  # (rows, classes, C, H, W)
    tiles = torch.cat([x.unsqueeze(1), decoded], dim=1).flatten(0, 1)
    classes = m2.num_classes
    fig = Figure(figsize=((classes + 1) * 0.75, len(x) * 0.75 + 0.5))
    show(fig.subplots(), tiles, classes + 1, "test image | its style z decoded with each class")
    save(fig, path)


def confusion_matrix(predicted: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str], path: Path) -> None:
    """How often each true class (rows) is classified as each class (columns) by q(y|x), counts in the cells."""
    classes = len(class_names)
    counts = torch.bincount(labels.cpu() * classes + predicted.cpu(), minlength=classes * classes).view(classes, -1)
    error = 1 - counts.diagonal().sum().item() / counts.sum().item()
    fig = Figure(figsize=(0.6 * classes + 2, 0.6 * classes + 1.5))
    ax = fig.subplots()
    ax.imshow(counts.numpy(), cmap="Blues")
    for row in range(classes):
        for column in range(classes):
            count = counts[row, column].item()
            if count:
                ax.text(column, row, str(count), ha="center", va="center", fontsize=7)
    ax.set_xticks(range(classes), class_names, rotation=90, fontsize=8)
    ax.set_yticks(range(classes), class_names, fontsize=8)
    ax.set_xlabel("predicted: argmax q(y|x)")
    ax.set_ylabel("true class")
    ax.set_title(f"test images, error {100 * error:.2f}%", fontsize=9)
    save(fig, path)


def error_curve(history: Sequence[Dict[str, float]], path: Path) -> None:
    """The validation error of q(y|x) and the validation bounds per epoch."""
    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 4))
    error_ax, bound_ax = fig.subplots(1, 2)
    error_ax.plot(epochs, [row["val_error"] for row in history])
    error_ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    error_ax.set_ylabel("validation error of argmax q(y|x)")
    bound_ax.plot(epochs, [row["val_elbo_labelled"] for row in history], label="with the labels")
    bound_ax.plot(epochs, [row["val_elbo_unlabelled"] for row in history], label="labels summed out")
    bound_ax.set_ylabel("validation bound (nats per image)")
    bound_ax.legend(fontsize=8)
    for ax in (error_ax, bound_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    save(fig, path)


def write_all(
    m2: SemiSupervisedVAE,
    test: torch.Tensor,
    test_labels: torch.Tensor,
    predicted: torch.Tensor,
    class_names: List[str],
    history: Sequence[Dict[str, float]],
    folder: Path,
) -> None:
    """Every figure of a finished model=m2 run into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    analogies(m2, test, test_labels, folder / "analogies.png")
    confusion_matrix(predicted, test_labels, class_names, folder / "confusion_matrix.png")
    class_samples(m2, folder / "class_samples.png", class_names, per_class=8)
    error_curve(history, folder / "error_curve.png")
