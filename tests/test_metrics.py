"""Kaggle's MiFID maths: FID against closed forms and pytorch-fid, memorization distance in Kaggle's direction."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from kompete.metrics import (FID_EPSILON, RankDeficientWarning, frechet_distance, memorization_distance, mifid,
                             statistics, threshold)


def _features(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    """Post-ReLU-like non-negative features with correlated dimensions."""
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return np.maximum(rng.normal(size=(n, d)) @ mix + 0.5 + shift, 0)


def test_fid_matches_the_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-12)


def test_fid_matches_the_closed_form_for_commuting_full_covariances():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    a, b = rng.uniform(0.5, 3, 6), rng.uniform(0.5, 3, 6)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T  # same eigenvectors: sqrt(S1 S2) = Q sqrt(ab) Q^T
    mu = rng.normal(size=6)
    expected = (a + b - 2 * np.sqrt(a * b)).sum()
    assert frechet_distance(mu, s1, mu, s2) == pytest.approx(expected, rel=1e-10)


def test_fid_of_a_set_with_itself_is_zero():
    mu, sigma = statistics(_features(np.random.default_rng(1), 300, 32))
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_fid_agrees_with_pytorch_fid():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(2)
    g, r = _features(rng, 600, 64), _features(rng, 900, 64, shift=0.2)
    mu_g, s_g = statistics(g)
    mu_r, s_r = statistics(r)
    ours = frechet_distance(mu_g, s_g, mu_r, s_r)
    theirs = calculate_frechet_distance(mu_g, s_g, mu_r, s_r)
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert np.allclose(s_g, np.cov(g, rowvar=False))  # ddof=1, as Kaggle


def test_fewer_samples_than_dimensions_warns_and_still_gives_a_finite_distance():
    rng = np.random.default_rng(3)
    with pytest.warns(RankDeficientWarning, match="not comparable"):
        mu_g, s_g = statistics(_features(rng, 20, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankDeficientWarning)
        mu_r, s_r = statistics(_features(rng, 30, 64, shift=0.1))
    value = frechet_distance(mu_g, s_g, mu_r, s_r)
    assert np.isfinite(value) and value > 0


def test_memorization_distance_follows_kaggle_min_over_training_mean_over_generated():
    rng = np.random.default_rng(4)
    gen, ref = _features(rng, 37, 16), _features(rng, 53, 16)
    g = gen / np.linalg.norm(gen, axis=1, keepdims=True)
    r = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    expected = np.mean(np.min(1 - np.abs(g @ r.T), axis=1))  # Kaggle's scorer, in float64
    assert memorization_distance(gen, ref, chunk=8) == pytest.approx(expected, abs=1e-6)
    reversed_direction = np.mean(np.min(1 - np.abs(g @ r.T), axis=0))
    assert abs(expected - reversed_direction) > 1e-3  # the two directions really differ on this data


def test_zero_sum_rows_are_dropped_on_both_sides():
    rng = np.random.default_rng(5)
    gen, ref = _features(rng, 20, 8), _features(rng, 30, 8)
    with_zeros_gen = np.vstack([gen, np.zeros((5, 8))])
    with_zeros_ref = np.vstack([np.zeros((3, 8)), ref])
    assert memorization_distance(with_zeros_gen, with_zeros_ref) == pytest.approx(
        memorization_distance(gen, ref), abs=1e-7)


def test_threshold_is_strict_on_both_sides_of_eps():
    assert threshold(0.0999, 0.1) == 0.0999
    assert threshold(0.1, 0.1) == 1.0
    assert threshold(0.25, 0.1) == 1.0


def test_copying_the_training_set_is_punished_in_kompete_but_not_in_torchmetrics():
    from torchmetrics.image.mifid import _compute_cosine_distance

    rng = np.random.default_rng(6)
    train = _features(rng, 400, 64)
    copies = train[rng.integers(0, 40, 300)] + rng.normal(0, 0.01, (300, 64))  # collapse onto 40 training images
    honest = _features(rng, 300, 64, shift=0.05)
    copied, fair = mifid(copies, train), mifid(honest, train)
    assert copied.memorization_distance < 0.1 and copied.thresholded_distance == copied.memorization_distance
    assert copied.mifid > 50 * copied.fid  # divided by a distance < 0.1
    assert fair.thresholded_distance == 1.0 and fair.mifid == pytest.approx(fair.fid / (1 + FID_EPSILON))
    # torchmetrics' compute() feeds (real, fake): min over fakes for each real image, so most training
    # images (not copied) sit far from every fake and the penalty never fires.
    tm = _compute_cosine_distance(torch.from_numpy(train), torch.from_numpy(copies)).item()
    assert tm == 1.0


def test_mifid_agrees_with_torchmetrics_helpers_fed_generated_first():
    from torchmetrics.image.mifid import _mifid_compute

    rng = np.random.default_rng(7)
    gen, ref = _features(rng, 500, 48), _features(rng, 700, 48, shift=0.1)
    ours = mifid(gen, ref, eps=0.9)  # eps high enough that the distance counts
    mu_g, s_g = statistics(gen)
    mu_r, s_r = statistics(ref)
    t = [torch.from_numpy(a) for a in (mu_g, s_g, gen, mu_r, s_r, ref)]
    theirs = _mifid_compute(*t, cosine_distance_eps=0.9).item()
    assert ours.thresholded_distance < 0.9
    assert ours.mifid == pytest.approx(theirs, rel=1e-6)


def test_low_rank_path_equals_the_full_computation():
    from kompete.metrics import frechet_distance_to

    rng = np.random.default_rng(8)
    gen, ref = _features(rng, 12, 40), _features(rng, 200, 40, shift=0.1)
    mu_r, s_r = statistics(ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankDeficientWarning)
        mu_g, s_g = statistics(gen)
        low_rank = frechet_distance_to(gen, mu_r, s_r)
    assert low_rank == pytest.approx(frechet_distance(mu_g, s_g, mu_r, s_r), rel=1e-6)
    big = _features(rng, 300, 40)
    assert frechet_distance_to(big, mu_r, s_r) == pytest.approx(frechet_distance(*statistics(big), mu_r, s_r))
