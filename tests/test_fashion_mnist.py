"""Tests for crossdomain.data.fashion_mnist.

The tests on real data read the Debian package `dataset-fashion-mnist` and fail
when it is missing, because CI installs it. No test downloads anything: the
download of the stock TFDS builder is either mocked by `tfds.testing.mock_data`
or replaced by a function that raises.
"""

import collections
import gzip
import os
import pickle
import shutil
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download.download_manager import (
    NonMatchingChecksumError,
)

from crossdomain.data import fashion_mnist

REAL_DIR = fashion_mnist.DEFAULT_LOCAL_DIR
STOCK_BUILDER = tfds.image_classification.FashionMNIST


def write_idx(path, array, magic):
  """Write a uint8 array as a gzipped IDX file."""
  header = np.array([magic, *array.shape], dtype=">u4").tobytes()
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


def write_fake_idx_folder(folder, num_train, num_test):
  """Write four small IDX files with random content and return their arrays."""
  rng = np.random.default_rng(0)
  arrays = {}
  for split, num, images_name, labels_name in (
      (
          "train",
          num_train,
          fashion_mnist.TRAIN_IMAGES_FILENAME,
          fashion_mnist.TRAIN_LABELS_FILENAME,
      ),
      (
          "test",
          num_test,
          fashion_mnist.TEST_IMAGES_FILENAME,
          fashion_mnist.TEST_LABELS_FILENAME,
      ),
  ):
    images = rng.integers(0, 256, size=(num, 28, 28), dtype=np.uint8)
    labels = np.arange(num, dtype=np.uint8) % 10
    write_idx(folder / images_name, images, 0x803)
    write_idx(folder / labels_name, labels, 0x801)
    arrays[split] = (images, labels)
  return arrays


def examples_counter(images, labels):
  """Count (image bytes, label) pairs, so that two splits compare regardless of order."""
  return collections.Counter(
      (image.tobytes(), int(label)) for image, label in zip(images, labels)
  )


def raise_download_error(error):
  def download_and_prepare(self, *args, **kwargs):
    raise error

  return download_and_prepare


def fail_if_called(*args, **kwargs):
  raise AssertionError("the dataset was prepared again")


@pytest.fixture(scope="module")
def real_dir():
  """The folder of Debian's dataset-fashion-mnist package, or a test failure."""
  missing = fashion_mnist.missing_local_files(REAL_DIR)
  if missing:
    pytest.fail(
        f"Fashion-MNIST files {missing} not found in {REAL_DIR}. "
        "Install them with `apt-get install dataset-fashion-mnist`."
    )
  return REAL_DIR


@pytest.fixture(scope="module")
def prepared_data_dir(real_dir, tmp_path_factory):
  """A TFDS data directory with fashion_mnist prepared from the Debian files."""
  data_dir = tmp_path_factory.mktemp("tfds")
  start = time.perf_counter()
  fashion_mnist.prepare_builder(local_dir=real_dir, tfds_data_dir=data_dir)
  print(f"Prepared fashion_mnist from {real_dir} in {time.perf_counter() - start:.1f} s")
  return data_dir


# Tests with tfds.testing.mock_data, which replaces download_and_prepare with a
# no-op and as_dataset with random examples.


@pytest.mark.parametrize("local_files", ["none", "real"])
def test_load_domains_mock_data(local_files, tmp_path, request):
  if local_files == "real":
    local_dir = request.getfixturevalue("real_dir")
  else:
    local_dir = tmp_path / "empty"
    local_dir.mkdir()
  tfds_data_dir = tmp_path / "tfds"

  with tfds.testing.mock_data(num_examples=200):
    domains = fashion_mnist.load_domains(
        "train", local_dir=local_dir, tfds_data_dir=tfds_data_dir
    )

  assert domains.images_a.dtype == np.uint8
  assert domains.images_b.dtype == np.uint8
  assert domains.labels_a.dtype == np.int64
  assert domains.images_a.ndim == 4
  assert domains.images_a.shape[1:] == (32, 32, 1)
  assert domains.images_b.shape[1:] == (32, 32, 1)
  assert len(domains.images_a) > 0
  assert len(domains.images_b) > 0
  assert len(domains.labels_a) == len(domains.images_a)
  assert set(domains.labels_a.tolist()) <= set(fashion_mnist.SHOE_CLASSES)


@pytest.mark.parametrize(
    ("local_files", "expected_builder"),
    [("none", STOCK_BUILDER), ("real", fashion_mnist.LocalFashionMNIST)],
)
def test_prepare_builder_mock_data_path(local_files, expected_builder, tmp_path, request):
  if local_files == "real":
    local_dir = request.getfixturevalue("real_dir")
  else:
    local_dir = tmp_path

  with tfds.testing.mock_data(num_examples=10):
    builder = fashion_mnist.prepare_builder(local_dir=local_dir, tfds_data_dir=tmp_path)

  assert type(builder) is expected_builder
  assert builder.name == "fashion_mnist"


def test_load_split_mock_data(tmp_path):
  with tfds.testing.mock_data(num_examples=30):
    images, labels = fashion_mnist.load_split(
        "test", local_dir=tmp_path, tfds_data_dir=tmp_path
    )

  assert images.shape == (30, 28, 28, 1)
  assert images.dtype == np.uint8
  assert labels.shape == (30,)
  assert labels.dtype == np.int64


# Tests on small IDX files written by the test.


def test_local_builder_reads_fake_idx(tmp_path):
  local_dir = tmp_path / "idx"
  local_dir.mkdir()
  arrays = write_fake_idx_folder(local_dir, num_train=40, num_test=20)

  for split in ("train", "test"):
    images, labels = fashion_mnist.load_split(
        split, local_dir=local_dir, tfds_data_dir=tmp_path / "tfds"
    )
    expected_images, expected_labels = arrays[split]
    assert images.shape == (len(expected_images), 28, 28, 1)
    assert examples_counter(images[..., 0], labels) == examples_counter(
        expected_images, expected_labels
    )


def test_local_builder_matches_stock_metadata(tmp_path):
  local_dir = tmp_path / "idx"
  local_dir.mkdir()
  write_fake_idx_folder(local_dir, num_train=10, num_test=10)
  data_dir = tmp_path / "tfds"

  local_builder = fashion_mnist.prepare_builder(local_dir=local_dir, tfds_data_dir=data_dir)
  stock_builder = tfds.builder("fashion_mnist", data_dir=data_dir)

  assert local_builder.name == STOCK_BUILDER.name
  assert local_builder.version == stock_builder.version
  assert local_builder.data_dir == stock_builder.data_dir
  assert stock_builder.is_prepared()
  assert stock_builder.info.features["label"].names == list(fashion_mnist.CLASS_NAMES)
  assert stock_builder.info.splits["train"].num_examples == 10


def test_local_builder_pickle_keeps_folder(tmp_path):
  local_dir = tmp_path / "idx"
  local_dir.mkdir()
  write_fake_idx_folder(local_dir, num_train=10, num_test=10)
  builder = fashion_mnist.LocalFashionMNIST(local_dir=local_dir, data_dir=tmp_path / "tfds")

  restored = pickle.loads(pickle.dumps(builder))
  restored.download_and_prepare()

  assert restored.is_prepared()
  assert restored.info.splits["test"].num_examples == 10


def test_local_builder_not_registered():
  assert tfds.builder_cls("fashion_mnist") is STOCK_BUILDER


def test_read_idx_rejects_wrong_magic(tmp_path):
  path = tmp_path / "labels.gz"
  write_idx(path, np.zeros(5, dtype=np.uint8), 0x801)

  with pytest.raises(ValueError, match="magic number"):
    fashion_mnist.read_idx_images(path)


def test_read_idx_rejects_truncated_file(tmp_path):
  path = tmp_path / "images.gz"
  header = np.array([0x803, 3, 28, 28], dtype=">u4").tobytes()
  with gzip.open(path, "wb") as f:
    f.write(header + bytes(28 * 28 * 2))

  with pytest.raises(ValueError, match="expected 2368"):
    fashion_mnist.read_idx_images(path)


def test_read_idx_rejects_out_of_range_label(tmp_path):
  path = tmp_path / "labels.gz"
  write_idx(path, np.array([0, 10], dtype=np.uint8), 0x801)

  with pytest.raises(ValueError, match="label 10 is out of range"):
    fashion_mnist.read_idx_labels(path)


# Errors.


def test_load_split_rejects_invalid_split(tmp_path):
  with pytest.raises(ValueError, match="'validation'"):
    fashion_mnist.load_split("validation", local_dir=tmp_path, tfds_data_dir=tmp_path)


def test_partial_local_folder_names_missing_files(real_dir, tmp_path):
  local_dir = tmp_path / "partial"
  local_dir.mkdir()
  for filename in (fashion_mnist.TRAIN_IMAGES_FILENAME, fashion_mnist.TRAIN_LABELS_FILENAME):
    shutil.copy(os.path.join(real_dir, filename), local_dir / filename)

  with pytest.raises(fashion_mnist.FashionMnistNotFoundError) as error_info:
    fashion_mnist.load_domains("train", local_dir=local_dir, tfds_data_dir=tmp_path / "tfds")

  message = str(error_info.value)
  assert str(local_dir) in message
  missing = f"{fashion_mnist.TEST_IMAGES_FILENAME}, {fashion_mnist.TEST_LABELS_FILENAME}"
  assert f"missing {missing}" in message
  assert isinstance(error_info.value, FileNotFoundError)


@pytest.mark.parametrize(
    "download_error",
    [
        ConnectionError("Name or service not known"),
        tfds.download.DownloadError("Failed to get url"),
        NonMatchingChecksumError("Artifact has wrong checksum"),
    ],
    ids=type,
)
def test_offline_without_local_files_raises(download_error, tmp_path, monkeypatch):
  monkeypatch.setattr(STOCK_BUILDER, "download_and_prepare", raise_download_error(download_error))
  local_dir = tmp_path / "empty"
  local_dir.mkdir()

  with pytest.raises(fashion_mnist.FashionMnistNotFoundError) as error_info:
    fashion_mnist.load_domains("train", local_dir=local_dir, tfds_data_dir=tmp_path / "tfds")

  message = str(error_info.value)
  assert str(local_dir) in message
  assert "apt-get install dataset-fashion-mnist" in message
  assert "--config.data.fashion_mnist_dir=DIR" in message
  assert "network access" in message
  assert str(download_error) in message
  assert error_info.value.__cause__ is download_error


def test_offline_reads_prepared_without_local_files(prepared_data_dir, tmp_path, monkeypatch):
  monkeypatch.setattr(STOCK_BUILDER, "download_and_prepare", fail_if_called)

  images, labels = fashion_mnist.load_split(
      "test", local_dir=tmp_path, tfds_data_dir=prepared_data_dir
  )

  assert images.shape == (10000, 28, 28, 1)


# Tests on the real Debian files, prepared once per module.


@pytest.mark.parametrize(
    ("split", "num_per_shoe_class", "num_bags"),
    [("train", 6000, 6000), ("test", 1000, 1000)],
)
def test_real_domains_counts(split, num_per_shoe_class, num_bags, real_dir, prepared_data_dir):
  domains = fashion_mnist.load_domains(split, local_dir=real_dir, tfds_data_dir=prepared_data_dir)

  assert domains.images_a.shape == (3 * num_per_shoe_class, 32, 32, 1)
  assert domains.labels_a.shape == (3 * num_per_shoe_class,)
  assert domains.images_b.shape == (num_bags, 32, 32, 1)
  for shoe_class in fashion_mnist.SHOE_CLASSES:
    assert np.sum(domains.labels_a == shoe_class) == num_per_shoe_class
  assert set(domains.labels_a.tolist()) == set(fashion_mnist.SHOE_CLASSES)


def test_real_domains_pixels(real_dir, prepared_data_dir):
  domains = fashion_mnist.load_domains(
      "test", local_dir=real_dir, tfds_data_dir=prepared_data_dir
  )

  for images in (domains.images_a, domains.images_b):
    assert images.dtype == np.uint8
    assert images.min() == 0
    assert images.max() == 255
    assert not images[:, :2].any()
    assert not images[:, -2:].any()
    assert not images[:, :, :2].any()
    assert not images[:, :, -2:].any()
    assert images[:, 2:-2, 2:-2].any()


def test_real_domains_match_split(real_dir, prepared_data_dir):
  images, labels = fashion_mnist.load_split(
      "test", local_dir=real_dir, tfds_data_dir=prepared_data_dir
  )
  domains = fashion_mnist.load_domains(
      "test", local_dir=real_dir, tfds_data_dir=prepared_data_dir
  )

  is_shoe = np.isin(labels, fashion_mnist.SHOE_CLASSES)
  np.testing.assert_array_equal(domains.images_a[:, 2:-2, 2:-2], images[is_shoe])
  np.testing.assert_array_equal(domains.labels_a, labels[is_shoe])
  is_bag = labels == fashion_mnist.BAG_CLASS
  np.testing.assert_array_equal(domains.images_b[:, 2:-2, 2:-2], images[is_bag])


def test_real_split_matches_idx_files(real_dir, prepared_data_dir):
  images, labels = fashion_mnist.load_split(
      "test", local_dir=real_dir, tfds_data_dir=prepared_data_dir
  )
  expected_images = fashion_mnist.read_idx_images(
      os.path.join(real_dir, fashion_mnist.TEST_IMAGES_FILENAME)
  )
  expected_labels = fashion_mnist.read_idx_labels(
      os.path.join(real_dir, fashion_mnist.TEST_LABELS_FILENAME)
  )

  assert images.shape == (10000, 28, 28, 1)
  assert labels.dtype == np.int64
  assert examples_counter(images, labels) == examples_counter(expected_images, expected_labels)


def test_real_prepared_reused(real_dir, prepared_data_dir, monkeypatch):
  info_path = prepared_data_dir / "fashion_mnist" / "3.0.1" / "dataset_info.json"
  modified_before = info_path.stat().st_mtime_ns
  monkeypatch.setattr(fashion_mnist.LocalFashionMNIST, "_split_generators", fail_if_called)
  monkeypatch.setattr(STOCK_BUILDER, "download_and_prepare", fail_if_called)

  domains = fashion_mnist.load_domains(
      "train", local_dir=real_dir, tfds_data_dir=prepared_data_dir
  )

  assert len(domains.images_a) == 18000
  assert info_path.stat().st_mtime_ns == modified_before


def test_real_prepared_readable_by_stock_builder(prepared_data_dir):
  builder = tfds.builder("fashion_mnist", data_dir=prepared_data_dir)

  assert type(builder) is STOCK_BUILDER
  assert builder.is_prepared()
  assert builder.info.splits["train"].num_examples == 60000
  assert builder.info.splits["test"].num_examples == 10000
