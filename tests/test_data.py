"""Gaussian mixture sampling and the resumable tf.data batches."""

import numpy as np
import pytest

from crossdomain.data import gmm, pipeline


def test_mixture_sample_statistics():
  mixture = gmm.Mixture(((0.0, 0.0), (4.0, -2.0), (-3.0, 5.0)), variance=0.25)
  points, modes = mixture.sample(30_000, np.random.default_rng(0))

  assert points.shape == (30_000, 2)
  assert points.dtype == np.float32
  np.testing.assert_allclose(np.bincount(modes) / len(modes), [1 / 3] * 3, atol=0.015)
  for mode, mean in enumerate(mixture.means):
    centered = points[modes == mode] - mean
    np.testing.assert_allclose(centered.mean(axis=0), [0.0, 0.0], atol=0.02)
    np.testing.assert_allclose(np.cov(centered.T), 0.25 * np.eye(2), atol=0.02)


def test_mixture_log_density_integrates_to_one():
  mixture = gmm.Mixture(((0.0, 0.0), (1.0, 1.0)), variance=0.1)
  xs, ys = np.meshgrid(np.linspace(-3, 4, 351), np.linspace(-3, 4, 351))
  grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
  cell = (7 / 350) ** 2
  assert np.exp(mixture.log_density(grid)).sum() * cell == pytest.approx(1.0, abs=1e-3)


def test_mixture_rejects_bad_parameters():
  with pytest.raises(ValueError, match="variance must be positive"):
    gmm.Mixture(((0.0, 0.0),), variance=0.0)
  with pytest.raises(ValueError, match="shape"):
    gmm.Mixture((), variance=0.1)


def test_ring_means_are_evenly_spaced():
  means = np.array(gmm.ring_means(10, 2.0))
  np.testing.assert_allclose(np.linalg.norm(means, axis=1), 2.0)
  gaps = np.linalg.norm(means - np.roll(means, 1, axis=0), axis=1)
  np.testing.assert_allclose(gaps, 2 * 2.0 * np.sin(np.pi / 10))
  np.testing.assert_allclose(means[0], [2.0, 0.0])


def _steps(dataset, count):
  return [(a[:, 0].tolist(), b[:, 0].tolist()) for a, b in dataset.take(count).as_numpy_iterator()]


def test_batches_resume_where_they_stopped():
  examples_a = np.arange(10, dtype=np.float32)[:, None]
  examples_b = np.arange(7, dtype=np.float32)[:, None] + 100
  uninterrupted = _steps(pipeline.train_batches(examples_a, examples_b, 4, 3, 0), 9)
  resumed = _steps(pipeline.train_batches(examples_a, examples_b, 4, 3, 5), 4)
  assert resumed == uninterrupted[5:]


def test_batches_visit_every_example_each_epoch():
  examples = np.arange(12, dtype=np.float32)[:, None]
  stream = _steps(pipeline.train_batches(examples, examples, 4, 0, 0), 6)
  epochs_a = [sorted(sum((a for a, _ in stream[i:i + 3]), [])) for i in (0, 3)]
  assert epochs_a == [list(range(12))] * 2
  # Consecutive epochs and the two domains use different orders.
  assert stream[0][0] + stream[1][0] != stream[3][0] + stream[4][0]
  assert [a for a, _ in stream] != [b for _, b in stream]


def test_process_shares_make_the_global_batch():
  examples = np.arange(16, dtype=np.float32)[:, None]
  whole = _steps(pipeline.train_batches(examples, examples, 8, 1, 2), 3)
  shares = [_steps(pipeline.train_batches(examples, examples, 8, 1, 2, p, 2), 3) for p in (0, 1)]
  for step in range(3):
    assert shares[0][step][0] + shares[1][step][0] == whole[step][0]
    assert shares[0][step][1] + shares[1][step][1] == whole[step][1]


def test_images_are_scaled_to_model_range():
  images = np.array([0, 255, 51], np.uint8).reshape(3, 1, 1, 1)
  batch_a, _ = next(pipeline.train_batches(images, images, 3, 0, 0).as_numpy_iterator())
  assert batch_a.dtype == np.float32
  assert sorted(batch_a.ravel().tolist()) == pytest.approx([-1.0, -0.6, 1.0])


def test_batch_larger_than_domain_raises():
  with pytest.raises(ValueError, match="batch size 64 is larger than the domain's 10"):
    pipeline.train_batches(np.zeros((10, 2), np.float32), np.zeros((100, 2), np.float32),
                           64, 0, 0)
