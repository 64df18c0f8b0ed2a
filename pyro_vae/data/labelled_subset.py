"""The few labelled images of semi-supervised training (``dataset.num_labels``), balanced over the
classes as in Kingma et al. (2014): 100 labels of MNIST are 10 of each digit."""

import torch

from ..errors import ConfigError


def balanced_labelled_indices(labels: torch.Tensor, num_labels: int, seed: int) -> torch.Tensor:
    """``num_labels`` indices into ``labels``, num_labels / C of each of the C classes present, sorted.

    ``labels`` must be the training split's alone: labels drawn from the validation or test images
    would leak them into training. The draw uses a generator of its own, seeded by ``seed``, so the
    same seed gives the same labelled images and choosing them leaves the global RNG untouched.
    Raises ConfigError (a ValueError) in one line when ``num_labels`` is not a positive multiple of C or
    asks for more images of a class than the split has.
    """
    on_cpu = labels.cpu()  # the generator's device
    classes, counts = on_cpu.unique(return_counts=True)
    if num_labels < 1 or num_labels % len(classes):
        raise ConfigError(f"dataset.num_labels={num_labels}: must be a positive multiple of the {len(classes)} classes")
    per_class = num_labels // len(classes)
    if per_class > counts.min():
        scarcest = classes[counts.argmin()].item()
        raise ConfigError(
            f"dataset.num_labels={num_labels}: asks for {per_class} images of each class, but class {scarcest} has "
            f"only {counts.min().item()} training images"
        )
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in classes:
        members = (on_cpu == label).nonzero().flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(chosen).sort().values.to(labels.device)


def unlabelled_indices(num_images: int, labelled: torch.Tensor) -> torch.Tensor:
    """The indices of the ``num_images`` training images not in ``labelled``, sorted: the unlabelled set."""
    keep = torch.ones(num_images, dtype=torch.bool, device=labelled.device)
    keep[labelled] = False
    return keep.nonzero().flatten()


def labelled_batches(num_labelled: int, batch_size: int, steps: int, seed: int, epoch: int) -> torch.Tensor:
    """The labelled images of each of an epoch's ``steps`` steps, (steps, batch_size) indices into the
    ``num_labelled`` labelled ones: consecutive slices of fresh permutations, each drawn when the previous one
    is used up, so every labelled image is seen equally often. Drawn from ``seed`` and ``epoch`` alone (a
    generator of its own), so a resumed run sees the batches it would have seen."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    needed = steps * batch_size
    orders = [torch.randperm(num_labelled, generator=generator) for _ in range(-(-needed // num_labelled))]
    return torch.cat(orders)[:needed].view(steps, batch_size)
