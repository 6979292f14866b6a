"""The FID maths agrees with scipy's sqrtm to 1e-6 relative, also where covariances are near-singular or singular."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from kompete.metrics.fid import frechet_distance, trace_sqrt_product


def scipy_fid(mu1, s1, mu2, s2) -> float:
    """pytorch-fid's formula (scipy sqrtm of the product), the reference."""
    root = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root))


def gaussian(rng, d: int, spectrum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A mean and a covariance with the given eigenvalues in a random basis."""
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return rng.standard_normal(d), (q * spectrum) @ q.T


@pytest.mark.parametrize("low", [1e-1, 1e-9], ids=["well-conditioned", "near-singular"])
def test_fid_agrees_with_scipy_sqrtm_to_one_in_a_million(low):
    rng = np.random.default_rng(0)
    d = 96
    mu1, s1 = gaussian(rng, d, np.geomspace(low, 10, d))
    mu2, s2 = gaussian(rng, d, np.geomspace(low, 5, d))
    ours, ref = frechet_distance(mu1, s1, mu2, s2), scipy_fid(mu1, s1, mu2, s2)
    assert abs(ours - ref) <= 1e-6 * abs(ref), (ours, ref)


def test_features_with_fewer_samples_than_dimensions_agree_with_scipy():
    """Both covariances from 60 samples of 80 dimensions (singular): the eigendecomposition path."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((60, 80)), rng.standard_normal((60, 80)) * 1.3 + 0.2
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ours, ref = frechet_distance(a.mean(0), s1, b.mean(0), s2), scipy_fid(a.mean(0), s1, b.mean(0), s2)
    assert abs(ours - ref) <= 1e-6 * abs(ref), (ours, ref)


def test_trace_is_symmetric_when_only_one_covariance_is_singular():
    rng = np.random.default_rng(2)
    singular = np.cov(rng.standard_normal((20, 40)), rowvar=False)  # rank 19: no Cholesky
    full = np.cov(rng.standard_normal((400, 40)), rowvar=False)
    one, other = trace_sqrt_product(singular, full), trace_sqrt_product(full, singular)
    assert one == pytest.approx(other, rel=1e-9)
    assert one == pytest.approx(np.trace(linalg.sqrtm(singular @ full).real), rel=1e-6)


def test_distance_of_a_singular_gaussian_to_itself_is_zero():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((30, 50))
    mu, s = x.mean(0), np.cov(x, rowvar=False)
    assert frechet_distance(mu, s, mu, s) <= 1e-9 * np.trace(s)
