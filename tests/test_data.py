"""Gaussian mixture sampling and the resumable tf.data batches."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from configs import gmm as gmm_config
from crossdomain import data as data_lib
from crossdomain.data import gmm, image_folders, pipeline
from crossdomain.errors import UserInputError


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


@pytest.mark.parametrize("field", ["num_train", "num_test"])
def test_mixture_domains_need_examples(field):
  config = gmm_config.get_config().data
  config[field] = 0
  with pytest.raises(UserInputError, match=f"config.data.{field} must be positive, got 0"):
    data_lib.load(config, seed=0)


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


class IndexSource(pipeline.FileSource):
  """Vectors [index, index] that exist only as strings until they are decoded."""

  def __init__(self, count):
    self.count = count

  def __len__(self):
    return self.count

  @property
  def example_shape(self):
    return (2,)

  def fetch(self, indices):
    return tf.strings.as_string(indices)

  def decode(self, stored):
    value = tf.strings.to_number(stored, tf.float32)
    return tf.stack([value, value])


def _write_constant_pngs(folder, count):
  """Write 4x4 grayscale PNGs whose pixels all equal 10 * (their index) and return the paths."""
  paths = []
  for index in range(count):
    path = folder / f"{index:03d}.png"
    Image.fromarray(np.full((4, 4), 10 * index, np.uint8)).save(path)
    paths.append(str(path))
  return paths


def test_file_source_batches_match_in_memory_batches():
  in_memory = np.arange(10, dtype=np.float32)[:, None].repeat(2, axis=1)
  expected = _steps(pipeline.train_batches(in_memory, in_memory + 100, 4, 3, 0), 7)
  from_files = _steps(pipeline.train_batches(IndexSource(10), in_memory + 100, 4, 3, 0), 7)
  assert from_files == expected


def _image_steps(dataset, count):
  """Return the top-left pixel of each image, mapped back to the uint8 value it was stored as."""
  def stored_values(images):
    return np.rint((images[:, 0, 0, 0] + 1.0) * 127.5).tolist()

  return [(stored_values(a), stored_values(b)) for a, b in dataset.take(count).as_numpy_iterator()]


def test_file_source_resumes_where_it_stopped(tmp_path):
  source = image_folders.ImageFiles(_write_constant_pngs(tmp_path, 10), image_size=4, channels=1)
  uninterrupted = _image_steps(pipeline.train_batches(source, source, 4, 5, 0), 9)
  resumed = _image_steps(pipeline.train_batches(source, source, 4, 5, 6), 3)
  assert resumed == uninterrupted[6:]
  # The images are those that the in-memory pipeline picks for the same steps.
  in_memory = np.repeat(10 * np.arange(10, dtype=np.uint8), 16).reshape(10, 4, 4, 1)
  assert uninterrupted == _image_steps(pipeline.train_batches(in_memory, in_memory, 4, 5, 0), 9)


def test_file_source_process_shares_make_the_global_batch():
  source = IndexSource(16)
  whole = _steps(pipeline.train_batches(source, source, 8, 1, 2), 3)
  shares = [_steps(pipeline.train_batches(source, source, 8, 1, 2, p, 2), 3) for p in (0, 1)]
  for step in range(3):
    assert shares[0][step][0] + shares[1][step][0] == whole[step][0]
    assert shares[0][step][1] + shares[1][step][1] == whole[step][1]


def test_file_source_smaller_than_batch_raises():
  with pytest.raises(ValueError, match="batch size 8 is larger than the domain's 5"):
    pipeline.train_batches(IndexSource(5), IndexSource(100), 8, 0, 0)


def test_decode_examples_keeps_index_order():
  decoded = pipeline.decode_examples(IndexSource(600), np.array([599, 3, 300]))
  assert decoded[:, 0].tolist() == [599.0, 3.0, 300.0]
  assert len(pipeline.decode_examples(IndexSource(600))) == 600


def test_center_crop_and_resize_keeps_the_center():
  # A 4x8 image whose middle 4x4 square is 200 and whose sides are 0.
  image = np.zeros((4, 8, 1), np.uint8)
  image[:, 2:6] = 200
  cropped = pipeline.center_crop_and_resize(tf.constant(image), 2).numpy()
  assert cropped.shape == (2, 2, 1)
  assert cropped.dtype == np.uint8
  assert cropped.ravel().tolist() == [200] * 4


def test_center_crop_and_resize_enlarges_and_keeps_size():
  image = np.arange(16, dtype=np.uint8).reshape(4, 4, 1) * 10
  same = pipeline.center_crop_and_resize(tf.constant(image), 4).numpy()
  np.testing.assert_array_equal(same, image)
  larger = pipeline.center_crop_and_resize(tf.constant(image), 8).numpy()
  assert larger.shape == (8, 8, 1)
  assert larger.min() >= image.min()
  assert larger.max() <= image.max()


def _smooth_jpeg(height, width):
  """Return a JPEG of a smooth RGB gradient and the pixels it was encoded from."""
  rows = np.linspace(0, 255, height)[:, None, None]
  columns = np.linspace(0, 255, width)[None, :, None]
  pixels = np.concatenate([rows + 0 * columns, 0 * rows + columns, (rows + columns) / 2], axis=2)
  pixels = pixels.astype(np.uint8)
  return tf.io.encode_jpeg(pixels, quality=95), pixels


@pytest.mark.parametrize("min_side, expected_side", [(200, 256), (128, 128), (64, 64), (16, 32)])
def test_decode_jpeg_window_shrinks_while_decoding(min_side, expected_side):
  jpeg, _ = _smooth_jpeg(256, 512)
  right_half = pipeline.decode_jpeg_window(jpeg, tf.constant([0, 256, 256, 256]), min_side)
  assert right_half.shape == (expected_side, expected_side, 3)


def test_decode_jpeg_window_matches_full_decode():
  jpeg, pixels = _smooth_jpeg(256, 512)
  right_half = pipeline.decode_jpeg_window(jpeg, tf.constant([0, 256, 256, 256]), 64)
  expected = tf.image.resize(pixels[:, 256:].astype(np.float32), (64, 64), method="area")
  assert np.abs(right_half.numpy().astype(np.float32) - expected.numpy()).mean() < 3.0


def test_decode_jpeg_window_of_odd_sized_image():
  # 101x153 pixels: the scaled sizes round up, and the window must stay inside them.
  jpeg, _ = _smooth_jpeg(101, 153)
  window = tf.constant([0, 26, 101, 101])
  for min_side in (8, 13, 26, 51, 101):
    image = pipeline.decode_jpeg_window(jpeg, window, min_side)
    assert min(image.shape[:2]) >= min_side
