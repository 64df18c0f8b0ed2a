"""The sample-quality metrics against references that share no code with them: the Fréchet distance's
closed form (scipy's matrix square root), the unbiased MMD^2 written out in loops, precision and recall
on point clouds whose answers are known and against a brute-force count over every pair of points."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from pyro_vae.errors import ConfigError, DataError
from pyro_vae.quality import metrics
from pyro_vae.quality.metrics import quality_metrics

pytestmark = pytest.mark.usefixtures("single_thread")

# What FD and precision/recall tests pass so that KID, computed alongside, costs nothing.
NO_KID = {"kid_subsets": 1, "kid_subset_size": 2}


def gaussian(n: int, mean: np.ndarray, cov: np.ndarray, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).multivariate_normal(mean, cov, size=n)


def random_cov(d: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def with_moments(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """x moved and whitened so that its sample mean is exactly ``mean`` and its sample covariance
    (divided by n - 1) exactly diag(std^2)."""
    centred = x - x.mean(axis=0)
    white = centred @ np.linalg.inv(np.linalg.cholesky(np.cov(centred, rowvar=False)).T)
    return white * std + mean


def fd_closed_form(x: np.ndarray, y: np.ndarray) -> float:
    mu1, mu2 = x.mean(axis=0), y.mean(axis=0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * root))


def fd(x: np.ndarray, y: np.ndarray) -> float:
    return quality_metrics(torch.from_numpy(x), torch.from_numpy(y), **NO_KID)["fd"]


# The Fréchet distance


def test_fd_of_two_gaussian_samples_is_the_closed_form():
    d = 6
    x = gaussian(3000, np.zeros(d), random_cov(d, 1), seed=2)
    y = gaussian(2500, np.linspace(-1, 1, d), random_cov(d, 3), seed=4)
    assert fd(x, y) == pytest.approx(fd_closed_form(x, y), rel=1e-9)


def test_fd_of_diagonal_covariances_is_elementwise():
    """With diagonal covariances (S1 S2)^(1/2) = diag(s1 s2): FD = |mu1 - mu2|^2 + sum (s1 - s2)^2."""
    d = 5
    rng = np.random.default_rng(5)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.5, 2, size=d), rng.uniform(0.5, 2, size=d)
    x = with_moments(rng.normal(size=(400, d)), mu1, s1)
    y = with_moments(rng.normal(size=(300, d)), mu2, s2)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)
    assert fd(x, y) == pytest.approx(expected, rel=1e-9)


def test_fd_of_a_set_against_itself_is_zero():
    x = gaussian(1000, np.ones(8), random_cov(8, 6), seed=7)
    assert abs(fd(x, x)) < 1e-9


def test_float32_features_are_scored_in_float64():
    x = gaussian(500, np.zeros(4), random_cov(4, 8), seed=9)
    y = gaussian(500, np.full(4, 0.01), random_cov(4, 8), seed=10)
    x32, y32 = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    expected = fd_closed_form(x32.double().numpy(), y32.double().numpy())
    assert quality_metrics(x32, y32, **NO_KID)["fd"] == pytest.approx(expected, rel=1e-9)


# KID


def mmd2_by_hand(x: list, y: list) -> float:
    """The unbiased MMD^2 of Bińkowski et al. (2018), eq. 2, with k(a, b) = (a.b / d + 1)^3."""
    d = len(x[0])

    def kernel(a, b):
        return (sum(ai * bi for ai, bi in zip(a, b)) / d + 1) ** 3

    m = len(x)
    xx = sum(kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(kernel(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(kernel(x[i], y[j]) for i in range(m) for j in range(m))
    return (xx + yy) / (m * (m - 1)) - 2 * xy / m**2


def test_kid_of_a_small_example_is_the_unbiased_mmd_by_hand():
    x = [[0.0, 1.0], [1.0, 0.5], [-1.0, 2.0], [0.5, -0.5]]
    y = [[2.0, 0.0], [1.5, 1.5], [0.0, -1.0], [3.0, 1.0]]
    result = quality_metrics(torch.tensor(x), torch.tensor(y), kid_subsets=1, kid_subset_size=4)
    assert result["kid_mean"] == pytest.approx(mmd2_by_hand(x, y), rel=1e-12)
    assert result["kid_std"] == 0


def test_kid_between_two_halves_of_one_set_is_near_zero():
    x = torch.from_numpy(gaussian(4000, np.zeros(8), random_cov(8, 11), seed=12))
    same = quality_metrics(x[:2000], x[2000:], kid_subsets=20, kid_subset_size=500)
    assert abs(same["kid_mean"]) < 3 * same["kid_std"]
    moved = quality_metrics(x[:2000], x[2000:] + 0.3, kid_subsets=20, kid_subset_size=500)
    assert moved["kid_mean"] > 10 * moved["kid_std"]


def test_kid_repeats_for_a_seed_and_leaves_the_callers_random_state_alone():
    x = torch.randn(300, 4, generator=torch.Generator().manual_seed(13))
    y = x + 0.1
    state = torch.get_rng_state()
    first = quality_metrics(x, y, kid_subsets=5, kid_subset_size=100, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert quality_metrics(x, y, kid_subsets=5, kid_subset_size=100, seed=1) == first
    assert quality_metrics(x, y, kid_subsets=5, kid_subset_size=100, seed=2)["kid_mean"] != first["kid_mean"]


# Precision and recall


def precision_recall(real: torch.Tensor, generated: torch.Tensor, k: int = 3):
    result = quality_metrics(real, generated, k=k, **NO_KID)
    return result["precision"], result["recall"]


def test_generated_points_on_the_real_points_have_precision_and_recall_one():
    real = torch.randn(200, 5, generator=torch.Generator().manual_seed(14))
    assert precision_recall(real, real.clone()) == (1.0, 1.0)


def test_a_generated_cluster_far_away_has_precision_and_recall_zero():
    g = torch.Generator().manual_seed(15)
    real = torch.randn(200, 5, generator=g)
    assert precision_recall(real, torch.randn(150, 5, generator=g) + 100) == (0.0, 0.0)


def test_generated_points_covering_half_of_the_real_modes_have_precision_one_recall_one_half():
    g = torch.Generator().manual_seed(16)
    modes = torch.tensor([[0.0, 0.0], [50.0, 0.0], [0.0, 50.0], [50.0, 50.0]])  # 50 apart, of spread 1
    real = torch.cat([mode + torch.randn(60, 2, generator=g) for mode in modes])
    generated = real[:120] + 1e-4 * torch.randn(120, 2, generator=g)  # the first two modes only
    assert precision_recall(real, generated) == (1.0, 0.5)


def test_a_point_repeated_k_plus_one_times_has_a_ball_of_radius_zero_that_holds_its_copies():
    """Duplicates are common among binary images: a ball's edge belongs to it (distance <= radius), as
    in Kynkäänniemi et al.'s code. Integer coordinates keep every distance exact."""
    g = torch.Generator().manual_seed(20)
    points = torch.randperm(1000, generator=g)[:20].reshape(20, 1) // torch.tensor([[1, 10, 100]]) % 10
    real = points[:10].repeat(4, 1).double()  # each of ten points four times: k = 3 neighbours at distance 0
    generated = points.double()  # those ten once each, and ten others
    result = quality_metrics(real, generated, k=3, **NO_KID)
    assert (result["precision"], result["recall"]) == (0.5, 1.0)
    assert (result["n_real"], result["n_generated"]) == (40, 20)


def brute_force_precision_recall(real: list, generated: list, k: int):
    """Every pair of points in plain Python: a point's radius is the k-th smallest distance to the
    other points of its set; a point is in a manifold if it is within the radius of one of its points."""

    def radii(points):
        return [sorted(math.dist(p, q) for j, q in enumerate(points) if j != i)[k - 1] for i, p in enumerate(points)]

    def fraction_inside(points, manifold):
        manifold_radii = radii(manifold)
        inside = [any(math.dist(p, q) <= r for q, r in zip(manifold, manifold_radii)) for p in points]
        return sum(inside) / len(points)

    return fraction_inside(generated, real), fraction_inside(real, generated)


@pytest.mark.parametrize(
    "seed, n_real, n_generated, d, k", [(17, 40, 30, 2, 3), (18, 25, 45, 3, 1), (19, 35, 35, 4, 5)]
)
@pytest.mark.parametrize("block_elements", [2**22, 50])
def test_precision_recall_match_a_brute_force_count(monkeypatch, seed, n_real, n_generated, d, k, block_elements):
    """Also with blocks of a row or two, to check that the blocks are put together right."""
    monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", block_elements)
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(n_real, d, generator=g, dtype=torch.float64)
    generated = torch.randn(n_generated, d, generator=g, dtype=torch.float64) + 1.0
    expected = brute_force_precision_recall(real.tolist(), generated.tolist(), k)
    assert 0 < expected[0] < 1 and 0 < expected[1] < 1  # a test of something
    assert precision_recall(real, generated, k) == pytest.approx(expected, abs=1e-15)


# Refusals


@pytest.mark.parametrize(
    "real, generated, settings, error, message",
    [
        (torch.zeros(10), torch.zeros(10, 2), {}, DataError, "real features: expected a tensor of samples x features"),
        (torch.zeros(10, 2), [[0.0, 0.0]], {}, DataError, "generated features: expected a tensor"),
        (torch.zeros(10, 3), torch.zeros(10, 2), {}, DataError, "real features have 3 dimensions, generated 2"),
        (torch.zeros(10, 2), torch.full((10, 2), math.nan), {}, DataError, "10 of 10 samples are NaN or infinite"),
        (torch.zeros(10, 2), torch.tensor([[math.inf, 0.0]] * 10), {}, DataError, "generated features: 10 of 10"),
        (
            torch.zeros(10, 2),
            torch.zeros(10, 2),
            {"kid_subset_size": 11},
            ConfigError,
            "kid_subset_size=11 exceeds the 10 real samples; lower kid_subset_size",
        ),
        (torch.zeros(10, 2), torch.zeros(8, 2), {"kid_subset_size": 9}, ConfigError, "the 8 generated samples"),
        (torch.zeros(10, 2), torch.zeros(10, 2), {"kid_subset_size": 1}, ConfigError, "kid_subset_size=1:"),
        (torch.zeros(10, 2), torch.zeros(10, 2), {"kid_subsets": 0}, ConfigError, "kid_subsets=0:"),
        (torch.zeros(10, 2), torch.zeros(10, 2), {"k": 0}, ConfigError, "k=0:"),
        (
            torch.zeros(4, 2),
            torch.zeros(10, 2),
            {"k": 4},
            ConfigError,
            "k=4 needs at least k \\+ 1 = 5 samples .* real has 4; lower k",
        ),
    ],
)
def test_unusable_input_is_refused_in_one_line(real, generated, settings, error, message):
    settings = {"kid_subset_size": 2, **settings}
    with pytest.raises(error, match=message) as refusal:
        quality_metrics(real, generated, **settings)
    assert "\n" not in str(refusal.value)
