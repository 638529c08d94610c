"""Translation metrics on inputs whose value is known in closed form or by construction."""

import math

import numpy as np
import pytest

from crossdomain.data import gmm
from crossdomain.evaluation import metrics

# Neighboring means of this ring are 1.53 apart, over 10 standard deviations
# (std 0.141), so a sample is practically never nearer to another mode.
RING = gmm.Mixture(gmm.ring_means(8, 2.0), 0.02)


def _ring_samples(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  return RING.sample(count, np.random.default_rng(seed))


# Toy mixtures.


def test_nearest_modes_at_known_points():
  # Standard deviation 0.5, so points within 1.5 of a mean are on its mode.
  mixture = gmm.Mixture(np.array([[0.0, 0.0], [4.0, 0.0]]), 0.25)
  points = np.array([[1.5, 0.0], [1.6, 0.0], [3.0, 0.0], [2.0, 0.0]])
  modes, within = metrics.nearest_modes(points, mixture)
  # [2, 0] is equally far from both means, and ties go to the lower index.
  np.testing.assert_array_equal(modes, [0, 0, 1, 0])
  np.testing.assert_array_equal(within, [True, False, True, False])


def test_identity_map_covers_every_mode():
  points, _ = _ring_samples(4000)
  assert metrics.mode_coverage(points, RING, min_share=0.02) == RING.num_modes


def test_identity_map_high_quality_share():
  points, _ = _ring_samples(4000)
  # In 2-D the share within 3 std is the chi-square value 1 - exp(-9 / 2).
  expected = 1.0 - math.exp(-4.5)
  share = metrics.high_quality_share(points, RING)
  assert share > 0.97
  assert share == pytest.approx(expected, abs=0.01)


def test_identity_mapping_table_is_diagonal():
  points, modes = _ring_samples(4000)
  table = metrics.mode_mapping(modes, points, RING)
  assert table.shape == (RING.num_modes, RING.num_modes + 1)
  on_mode = table[:, :-1]
  np.testing.assert_array_equal(on_mode, np.diag(np.diag(on_mode)))
  np.testing.assert_array_equal(table.sum(axis=1), np.bincount(modes, minlength=RING.num_modes))
  # About 1.1% of each mode's samples lie beyond 3 std.
  assert 0 < table[:, -1].sum() < 0.03 * len(points)


def test_collapse_to_one_mode():
  _, modes = _ring_samples(500)
  points = np.tile(RING.means[3], (len(modes), 1))
  assert metrics.mode_coverage(points, RING) == 1
  assert metrics.high_quality_share(points, RING) == 1.0
  table = metrics.mode_mapping(modes, points, RING)
  np.testing.assert_array_equal(table[:, 3], np.bincount(modes, minlength=RING.num_modes))
  assert np.count_nonzero(np.delete(table, 3, axis=1)) == 0


def test_collapse_far_from_every_mode():
  _, modes = _ring_samples(500)
  points = np.full((len(modes), 2), 100.0)
  assert metrics.mode_coverage(points, RING) == 0
  assert metrics.high_quality_share(points, RING) == 0.0
  table = metrics.mode_mapping(modes, points, RING)
  assert np.count_nonzero(table[:, :-1]) == 0
  assert table[:, -1].sum() == len(points)


def test_mode_coverage_share_is_of_all_points():
  means = RING.means
  points = np.concatenate([np.tile(means[0], (97, 1)), np.tile(means[1], (3, 1))])
  assert metrics.mode_coverage(points, RING, min_share=0.03) == 2
  assert metrics.mode_coverage(points, RING, min_share=0.04) == 1
  # Off-mode points count in the denominator: 50 of 100 points is a share of 0.5.
  half_off = np.concatenate([np.tile(means[0], (50, 1)), np.full((50, 2), 100.0)])
  assert metrics.mode_coverage(half_off, RING, min_share=0.5) == 1
  assert metrics.mode_coverage(half_off, RING, min_share=0.6) == 0


def test_mode_coverage_zero_share_needs_one_point():
  points = np.tile(RING.means[2], (10, 1))
  assert metrics.mode_coverage(points, RING, min_share=0.0) == 1


def test_mode_coverage_rejects_invalid_share():
  points, _ = _ring_samples(10)
  with pytest.raises(ValueError, match="min_share"):
    metrics.mode_coverage(points, RING, min_share=2.0)


def test_mode_mapping_row_count_and_checks():
  points = np.tile(RING.means[0], (2, 1))
  table = metrics.mode_mapping(np.array([0, 1]), points, RING, num_source_modes=4)
  assert table.shape == (4, RING.num_modes + 1)
  np.testing.assert_array_equal(table[:, 0], [1, 1, 0, 0])
  with pytest.raises(ValueError, match="one entry per point"):
    metrics.mode_mapping(np.array([0, 1, 2]), points, RING)
  with pytest.raises(ValueError, match="must lie in"):
    metrics.mode_mapping(np.array([0, 5]), points, RING, num_source_modes=4)


def test_points_with_wrong_dimensions_raise():
  with pytest.raises(ValueError, match="points must be"):
    metrics.nearest_modes(np.zeros((5, 3)), RING)


def test_format_mode_mapping():
  table = np.array([[3, 0, 1], [0, 2, 0]])
  expected = ("| source mode | target 0 | target 1 | off-mode |\n"
              "|---|---|---|---|\n"
              "| 0 | 3 | 0 | 1 |\n"
              "| 1 | 0 | 2 | 0 |")
  assert metrics.format_mode_mapping(table) == expected


# Fréchet distance.


def _trace_sqrt_product_by_eigenvalues(cov1: np.ndarray, cov2: np.ndarray) -> float:
  # tr sqrt(cov1 cov2) = tr sqrt(S cov2 S) with S = cov1^(1/2), a symmetric form.
  values, vectors = np.linalg.eigh(cov1)
  root1 = vectors @ np.diag(np.sqrt(values)) @ vectors.T
  return float(np.sum(np.sqrt(np.linalg.eigvalsh(root1 @ cov2 @ root1))))


def test_frechet_of_shifted_identity_gaussians():
  mean = np.array([1.0, -2.0, 0.5])
  identity = np.eye(3)
  distance = metrics.frechet_distance_from_moments(np.zeros(3), identity, mean, identity)
  assert distance == pytest.approx(5.25, rel=1e-9)


def test_frechet_of_scaled_identity_gaussians():
  dims, a, b = 4, 1.0, 3.0
  distance = metrics.frechet_distance_from_moments(
      np.zeros(dims), a**2 * np.eye(dims), np.zeros(dims), b**2 * np.eye(dims))
  assert distance == pytest.approx(dims * (a - b) ** 2, rel=1e-9)


def test_frechet_in_one_dimension():
  # (m1 - m2)^2 + (s1 - s2)^2 for N(1, 2^2) and N(-1, 5^2).
  distance = metrics.frechet_distance_from_moments(np.array([1.0]), np.array([[4.0]]),
                                                   np.array([-1.0]), np.array([[25.0]]))
  assert distance == pytest.approx(4.0 + 9.0, rel=1e-9)


def test_frechet_with_non_commuting_covariances():
  rng = np.random.default_rng(0)
  factor1, factor2 = rng.standard_normal((2, 5, 5))
  cov1, cov2 = factor1 @ factor1.T, factor2 @ factor2.T
  mean1, mean2 = rng.standard_normal((2, 5))
  expected = (np.sum(np.square(mean1 - mean2)) + np.trace(cov1) + np.trace(cov2)
              - 2.0 * _trace_sqrt_product_by_eigenvalues(cov1, cov2))
  distance = metrics.frechet_distance_from_moments(mean1, cov1, mean2, cov2)
  assert distance == pytest.approx(expected, rel=1e-6)
  swapped = metrics.frechet_distance_from_moments(mean2, cov2, mean1, cov1)
  assert swapped == pytest.approx(distance, rel=1e-6)


def test_frechet_fits_unbiased_covariances():
  # Means 1 and 2, unbiased variances 2 and 8: (1 - 2)^2 + (sqrt(2) - sqrt(8))^2 = 3.
  x, y = np.array([[0.0], [2.0]]), np.array([[0.0], [4.0]])
  assert metrics.frechet_distance(x, y) == pytest.approx(3.0, rel=1e-9)


def test_frechet_of_identical_sets_is_zero():
  features = np.random.default_rng(0).standard_normal((200, 6))
  distance = metrics.frechet_distance(features, features)
  assert 0.0 <= distance < 1e-8


def test_frechet_of_sampled_gaussians():
  rng = np.random.default_rng(0)
  dims, count = 3, 20_000
  mean = np.array([1.0, 2.0, 0.0])
  x = rng.standard_normal((count, dims))
  y = rng.standard_normal((count, dims)) + mean
  # Sampling noise of the mean term is about 2 |mean| sqrt(2 / count) = 0.045.
  assert metrics.frechet_distance(x, y) == pytest.approx(5.0, abs=0.15)
  scaled = 3.0 * rng.standard_normal((count, dims))
  assert metrics.frechet_distance(x, scaled) == pytest.approx(dims * (1.0 - 3.0) ** 2, abs=0.15)


def test_frechet_of_collapsed_set_is_large_and_finite():
  rng = np.random.default_rng(0)
  spread = rng.standard_normal((500, 4))
  collapsed = np.ones((500, 4))
  distance = metrics.frechet_distance(collapsed, spread)
  assert math.isfinite(distance)
  # A zero covariance gives |mean gap|^2 + tr(cov) = 4 + 4 as eps goes to 0.
  assert distance == pytest.approx(8.0, abs=0.5)


def test_frechet_with_fewer_samples_than_features():
  rng = np.random.default_rng(0)
  distance = metrics.frechet_distance(rng.standard_normal((10, 20)),
                                      rng.standard_normal((10, 20)))
  assert math.isfinite(distance)
  assert distance >= 0.0


def test_frechet_rejects_mismatched_features():
  with pytest.raises(ValueError, match="same number of features"):
    metrics.frechet_distance(np.zeros((5, 2)), np.zeros((5, 3)))


# Kernel inception distance.


def test_kid_of_hand_computed_sets():
  # k(1, 1) = (1 + 1)^3 = 8, k(2, 2) = 5^3 = 125 and k(1, 2) = 3^3 = 27,
  # so MMD^2 = 8 + 125 - 2 * 27.
  x, y = np.ones((2, 1)), np.full((2, 1), 2.0)
  mean, std = metrics.kernel_inception_distance(x, y, num_subsets=3, subset_size=2)
  assert mean == pytest.approx(79.0)
  assert std == pytest.approx(0.0)


def test_kid_same_versus_shifted_distribution():
  rng = np.random.default_rng(0)
  x, y = rng.standard_normal((2, 400, 8))
  shifted = y + 1.0
  options = dict(num_subsets=10, subset_size=200)
  same_mean, _ = metrics.kernel_inception_distance(x, y, **options)
  shifted_mean, _ = metrics.kernel_inception_distance(x, shifted, **options)
  assert shifted_mean > 0.1
  assert abs(same_mean) < 0.05 * shifted_mean


def test_kid_is_deterministic_for_a_seed():
  rng = np.random.default_rng(0)
  x, y = rng.standard_normal((2, 300, 4))
  options = dict(num_subsets=5, subset_size=50)
  first = metrics.kernel_inception_distance(x, y, seed=3, **options)
  again = metrics.kernel_inception_distance(x, y, seed=3, **options)
  other = metrics.kernel_inception_distance(x, y, seed=4, **options)
  assert first == again
  assert first != other


def test_kid_clips_subset_size_to_smaller_set():
  rng = np.random.default_rng(0)
  x, y = rng.standard_normal((50, 4)), rng.standard_normal((80, 4)) + 0.5
  _, std = metrics.kernel_inception_distance(x, x + 0.5, num_subsets=4, subset_size=10_000)
  # Every subset of x is all of x, reordered, so every subset gives the same value.
  assert std < 1e-9
  mean, _ = metrics.kernel_inception_distance(x, y, num_subsets=4, subset_size=10_000)
  assert math.isfinite(mean)


# Linear probe.


def _clustered_features(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  centers = {5: [10.0, 0.0, 0.0, 0.0], 7: [0.0, 10.0, 0.0, 0.0], 9: [0.0, 0.0, 10.0, 0.0]}
  noise = rng.standard_normal((len(labels), 4))
  return np.array([centers[label] for label in labels]) + noise


def test_probe_on_separable_features():
  rng = np.random.default_rng(0)
  train_labels = rng.choice([5, 7, 9], size=300)
  test_labels = rng.choice([5, 7, 9], size=300)
  accuracy = metrics.linear_probe_accuracy(
      _clustered_features(train_labels, rng), train_labels,
      _clustered_features(test_labels, rng), test_labels)
  assert accuracy == 1.0


def test_probe_counts_unseen_test_labels_as_wrong():
  rng = np.random.default_rng(0)
  train_labels = rng.choice([5, 7, 9], size=300)
  features = _clustered_features(train_labels, rng)
  unseen = np.full(len(train_labels), 11)
  assert metrics.linear_probe_accuracy(features, train_labels, features, unseen) == 0.0


def test_probe_on_features_independent_of_labels():
  rng = np.random.default_rng(0)
  count = 3000
  train_features, test_features = rng.standard_normal((2, count, 5))
  train_labels, test_labels = rng.integers(0, 3, size=(2, count))
  accuracy = metrics.linear_probe_accuracy(train_features, train_labels,
                                           test_features, test_labels)
  # The standard error of an accuracy near 1/3 on 3000 examples is about 0.009.
  assert accuracy == pytest.approx(1.0 / 3.0, abs=0.04)


def test_probe_on_collapsed_features():
  rng = np.random.default_rng(0)
  train_labels = rng.choice(3, size=400, p=[0.5, 0.3, 0.2])
  test_labels = rng.choice(3, size=400, p=[0.5, 0.3, 0.2])
  features = np.ones((400, 6))
  accuracy = metrics.linear_probe_accuracy(features, train_labels, features, test_labels)
  # Identical features leave only the class prior, so the probe predicts the
  # most frequent train class for every example.
  assert accuracy == pytest.approx(np.mean(test_labels == 0))
  assert accuracy <= np.max(np.bincount(test_labels)) / len(test_labels)


# Real-versus-real floors.


def test_split_halves():
  first, second = metrics.split_halves(11, seed=0)
  assert len(first) == len(second) == 5
  assert not set(first) & set(second)
  assert set(first) | set(second) <= set(range(11))
  again = metrics.split_halves(11, seed=0)
  np.testing.assert_array_equal(again[0], first)
  np.testing.assert_array_equal(again[1], second)
