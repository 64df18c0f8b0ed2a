"""The Gaussian algebra the paper's derivation rests on."""

import pytest
import torch
from torch.distributions import MultivariateNormal, kl_divergence

pytestmark = pytest.mark.usefixtures("single_thread")


def paper_kl(mu0, cov0, mu1, cov1):
    """KL(N(mu0, cov0) || N(mu1, cov1)) in closed form, as derived in the paper:
    1/2 [ tr(cov1^-1 cov0) + (mu1 - mu0)^T cov1^-1 (mu1 - mu0) - k + ln(det cov1 / det cov0) ]."""
    k = mu0.shape[-1]
    inv1 = torch.linalg.inv(cov1)
    diff = (mu1 - mu0).unsqueeze(-1)
    trace = torch.diagonal(inv1 @ cov0, dim1=-2, dim2=-1).sum(-1)
    mahalanobis = (diff.transpose(-1, -2) @ inv1 @ diff)[..., 0, 0]
    log_det_ratio = torch.logdet(cov1) - torch.logdet(cov0)
    return 0.5 * (trace + mahalanobis - k + log_det_ratio)


def random_spd(batch, k, generator):
    a = torch.randn(batch, k, k, generator=generator, dtype=torch.float64)
    return a @ a.transpose(-1, -2) + 0.5 * torch.eye(k, dtype=torch.float64)


def test_full_covariance_kl_matches_torch():
    g = torch.Generator().manual_seed(0)
    k = 5
    mu0, mu1 = torch.randn(8, k, generator=g, dtype=torch.float64), torch.randn(8, k, generator=g, dtype=torch.float64)
    cov0, cov1 = random_spd(8, k, g), random_spd(8, k, g)
    expected = kl_divergence(MultivariateNormal(mu0, cov0), MultivariateNormal(mu1, cov1))
    assert torch.allclose(paper_kl(mu0, cov0, mu1, cov1), expected, rtol=1e-9, atol=1e-9)


def test_kl_to_standard_normal_reduces_to_the_vae_term():
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(4, 3, generator=g, dtype=torch.float64)
    sigma = torch.rand(4, 3, generator=g, dtype=torch.float64) + 0.1
    vae_term = 0.5 * (mu**2 + sigma**2 - 1 - torch.log(sigma**2)).sum(-1)
    eye = torch.eye(3, dtype=torch.float64).expand(4, 3, 3)
    assert torch.allclose(paper_kl(mu, torch.diag_embed(sigma**2), torch.zeros_like(mu), eye), vae_term)


def test_reparameterized_guide_sample_has_the_right_law(small_vae, binary_batch):
    q = small_vae.encode(binary_batch[:2])
    z = q.rsample((200000,))
    loc, scale = q.base_dist.loc, q.base_dist.scale
    assert z.requires_grad  # the draw is a differentiable function of the encoder's output
    assert torch.allclose(z.mean(0), loc, atol=5 * scale.max().item() / 200000**0.5 + 1e-4)
    assert torch.allclose(z.std(0), scale, rtol=0.01)
    standardized = ((z - loc) / scale).detach()
    # The standardised draws are N(0, 1): check a tail probability and independence across dimensions.
    assert abs((standardized > 1.96).float().mean().item() - 0.025) < 0.002
    corr = torch.corrcoef(standardized[:, 0].T)
    assert torch.allclose(corr, torch.eye(len(corr)), atol=0.02)
