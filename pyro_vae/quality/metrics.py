"""Sample-quality metrics between two sets of features: the Fréchet distance, KID, and precision and
recall (Kynkäänniemi et al. 2019).

The features are computed once, by the project's own classifier, and shared by all four metrics, so
the Fréchet distance is named for that classifier ("FD (LeNet)") and is not comparable with Inception
FID. torchmetrics computes FD and KID on the precomputed features through an identity feature module;
precision and recall are not in torchmetrics and are computed here, in blocks of distances.
"""

import warnings
from typing import Dict, Tuple, Union

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from pyro_vae.errors import ConfigError, DataError

# Distances held at once by precision and recall: 2^22 float64 values (32 MiB), so 10,000 x 10,000
# pairs go through in blocks of 419 rows.
_BLOCK_ELEMENTS = 2**22


class _Precomputed(nn.Module):
    """The identity, as torchmetrics' feature extractor of features already computed; ``num_features``
    spares FrechetInceptionDistance its probe with a dummy image."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


def quality_metrics(
    real: Tensor,
    generated: Tensor,
    *,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    k: int = 3,
    seed: int = 0,
) -> Dict[str, Union[float, int]]:
    """FD, KID (mean and standard deviation over ``kid_subsets`` random subsets of ``kid_subset_size``
    from each set), precision and recall with ``k``-nearest-neighbour manifolds, between the
    features (samples x features) of real and of generated images; all in float64.

    FD, precision and recall depend on the sample counts (KID is unbiased), so the counts are returned
    with the figures. The KID subsets are drawn with torch's random state set from ``seed`` and then
    restored, so a figure repeats and the caller's random state is left as it was.
    """
    _check(real, generated, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, k=k)
    real = real.double()
    generated = generated.to(real.device, torch.float64)
    kid_mean, kid_std = _kernel_distance(real, generated, kid_subsets, kid_subset_size, seed)
    precision, recall = _precision_recall(real, generated, k)
    return {
        "fd": _frechet_distance(real, generated),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
        "n_real": len(real),
        "n_generated": len(generated),
    }


def _check(real: Tensor, generated: Tensor, *, kid_subsets: int, kid_subset_size: int, k: int) -> None:
    """Refuse, in one line, what would give no figure or a meaningless one."""
    for name, features in (("real", real), ("generated", generated)):
        if not isinstance(features, Tensor) or features.dim() != 2:
            shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
            raise DataError(f"{name} features: expected a tensor of samples x features, got {shape}")
        bad = int((~torch.isfinite(features)).any(dim=1).sum())
        if bad:
            raise DataError(
                f"{name} features: {bad} of {len(features)} samples are NaN or infinite; "
                "check the images given to the feature extractor (a diverged model samples NaN)"
            )
    if real.shape[1] != generated.shape[1]:
        raise DataError(
            f"real features have {real.shape[1]} dimensions, generated {generated.shape[1]}: "
            "both sets must come from the same feature extractor"
        )
    if k < 1:
        raise ConfigError(f"k={k}: precision and recall need k >= 1 nearest neighbours (3 is usual)")
    if kid_subsets < 1:
        raise ConfigError(f"kid_subsets={kid_subsets}: KID needs at least one subset (100 is usual)")
    if kid_subset_size < 2:
        raise ConfigError(f"kid_subset_size={kid_subset_size}: the unbiased KID needs subsets of at least 2")
    name, n = min(("real", len(real)), ("generated", len(generated)), key=lambda pair: pair[1])
    if kid_subset_size > n:
        raise ConfigError(
            f"kid_subset_size={kid_subset_size} exceeds the {n} {name} samples; "
            f"lower kid_subset_size or score at least {kid_subset_size} samples"
        )
    if n < k + 1:
        raise ConfigError(f"k={k} needs at least k + 1 = {k + 1} samples in each set, {name} has {n}; lower k")


def _frechet_distance(real: Tensor, generated: Tensor) -> float:
    """||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)) of the two sample Gaussians, by torchmetrics."""
    fd = FrechetInceptionDistance(feature=_Precomputed(real.shape[1])).to(real.device)
    fd.update(real, real=True)
    fd.update(generated, real=False)
    return fd.compute().item()


def _kernel_distance(real: Tensor, generated: Tensor, subsets: int, subset_size: int, seed: int) -> Tuple[float, float]:
    """The unbiased MMD^2 of the kernel (x.y / d + 1)^3 (Bińkowski et al. 2018), by torchmetrics: the
    mean over the subsets and their standard deviation (the spread of one subset's figure)."""
    with warnings.catch_warnings():  # that it keeps the features: they are in memory already
        warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer")
        kid = KernelInceptionDistance(feature=_Precomputed(real.shape[1]), subsets=subsets, subset_size=subset_size)
    kid.update(real, real=True)
    kid.update(generated, real=False)
    with torch.random.fork_rng(devices=[]):  # torchmetrics draws the subsets with torch.randperm
        torch.manual_seed(seed)
        mean, std = kid.compute()
    return mean.item(), std.item()


def _precision_recall(real: Tensor, generated: Tensor, k: int) -> Tuple[float, float]:
    """Precision: the fraction of generated features inside the real manifold, the union of balls
    around each real feature reaching its k-th nearest real neighbour; recall: the fraction of real
    features inside the generated manifold. Distances are computed a block of rows at a time."""
    real_radii = _knn_radii(real, k)
    generated_radii = _knn_radii(generated, k)
    in_real_manifold = []
    in_generated_manifold = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    rows = max(1, _BLOCK_ELEMENTS // len(real))
    for block, block_radii in zip(generated.split(rows), generated_radii.split(rows)):
        distances = torch.cdist(block, real)
        in_real_manifold.append((distances <= real_radii).any(dim=1))
        in_generated_manifold |= (distances <= block_radii[:, None]).any(dim=0)
    return torch.cat(in_real_manifold).double().mean().item(), in_generated_manifold.double().mean().item()


def _knn_radii(points: Tensor, k: int) -> Tensor:
    """Each point's distance to its k-th nearest neighbour in the set, itself not counted (a duplicate
    is a neighbour at distance 0), as in Kynkäänniemi et al.'s code."""
    rows = max(1, _BLOCK_ELEMENTS // len(points))
    blocks = [torch.cdist(block, points).topk(k + 1, largest=False).values[:, k] for block in points.split(rows)]
    return torch.cat(blocks)
