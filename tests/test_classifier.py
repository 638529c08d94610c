"""Tests for crossdomain.evaluation.classifier: training, caching and batched inference.

Most tests train on tiny synthetic 16x16 images whose class is a visible
pattern. One test trains briefly on the real Fashion-MNIST files of Debian's
`dataset-fashion-mnist` package and fails when they are missing.
"""

import dataclasses
import datetime
import json
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
import tensorflow_datasets as tfds

from crossdomain.data import fashion_mnist
from crossdomain.evaluation import classifier, classifier_cache, evaluators

SIZE = 16
SHAPE = (SIZE, SIZE, 1)
NUM_CLASSES = 3
CLASS_NAMES = ("rows", "columns", "square")
SETTINGS = classifier.TrainSettings(steps=60, seed=0, batch_size=32)


def make_pattern_images(labels: np.ndarray, seed: int, size: int = SIZE) -> np.ndarray:
  """Return uint8 [N, size, size, 1] noise with a bright pattern per class.

  Class 0 has every fourth row bright, class 1 every fourth column, and
  class 2 a central square.
  """
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 80, (len(labels), size, size, 1)).astype(np.uint8)
  images[labels == 0, ::4, :, :] += 150
  images[labels == 1, :, ::4, :] += 150
  quarter = size // 4
  images[labels == 2, quarter:3 * quarter, quarter:3 * quarter, :] += 150
  return images


def make_split(num_examples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  labels = np.random.default_rng(seed).integers(0, NUM_CLASSES, num_examples)
  return make_pattern_images(labels, seed + 1), labels


@pytest.fixture(scope="module")
def toy_data():
  """Train and test splits of 300 and 90 synthetic 16x16 images."""
  return (*make_split(300, seed=0), *make_split(90, seed=10))


@pytest.fixture(scope="module")
def trained(toy_data):
  """Variables and test accuracy of a classifier trained on toy_data with SETTINGS."""
  return classifier.train_classifier(*toy_data, num_classes=NUM_CLASSES,
                                     **dataclasses.asdict(SETTINGS))


@pytest.fixture(scope="module")
def evaluator(trained):
  variables, test_accuracy = trained
  return classifier.Evaluator(classifier.Classifier(NUM_CLASSES), variables, SHAPE,
                              test_accuracy=test_accuracy)


def leaves_equal(tree_a, tree_b) -> bool:
  """Return whether two pytrees have the same structure and bitwise equal leaves."""
  if jax.tree.structure(tree_a) != jax.tree.structure(tree_b):
    return False
  return all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(tree_a), jax.tree.leaves(tree_b)))


class CountingTrainFn:
  """A train_fn that returns fixed results and records the settings of each call."""

  def __init__(self, variables, test_accuracy):
    self.result = (variables, test_accuracy)
    self.calls = []

  def __call__(self, settings):
    self.calls.append(settings)
    return self.result


def load_toy(cache_dir, train_fn, *, key="toy_3class_16x16x1", **overrides):
  """Call load_or_train with the toy request, changed by overrides."""
  request = dict(image_shape=SHAPE, num_classes=NUM_CLASSES, settings=SETTINGS,
                 class_names=CLASS_NAMES)
  request.update(overrides)
  return classifier_cache.load_or_train(cache_dir, key, train_fn, **request)


# Training.


def test_train_synthetic_high_accuracy(trained, evaluator, toy_data):
  _, _, test_images, test_labels = toy_data
  _, test_accuracy = trained

  predictions = evaluator.logits(classifier.scale_images(test_images)).argmax(axis=-1)

  assert test_accuracy >= 0.95
  assert np.mean(predictions == test_labels) == pytest.approx(test_accuracy)


def test_train_deterministic_for_seed(toy_data):
  def train(seed):
    return classifier.train_classifier(*toy_data, num_classes=NUM_CLASSES, steps=5,
                                       batch_size=16, seed=seed)

  variables, accuracy = train(seed=0)
  variables_again, accuracy_again = train(seed=0)
  variables_other, _ = train(seed=1)

  assert leaves_equal(variables, variables_again)
  assert accuracy == accuracy_again
  assert not leaves_equal(variables, variables_other)


def test_train_logs_progress(toy_data, monkeypatch, caplog):
  monkeypatch.setattr(classifier, "PROGRESS_SECONDS", 0.0)
  with caplog.at_level(logging.INFO):
    classifier.train_classifier(*toy_data, num_classes=NUM_CLASSES, steps=3, batch_size=16)
  lines = [record.getMessage() for record in caplog.records
           if record.getMessage().startswith("classifier step")]
  assert [line.split(":")[0] for line in lines] == ["classifier step 1/3", "classifier step 2/3"]
  assert all("steps/s" in line and "left" in line for line in lines)


def _logit_margins(evaluator, images) -> np.ndarray:
  """Return each image's largest logit minus its second largest."""
  logits = np.sort(evaluator.logits(classifier.scale_images(images)), axis=1)
  return logits[:, -1] - logits[:, -2]


def test_train_label_smoothing_bounds_the_logits(evaluator, toy_data):
  settings = dataclasses.replace(SETTINGS, label_smoothing=0.1)
  variables, test_accuracy = classifier.train_classifier(
      *toy_data, num_classes=NUM_CLASSES, **dataclasses.asdict(settings))
  smoothed = classifier.Evaluator(classifier.Classifier(NUM_CLASSES), variables, SHAPE)

  # The loss is smallest where the largest softmax output is 0.9 + 0.1 / 3
  # and each other one 0.1 / 3, a logit margin of log(28), about 3.3.
  assert test_accuracy >= 0.9
  assert np.max(_logit_margins(smoothed, toy_data[2])) < 5.0
  assert np.median(_logit_margins(evaluator, toy_data[2])) > 10.0


def test_train_batch_larger_than_dataset(toy_data):
  train_images, train_labels, test_images, test_labels = toy_data

  _, accuracy = classifier.train_classifier(
      train_images[:10], train_labels[:10], test_images, test_labels,
      num_classes=NUM_CLASSES, steps=2, batch_size=32)

  assert 0.0 <= accuracy <= 1.0


@pytest.mark.parametrize("change,message", [
    (dict(train_images=np.zeros((4, SIZE, SIZE, 1), np.float32)), "must be uint8"),
    (dict(train_images=np.zeros((4, 24, 24, 1), np.uint8)), "power of two"),
    (dict(train_images=np.zeros((4, 16, 8, 1), np.uint8)), "size, size, channels"),
    (dict(train_labels=np.array([0, 1, 2, 3])), r"in \[0, 2\]"),
    (dict(train_labels=np.array([0, 1, 2])), "to match the images"),
    (dict(test_images=np.zeros((2, 32, 32, 1), np.uint8)), "expected the same shape"),
    (dict(test_images=np.zeros((0, SIZE, SIZE, 1), np.uint8),
          test_labels=np.zeros(0, np.int64)), "are empty"),
])
def test_train_rejects_invalid_input(change, message):
  arrays = dict(train_images=np.zeros((4, SIZE, SIZE, 1), np.uint8),
                train_labels=np.array([0, 1, 2, 0]),
                test_images=np.zeros((2, SIZE, SIZE, 1), np.uint8),
                test_labels=np.array([0, 1]))
  arrays.update(change)

  with pytest.raises(ValueError, match=message):
    classifier.train_classifier(**arrays, num_classes=NUM_CLASSES, steps=1)


@pytest.mark.parametrize("label_smoothing", [-0.1, 1.0])
def test_train_rejects_label_smoothing_outside_range(toy_data, label_smoothing):
  with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
    classifier.train_classifier(*toy_data, num_classes=NUM_CLASSES, steps=1,
                                label_smoothing=label_smoothing)


# Evaluator.


def test_evaluator_output_shapes(evaluator, toy_data):
  images = classifier.scale_images(toy_data[2][:5])

  logits, features = evaluator.logits_and_features(images)

  assert logits.shape == (5, NUM_CLASSES)
  assert features.shape == (5, evaluator.module.feature_dim)
  assert evaluator.module.feature_dim == 128
  assert logits.dtype == np.float32
  assert features.dtype == np.float32
  assert isinstance(logits, np.ndarray)
  np.testing.assert_array_equal(evaluator.logits(images), logits)
  np.testing.assert_array_equal(evaluator.features(images), features)


def test_evaluator_features_are_relu_outputs(evaluator, toy_data):
  features = evaluator.features(classifier.scale_images(toy_data[2]))

  assert features.min() >= 0.0
  assert features.max() > 0.0


def test_evaluator_padding_matches_one_batch(evaluator, toy_data):
  images = classifier.scale_images(toy_data[2][:20])
  small_batches = dataclasses.replace(evaluator, batch_size=7)  # batches of 7, 7 and 6
  one_batch = dataclasses.replace(evaluator, batch_size=64)

  logits_small, features_small = small_batches.logits_and_features(images)
  logits_one, features_one = one_batch.logits_and_features(images)

  np.testing.assert_allclose(logits_small, logits_one, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(features_small, features_one, rtol=1e-5, atol=1e-5)


def test_evaluator_padding_matches_single_images(evaluator, toy_data):
  images = classifier.scale_images(toy_data[2][:3])
  batched = dataclasses.replace(evaluator, batch_size=4)

  logits = batched.logits(images)
  single = np.concatenate([batched.logits(image[np.newaxis]) for image in images])

  np.testing.assert_allclose(logits, single, rtol=1e-5, atol=1e-5)


def test_evaluator_accepts_bfloat16_jax_images(evaluator):
  # Values exact in bfloat16, so both inputs are the same images.
  images = np.linspace(-1.0, 1.0, 2 * SIZE * SIZE, dtype=np.float32).reshape(2, *SHAPE)
  images = np.round(images * 8) / 8

  logits_bfloat16 = evaluator.logits(jnp.asarray(images, jnp.bfloat16))

  np.testing.assert_array_equal(logits_bfloat16, evaluator.logits(images))


def test_evaluator_accepts_empty_batch(evaluator):
  logits, features = evaluator.logits_and_features(np.zeros((0, *SHAPE), np.float32))

  assert logits.shape == (0, NUM_CLASSES)
  assert features.shape == (0, 128)


@pytest.mark.parametrize("images,message", [
    (np.zeros((2, *SHAPE), np.uint8), "scale_images"),
    (np.zeros((2, 32, 32, 1), np.float32), r"shape \[N, 16, 16, 1\]"),
    (np.zeros((SIZE, SIZE, 1), np.float32), r"shape \[N, 16, 16, 1\]"),
    (np.full((2, *SHAPE), 255.0, np.float32), r"in \[-1, 1\]"),
])
def test_evaluator_rejects_invalid_images(evaluator, images, message):
  with pytest.raises(ValueError, match=message):
    evaluator.logits(images)


def test_scale_images_matches_model_range():
  images = np.array([0, 127, 255], np.uint8).reshape(1, 3, 1, 1)

  scaled = classifier.scale_images(images)

  assert scaled.dtype == np.float32
  np.testing.assert_allclose(scaled.ravel(), [-1.0, 127 / 127.5 - 1.0, 1.0])


# Cache.


def test_cache_round_trip(tmp_path, trained, toy_data):
  train_fn = CountingTrainFn(*trained)
  images = classifier.scale_images(toy_data[2])

  first = load_toy(tmp_path, train_fn)
  second = load_toy(tmp_path, train_fn)

  assert train_fn.calls == [SETTINGS]
  assert leaves_equal(first.variables, second.variables)
  np.testing.assert_array_equal(first.logits(images), second.logits(images))
  np.testing.assert_array_equal(first.features(images), second.features(images))
  assert second.class_names == CLASS_NAMES
  assert second.test_accuracy == trained[1]
  assert second.image_shape == SHAPE


def test_cache_info_json(tmp_path, trained):
  load_toy(tmp_path, CountingTrainFn(*trained))
  cache_path = tmp_path / "toy_3class_16x16x1"

  info = json.loads((cache_path / classifier_cache.INFO_FILENAME).read_text())

  assert sorted(os.listdir(cache_path)) == [classifier_cache.INFO_FILENAME,
                                            classifier_cache.VARIABLES_FILENAME]
  assert info["key"] == "toy_3class_16x16x1"
  assert info["image_shape"] == [SIZE, SIZE, 1]
  assert info["num_classes"] == NUM_CLASSES
  assert info["class_names"] == list(CLASS_NAMES)
  assert info["test_accuracy"] == trained[1]
  assert info["training"] == dict(steps=60, seed=0, batch_size=32, learning_rate=2e-3,
                                  label_smoothing=0.0)
  assert info["model"] == dict(base_features=32, max_features=256, feature_dim=128)
  assert info["training_seconds"] >= 0
  date = datetime.datetime.fromisoformat(info["date"])
  assert abs(datetime.datetime.now(datetime.timezone.utc) - date).total_seconds() < 600


@pytest.mark.parametrize("overrides,message", [
    (dict(num_classes=4, class_names=None),
     "num_classes is 3 in the cache but 4 was requested"),
    (dict(image_shape=(32, 32, 1)),
     r"image_shape is \[16, 16, 1\] in the cache but \[32, 32, 1\] was requested"),
    (dict(class_names=("a", "b", "c")), "class_names is"),
    (dict(settings=dataclasses.replace(SETTINGS, steps=61)), "training is"),
])
def test_cache_mismatch_raises(tmp_path, trained, overrides, message):
  load_toy(tmp_path, CountingTrainFn(*trained))
  train_fn = CountingTrainFn(*trained)

  with pytest.raises(classifier_cache.CacheMismatchError, match=message) as error:
    load_toy(tmp_path, train_fn, **overrides)

  assert str(tmp_path / "toy_3class_16x16x1") in str(error.value)
  assert train_fn.calls == []


def test_cache_without_label_smoothing_loads_as_unsmoothed(tmp_path, trained):
  # Caches written before label smoothing existed do not record it.
  load_toy(tmp_path, CountingTrainFn(*trained))
  info_path = tmp_path / "toy_3class_16x16x1" / classifier_cache.INFO_FILENAME
  info = json.loads(info_path.read_text())
  del info["training"]["label_smoothing"]
  info_path.write_text(json.dumps(info))
  train_fn = CountingTrainFn(*trained)

  load_toy(tmp_path, train_fn)
  with pytest.raises(classifier_cache.CacheMismatchError, match="'label_smoothing': 0.0"):
    load_toy(tmp_path, train_fn, settings=dataclasses.replace(SETTINGS, label_smoothing=0.1))

  assert train_fn.calls == []


def test_cache_ignores_leftover_temp_folder(tmp_path, trained):
  # What a process killed during _save leaves: a hidden folder with a
  # complete-looking info.json but truncated variables.
  leftover = tmp_path / ".toy_3class_16x16x1.tmp-killed"
  leftover.mkdir()
  (leftover / classifier_cache.VARIABLES_FILENAME).write_bytes(b"PK\x03\x04")
  (leftover / classifier_cache.INFO_FILENAME).write_text("{}")
  train_fn = CountingTrainFn(*trained)

  evaluator = load_toy(tmp_path, train_fn)
  reloaded = load_toy(tmp_path, train_fn)

  assert len(train_fn.calls) == 1
  assert leaves_equal(evaluator.variables, reloaded.variables)


def test_cache_orbax_folder_loads(tmp_path, trained):
  evaluator = load_toy(tmp_path, CountingTrainFn(*trained))
  # Earlier versions saved the variables as an orbax folder.
  cache_path = tmp_path / "toy_3class_16x16x1"
  (cache_path / classifier_cache.VARIABLES_FILENAME).unlink()
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(cache_path / classifier_cache.VARIABLES_DIRNAME, evaluator.variables)
  train_fn = CountingTrainFn(*trained)

  reloaded = load_toy(tmp_path, train_fn)

  assert train_fn.calls == []
  assert leaves_equal(evaluator.variables, reloaded.variables)


def test_cache_failed_save_leaves_nothing(tmp_path, trained, monkeypatch):
  def fail_dump(*args, **kwargs):
    raise OSError("disk full")

  monkeypatch.setattr(classifier_cache.json, "dump", fail_dump)
  with pytest.raises(OSError, match="disk full"):
    load_toy(tmp_path, CountingTrainFn(*trained))
  monkeypatch.undo()

  assert os.listdir(tmp_path) == []
  train_fn = CountingTrainFn(*trained)
  load_toy(tmp_path, train_fn)
  assert len(train_fn.calls) == 1


def test_cache_incomplete_folder_raises(tmp_path, trained):
  (tmp_path / "toy_3class_16x16x1").mkdir()
  train_fn = CountingTrainFn(*trained)

  with pytest.raises(classifier_cache.IncompleteCacheError,
                     match="toy_3class_16x16x1 is incomplete"):
    load_toy(tmp_path, train_fn)

  assert train_fn.calls == []


def test_cache_invalid_info_json_raises(tmp_path, trained):
  load_toy(tmp_path, CountingTrainFn(*trained))
  (tmp_path / "toy_3class_16x16x1" / classifier_cache.INFO_FILENAME).write_text('{"num_cl')

  with pytest.raises(classifier_cache.IncompleteCacheError, match="invalid info.json"):
    load_toy(tmp_path, CountingTrainFn(*trained))


@pytest.mark.parametrize("key", ["", ".hidden", "a/b", "../escape", "with space"])
def test_cache_rejects_invalid_key(tmp_path, trained, key):
  with pytest.raises(ValueError, match="invalid cache key"):
    load_toy(tmp_path, CountingTrainFn(*trained), key=key)


def test_cache_rejects_wrong_class_name_count(tmp_path, trained):
  with pytest.raises(ValueError, match="2 class names for 3 classes"):
    load_toy(tmp_path, CountingTrainFn(*trained), class_names=("a", "b"))


# Ready-made evaluators.


def test_domain_pair_evaluator(tmp_path, caplog):
  # Unequal domain sizes exercise the oversampling of the smaller domain.
  images_a = make_pattern_images(np.zeros(150, np.int64), seed=0)
  images_b = make_pattern_images(np.full(50, 2), seed=1)
  test_a = make_pattern_images(np.zeros(30, np.int64), seed=2)
  test_b = make_pattern_images(np.full(20, 2), seed=3)

  with caplog.at_level(logging.INFO):
    evaluator = evaluators.domain_pair_evaluator(
        tmp_path, "rows_vs_square_16x16x1", images_a, images_b, test_a, test_b,
        class_names=("rows", "square"), steps=30, batch_size=32)
  predictions_a = evaluator.logits(classifier.scale_images(test_a)).argmax(axis=-1)
  predictions_b = evaluator.logits(classifier.scale_images(test_b)).argmax(axis=-1)
  info = json.loads((tmp_path / "rows_vs_square_16x16x1" / "info.json").read_text())

  assert evaluator.test_accuracy >= 0.95
  assert np.mean(predictions_a == 0) >= 0.95
  assert np.mean(predictions_b == 1) >= 0.95
  assert evaluator.class_names == ("rows", "square")
  assert info["num_classes"] == 2
  assert info["training"]["steps"] == 30
  assert info["training"]["label_smoothing"] == evaluators.DOMAIN_PAIR_LABEL_SMOOTHING
  # The log explains why the classifier's image count is twice the larger domain's.
  assert "have 150 and 50 training images; the classifier draws 150 of each" in caplog.text
  assert "Training a 2-class classifier on 300 images" in caplog.text


def test_domain_pair_evaluator_rejects_shape_mismatch(tmp_path):
  images = np.zeros((4, SIZE, SIZE, 1), np.uint8)

  with pytest.raises(ValueError, match="one shape"):
    evaluators.domain_pair_evaluator(tmp_path, "pair", images, images, images,
                                     np.zeros((4, SIZE, SIZE, 3), np.uint8))


def test_domain_pair_evaluator_rejects_empty_domain(tmp_path):
  images = np.zeros((4, SIZE, SIZE, 1), np.uint8)

  with pytest.raises(ValueError, match="images_b is empty"):
    evaluators.domain_pair_evaluator(tmp_path, "pair", images, images[:0], images, images)


def test_fashion_mnist_evaluator_mock_data(tmp_path):
  # mock_data replaces the dataset with random images and labels, so this
  # checks the wiring and the cache, not the accuracy.
  cache_dir = tmp_path / "cache"
  with tfds.testing.mock_data(num_examples=40):
    evaluator = evaluators.fashion_mnist_evaluator(
        cache_dir, local_dir=tmp_path / "no_idx_files", tfds_data_dir=tmp_path / "tfds", steps=2)
  key = "fashion_mnist_10class_32x32x1_2steps_seed0"
  info = json.loads((cache_dir / key / "info.json").read_text())

  assert evaluator.image_shape == (32, 32, 1)
  assert evaluator.class_names == fashion_mnist.CLASS_NAMES
  assert evaluator.logits(np.zeros((3, 32, 32, 1), np.float32)).shape == (3, 10)
  assert info["class_names"] == list(fashion_mnist.CLASS_NAMES)
  assert info["training"]["steps"] == 2

  # The second call loads the cache, so it reads no data.
  reloaded = evaluators.fashion_mnist_evaluator(
      cache_dir, local_dir=tmp_path / "no_idx_files", tfds_data_dir=tmp_path / "tfds", steps=2)
  assert leaves_equal(evaluator.variables, reloaded.variables)


def test_real_fashion_mnist_short_training():
  local_dir = fashion_mnist.DEFAULT_LOCAL_DIR
  missing = fashion_mnist.missing_local_files(local_dir)
  if missing:
    pytest.fail(f"Fashion-MNIST files {missing} not found in {local_dir}. "
                "Install them with `apt-get install dataset-fashion-mnist`.")

  # Reading the IDX files directly takes about a second, while preparing
  # the TFDS dataset as fashion_mnist_evaluator does takes about 20 s.
  def read(images_filename, labels_filename, count):
    images = fashion_mnist.read_idx_images(os.path.join(local_dir, images_filename))
    labels = fashion_mnist.read_idx_labels(os.path.join(local_dir, labels_filename))
    return fashion_mnist.pad_images(images[:count]), labels[:count]

  train_images, train_labels = read(fashion_mnist.TRAIN_IMAGES_FILENAME,
                                    fashion_mnist.TRAIN_LABELS_FILENAME, 60_000)
  test_images, test_labels = read(fashion_mnist.TEST_IMAGES_FILENAME,
                                  fashion_mnist.TEST_LABELS_FILENAME, 2_000)

  _, accuracy = classifier.train_classifier(train_images, train_labels, test_images,
                                            test_labels, num_classes=10, steps=200,
                                            batch_size=64)

  assert accuracy > 0.75
