"""Image classifiers trained on real data and cached on disk, used to evaluate translators.

A small CNN is trained on real images of known classes. Its logits show which
class a translated image looks like, and its penultimate features feed the
Fréchet distance, KID and linear probes. Nothing is downloaded: the
classifiers are trained here on the data at hand.

A trained classifier is cached as cache_dir/<key>/ with two entries:

  info.json   what was trained: image shape, classes, model and training
              settings, test accuracy and date
  variables/  the Flax variables, saved with orbax

Each cache is written in a hidden temporary folder next to it and renamed
into place once complete, so a process killed mid-save leaves no folder that
a later call would load.
"""

import dataclasses
import datetime
import functools
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging
from flax import linen as nn

from crossdomain import reporting
from crossdomain.image_size import num_stages
from crossdomain.data import fashion_mnist

Variables = Mapping[str, Any]  # Flax variables, here only {"params": ...}
TrainFn = Callable[["TrainSettings"], tuple[Variables, float]]

# Settings of the ready-made evaluators. Measured on a shared 2-core CPU, 2000
# steps trained the Fashion-MNIST classifier in 81 s and 92 s to test
# accuracies of 91.3% and 91.5% (seeds 0 and 1).
FASHION_MNIST_STEPS = 2000
DOMAIN_PAIR_STEPS = 1000
DEFAULT_BATCH_SIZE = 128
DEFAULT_LEARNING_RATE = 2e-3
# Two domains are easy to tell apart, so without smoothing the loss reaches 0
# and the logits and features grow as long as training lasts. On Fashion-MNIST
# shoes against bags (32x32x1), after 1000 steps, smoothing 0.1 kept test
# accuracy at 99.8% and cut the median feature norm from 18 to 5. The Fréchet
# distances shrank with it, from 674 to 42 between the two domains and from
# 0.74 to 0.06 between two halves of the bags. `python -m
# experiments.evaluator_smoothing` measures these figures.
DOMAIN_PAIR_LABEL_SMOOTHING = 0.1
EVAL_BATCH_SIZE = 256  # images per compiled Evaluator call

INFO_FILENAME = "info.json"
VARIABLES_DIRNAME = "variables"
_TEMP_PREFIX = "."  # temporary folders are hidden: .<key>.tmp-<random>
_TEMP_SUFFIX = ".tmp-"
_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")

# Allows for rounding in the arithmetic that maps images into [-1, 1].
_RANGE_TOLERANCE = 1e-3


class CacheMismatchError(ValueError):
  """Raised when a cached classifier was trained for another request than the current one."""


class IncompleteCacheError(RuntimeError):
  """Raised when a cache folder exists but lacks its info.json or variables."""


class Classifier(nn.Module):
  """CNN of stride-2 3x3 convolutions down to 4x4, then a hidden dense layer and the logits.

  It has no batch norm or dropout, so inference is a pure function of the
  parameters and the images.
  """

  num_classes: int
  base_features: int = 32  # channels of the first stage, doubled by each later stage
  max_features: int = 256
  feature_dim: int = 128  # width of the penultimate layer, the features

  @nn.compact
  def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Return logits [N, num_classes] and features [N, feature_dim] of images in [-1, 1].

    The features are the penultimate layer's activations after ReLU.
    """
    x = images.astype(jnp.float32)
    for stage in range(num_stages(images.shape[1])):
      features = min(self.base_features * 2**stage, self.max_features)
      x = nn.relu(nn.Conv(features, (3, 3), strides=(2, 2), padding="SAME")(x))
    x = x.reshape(x.shape[0], -1)
    features = nn.relu(nn.Dense(self.feature_dim)(x))
    logits = nn.Dense(self.num_classes)(features)
    return logits, features


def _model_config(module: Classifier) -> dict[str, int]:
  """Return the hyperparameters besides num_classes that fix the variables' shapes."""
  return dict(base_features=module.base_features, max_features=module.max_features,
              feature_dim=module.feature_dim)


def scale_images(images: np.ndarray) -> np.ndarray:
  """Scale uint8 images to float32 in [-1, 1], as the training pipeline's to_model_range does."""
  return np.asarray(images, np.float32) / 127.5 - 1.0


def _check_image_shape(images: np.ndarray, name: str) -> tuple[int, int, int]:
  """Check that images are [N, size, size, channels] with a valid size and return one's shape."""
  if images.ndim != 4 or images.shape[1] != images.shape[2]:
    raise ValueError(f"{name} must be [N, size, size, channels] images, got shape {images.shape}")
  num_stages(images.shape[1])
  return tuple(int(dim) for dim in images.shape[1:])


def _check_labeled_images(images: np.ndarray, labels: np.ndarray, num_classes: int,
                          name: str) -> tuple[int, int, int]:
  """Check one labeled split for train_classifier and return one image's shape."""
  if images.dtype != np.uint8:
    raise ValueError(f"{name} images must be uint8 in [0, 255], got dtype {images.dtype}")
  shape = _check_image_shape(images, f"{name} images")
  if len(images) == 0:
    raise ValueError(f"{name} images are empty, expected at least one example")
  if labels.shape != (len(images),):
    raise ValueError(f"{name} labels must have shape ({len(images)},) to match the images, "
                     f"got {labels.shape}")
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"{name} labels must be integers, got dtype {labels.dtype}")
  if labels.min() < 0 or labels.max() >= num_classes:
    raise ValueError(f"{name} labels must be in [0, {num_classes - 1}], "
                     f"got values from {labels.min()} to {labels.max()}")
  return shape


@dataclasses.dataclass(frozen=True)
class TrainSettings:
  """Settings of train_classifier, which uses Adam with a cosine decay of the learning rate to zero.

  Attributes:
    steps: number of updates.
    seed: seed of the initialization and of the order of the examples.
    batch_size: examples per update.
    learning_rate: Adam's learning rate at the first step.
    label_smoothing: share of each target moved from the label to a uniform
      spread over all classes. Above 0 it bounds the logits that minimize
      the loss.
  """

  steps: int
  seed: int = 0
  batch_size: int = DEFAULT_BATCH_SIZE
  learning_rate: float = DEFAULT_LEARNING_RATE
  label_smoothing: float = 0.0


def _with_default_settings(training: Mapping[str, Any]) -> dict[str, Any]:
  """Add the TrainSettings fields that older caches did not record, with their defaults."""
  defaults = {field.name: field.default for field in dataclasses.fields(TrainSettings)
              if field.default is not dataclasses.MISSING}
  return {**defaults, **training}


def _batch_indices(num_examples: int, batch_size: int, steps: int, seed: int) -> np.ndarray:
  """Return [steps, batch_size] example indices that visit the examples epoch after epoch.

  Each epoch is a fresh permutation, and batches run across epoch boundaries.
  """
  rng = np.random.default_rng(seed)
  num_epochs = -(-steps * batch_size // num_examples)  # ceiling division
  order = np.concatenate([rng.permutation(num_examples) for _ in range(num_epochs)])
  return order[:steps * batch_size].reshape(steps, batch_size)


# Seconds between progress lines while a classifier trains.
PROGRESS_SECONDS = 30.0


def train_classifier(train_images: np.ndarray, train_labels: np.ndarray,
                     test_images: np.ndarray, test_labels: np.ndarray, *, num_classes: int,
                     steps: int, batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0,
                     learning_rate: float = DEFAULT_LEARNING_RATE,
                     label_smoothing: float = 0.0) -> tuple[Variables, float]:
  """Train a Classifier on labeled images and measure its accuracy on the test split.

  The result depends only on the arguments: the seed fixes both the
  initialization and the order of the examples.

  Args:
    train_images: uint8 [N, size, size, channels], size a power of two >= 8.
    train_labels: integer [N], class ids in [0, num_classes).
    test_images: uint8 [M, size, size, channels], the same shape as train_images.
    test_labels: integer [M].
    num_classes: number of classes, at least 2.
    steps: number of Adam updates.
    batch_size: examples per update.
    seed: seed of the initialization and of the order of the examples.
    learning_rate: Adam's learning rate at the first step. It decays to zero
      along a cosine over the steps.
    label_smoothing: share of each target spread evenly over all classes,
      in [0, 1).

  Returns:
    The trained variables of Classifier(num_classes), and the fraction of
    test images whose largest logit is their label.
  """
  train_images, train_labels = np.asarray(train_images), np.asarray(train_labels)
  test_images, test_labels = np.asarray(test_images), np.asarray(test_labels)
  if num_classes < 2:
    raise ValueError(f"num_classes must be at least 2, got {num_classes}")
  if steps < 1 or batch_size < 1:
    raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
  if not 0.0 <= label_smoothing < 1.0:
    raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
  image_shape = _check_labeled_images(train_images, train_labels, num_classes, "train")
  test_shape = _check_labeled_images(test_images, test_labels, num_classes, "test")
  if test_shape != image_shape:
    raise ValueError(f"test images are {test_shape} but train images are {image_shape}, "
                     "expected the same shape")

  module = Classifier(num_classes)
  variables = module.init(jax.random.key(seed), jnp.zeros((1, *image_shape), jnp.float32))
  optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, steps))
  opt_state = optimizer.init(variables)

  @jax.jit
  def train_step(variables, opt_state, images, labels):
    def loss_fn(variables):
      logits, _ = module.apply(variables, images.astype(jnp.float32) / 127.5 - 1.0)
      targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing)
      return optax.softmax_cross_entropy(logits, targets).mean()

    loss, grads = jax.value_and_grad(loss_fn)(variables)
    updates, opt_state = optimizer.update(grads, opt_state, variables)
    return optax.apply_updates(variables, updates), opt_state, loss

  logging.info("Training a %d-class classifier on %d images of shape %s for %d steps",
               num_classes, len(train_images), image_shape, steps)
  start = time.perf_counter()
  progress = reporting.Progress(0, steps)
  last_log = start
  # The uint8 batches are gathered on the host and scaled on the device,
  # which moves a quarter of the bytes of float32 batches.
  for step, indices in enumerate(_batch_indices(len(train_images), batch_size, steps, seed), 1):
    variables, opt_state, loss = train_step(variables, opt_state, train_images[indices],
                                            train_labels[indices])
    if time.perf_counter() - last_log >= PROGRESS_SECONDS and step < steps:
      rate, seconds_left = progress.update(step)
      logging.info("classifier step %d/%d: batch loss %.4f | %.2f steps/s, %s left", step,
                   steps, float(loss), rate, reporting.format_duration(seconds_left))
      last_log = time.perf_counter()

  evaluator = Evaluator(module, variables, image_shape)
  predictions = evaluator.logits(scale_images(test_images)).argmax(axis=-1)
  test_accuracy = float(np.mean(predictions == test_labels))
  logging.info("Trained in %.1f s: final batch loss %.4f, test accuracy %.4f",
               time.perf_counter() - start, float(loss), test_accuracy)
  return variables, test_accuracy


@dataclasses.dataclass(frozen=True, eq=False)
class Evaluator:
  """A trained Classifier with batched, compiled inference on float images in [-1, 1].

  Images go through the network in batches of batch_size, the last one padded
  with zeros, so each Evaluator compiles its forward pass for one shape only.

  Attributes:
    module: the Classifier.
    variables: its trained variables.
    image_shape: (size, size, channels) of the images it accepts.
    class_names: name of each class id, if known.
    test_accuracy: accuracy on the test split after training, if known.
    batch_size: images per compiled call.
  """

  module: Classifier
  variables: Variables
  image_shape: tuple[int, int, int]
  class_names: tuple[str, ...] | None = None
  test_accuracy: float | None = None
  batch_size: int = EVAL_BATCH_SIZE

  @functools.cached_property
  def _forward(self):
    # cached_property stores the compiled function in the instance's __dict__,
    # which a frozen dataclass allows. The variables stay an argument, so they
    # are not baked into the compiled program as constants.
    return jax.jit(self.module.apply)

  def _check_images(self, images) -> np.ndarray:
    images = np.asarray(images)
    # jnp.issubdtype also counts bfloat16, which numpy does not know as a float.
    if not jnp.issubdtype(images.dtype, jnp.floating):
      raise ValueError(f"images must be floats in [-1, 1], got dtype {images.dtype}. "
                       "Scale uint8 images with scale_images.")
    if images.ndim != 4 or images.shape[1:] != self.image_shape:
      raise ValueError(f"images must have shape [N, {', '.join(map(str, self.image_shape))}], "
                       f"got {images.shape}")
    if images.size:
      low, high = float(images.min()), float(images.max())
      if low < -1.0 - _RANGE_TOLERANCE or high > 1.0 + _RANGE_TOLERANCE:
        raise ValueError(f"images must be in [-1, 1], got values from {low} to {high}")
    # One dtype, so that the forward pass is compiled once.
    return images.astype(np.float32, copy=False)

  def logits_and_features(self, images) -> tuple[np.ndarray, np.ndarray]:
    """Run the network over images in batches.

    Args:
      images: float [N, size, size, channels] in [-1, 1], numpy or JAX.

    Returns:
      logits: float32 [N, num_classes].
      features: float32 [N, feature_dim], the penultimate activations.
    """
    images = self._check_images(images)
    logits, features = [], []
    for start in range(0, len(images), self.batch_size):
      batch = images[start:start + self.batch_size]
      size = len(batch)
      if size < self.batch_size:
        batch = np.concatenate([batch, np.zeros((self.batch_size - size, *self.image_shape),
                                                batch.dtype)])
      batch_logits, batch_features = self._forward(self.variables, batch)
      logits.append(np.asarray(batch_logits)[:size])
      features.append(np.asarray(batch_features)[:size])
    if not logits:
      return (np.zeros((0, self.module.num_classes), np.float32),
              np.zeros((0, self.module.feature_dim), np.float32))
    return np.concatenate(logits), np.concatenate(features)

  def logits(self, images) -> np.ndarray:
    """Return float32 logits [N, num_classes] of float images [N, size, size, channels] in [-1, 1]."""
    return self.logits_and_features(images)[0]

  def features(self, images) -> np.ndarray:
    """Return float32 penultimate features [N, feature_dim] of float images in [-1, 1]."""
    return self.logits_and_features(images)[1]


def _check_key(key: str) -> None:
  if not _KEY_PATTERN.fullmatch(key):
    raise ValueError(f"invalid cache key {key!r}: expected a folder name of letters, digits, "
                     "'_', '-' and '.' that does not start with '.'")


def _requested_info(module: Classifier, image_shape, class_names,
                    settings: TrainSettings) -> dict[str, Any]:
  """Return the info.json fields that a cache must match to be loaded, in JSON types."""
  return dict(
      image_shape=[int(dim) for dim in image_shape],
      num_classes=module.num_classes,
      class_names=None if class_names is None else [str(name) for name in class_names],
      model=_model_config(module),
      training=dataclasses.asdict(settings),
  )


def _read_info(path: str) -> dict[str, Any]:
  info_path = os.path.join(path, INFO_FILENAME)
  variables_path = os.path.join(path, VARIABLES_DIRNAME)
  if not os.path.isfile(info_path) or not os.path.isdir(variables_path):
    raise IncompleteCacheError(
        f"classifier cache {path} is incomplete: expected {INFO_FILENAME} and "
        f"{VARIABLES_DIRNAME}/ in it. Delete the folder to train the classifier again.")
  with open(info_path, encoding="utf-8") as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as error:
      raise IncompleteCacheError(
          f"classifier cache {path} has an invalid {INFO_FILENAME} ({error}). "
          "Delete the folder to train the classifier again.") from error


def _check_cached_info(path: str, cached: Mapping[str, Any],
                       requested: Mapping[str, Any]) -> None:
  """Raise CacheMismatchError naming every field where the cache differs from the request."""
  cached = dict(cached)
  if isinstance(cached.get("training"), Mapping):
    cached["training"] = _with_default_settings(cached["training"])
  differences = [f"{field} is {cached.get(field)!r} in the cache but {value!r} was requested"
                 for field, value in requested.items() if cached.get(field) != value]
  if differences:
    raise CacheMismatchError(
        f"cached classifier {path} does not match the request: {'; '.join(differences)}. "
        "Delete the folder to train it again, or use another cache key.")


def _restore(path: str, module: Classifier, image_shape, info: Mapping[str, Any],
             batch_size: int) -> Evaluator:
  abstract = jax.eval_shape(module.init, jax.random.key(0),
                            jnp.zeros((1, *image_shape), jnp.float32))
  with ocp.StandardCheckpointer() as checkpointer:
    variables = checkpointer.restore(os.path.join(path, VARIABLES_DIRNAME), abstract)
  class_names = info["class_names"]
  return Evaluator(module, variables, tuple(image_shape),
                   class_names=None if class_names is None else tuple(class_names),
                   test_accuracy=info["test_accuracy"], batch_size=batch_size)


def _save(cache_dir: str, key: str, variables: Variables, info: Mapping[str, Any]) -> bool:
  """Save variables and info as cache_dir/key and return whether this call created it.

  Returns False when another process created cache_dir/key first, in which
  case this call's copy is discarded.
  """
  temp_path = tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{key}{_TEMP_SUFFIX}", dir=cache_dir)
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      checkpointer.save(os.path.join(temp_path, VARIABLES_DIRNAME), variables)
      checkpointer.wait_until_finished()
    with open(os.path.join(temp_path, INFO_FILENAME), "w", encoding="utf-8") as f:
      json.dump(info, f, indent=2)
      f.write("\n")
    try:
      # POSIX rename of a folder is atomic, and fails if the target is a
      # folder that is not empty.
      os.rename(temp_path, os.path.join(cache_dir, key))
    except OSError:
      if not os.path.isdir(os.path.join(cache_dir, key)):
        raise
      return False
    return True
  finally:
    if os.path.isdir(temp_path):
      shutil.rmtree(temp_path)


def load_or_train(cache_dir: str | os.PathLike, key: str, train_fn: TrainFn, *,
                  image_shape: Sequence[int], num_classes: int, settings: TrainSettings,
                  class_names: Sequence[str] | None = None,
                  eval_batch_size: int = EVAL_BATCH_SIZE) -> Evaluator:
  """Load the classifier cached as cache_dir/key, or train it with train_fn and cache it.

  A cache is loaded only if its info.json records the same image shape,
  classes, model and training settings as this call. Hidden temporary
  folders that a killed save left behind are ignored.
  NOTE: written for a single process. Several processes that share
  cache_dir may each train, but only the first rename wins.

  Args:
    cache_dir: folder of all cached classifiers, created if missing.
    key: folder name of this classifier, which should name what it was
      trained on, e.g. "fashion_mnist_10class_32x32x1".
    train_fn: called as train_fn(settings) only when no cache exists. It
      returns the variables of Classifier(num_classes) and the test
      accuracy, e.g. by calling train_classifier with these settings.
    image_shape: (size, size, channels) of the images.
    num_classes: number of classes.
    settings: the training settings, recorded in info.json.
    class_names: name of each class id, recorded in info.json.
    eval_batch_size: images per compiled call of the returned Evaluator.

  Returns:
    The Evaluator of the loaded or trained classifier.

  Raises:
    CacheMismatchError: the cache records another image shape, classes,
      model or settings. The message names both values of each field.
    IncompleteCacheError: cache_dir/key lacks info.json or variables/.
  """
  _check_key(key)
  image_shape = tuple(int(dim) for dim in image_shape)
  if len(image_shape) != 3 or image_shape[0] != image_shape[1]:
    raise ValueError(f"image_shape must be (size, size, channels), got {image_shape}")
  num_stages(image_shape[0])
  if class_names is not None and len(class_names) != num_classes:
    raise ValueError(f"got {len(class_names)} class names for {num_classes} classes")

  # orbax needs absolute paths.
  cache_dir = os.path.abspath(os.fspath(cache_dir))
  path = os.path.join(cache_dir, key)
  module = Classifier(num_classes)
  requested = _requested_info(module, image_shape, class_names, settings)

  if os.path.exists(path):
    info = _read_info(path)
    _check_cached_info(path, info, requested)
    logging.info("Loading the cached classifier %s (test accuracy %.4f)", path,
                 info["test_accuracy"])
    return _restore(path, module, image_shape, info, eval_batch_size)

  start = time.perf_counter()
  variables, test_accuracy = train_fn(settings)
  info = dict(
      key=key,
      **requested,
      test_accuracy=float(test_accuracy),
      training_seconds=round(time.perf_counter() - start, 1),
      date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  )
  os.makedirs(cache_dir, exist_ok=True)
  if not _save(cache_dir, key, variables, info):
    logging.info("Another process cached %s first, loading that one", path)
    info = _read_info(path)
    _check_cached_info(path, info, requested)
    return _restore(path, module, image_shape, info, eval_batch_size)
  logging.info("Cached the classifier in %s", path)
  return Evaluator(module, variables, image_shape,
                   class_names=None if class_names is None else tuple(class_names),
                   test_accuracy=float(test_accuracy), batch_size=eval_batch_size)


def fashion_mnist_evaluator(cache_dir: str | os.PathLike, *,
                            local_dir: str | os.PathLike = fashion_mnist.DEFAULT_LOCAL_DIR,
                            tfds_data_dir: str | os.PathLike | None = None,
                            steps: int = FASHION_MNIST_STEPS, seed: int = 0) -> Evaluator:
  """Load or train a 10-class classifier of Fashion-MNIST padded to 32x32x1.

  The images are zero-padded as load_domains pads them, so the classifier
  accepts the shoes and bags domains and their translations. It trains on
  the train split, and its test accuracy is measured on the test split.

  Args:
    cache_dir: folder of cached classifiers. The key names the steps and the
      seed, e.g. "fashion_mnist_10class_32x32x1_2000steps_seed0".
    local_dir: folder searched for the four IDX files, see
      fashion_mnist.prepare_builder.
    tfds_data_dir: TFDS data directory, None for the TFDS default.
    steps: training steps.
    seed: training seed.

  Returns:
    The Evaluator, with class_names fashion_mnist.CLASS_NAMES.
  """
  size = fashion_mnist.IMAGE_SIZE + 2 * fashion_mnist.PADDING
  image_shape = (size, size, 1)
  num_classes = len(fashion_mnist.CLASS_NAMES)
  key = f"fashion_mnist_{num_classes}class_{size}x{size}x1_{steps}steps_seed{seed}"

  def train(settings: TrainSettings) -> tuple[Variables, float]:
    splits = {}
    for split in fashion_mnist.SPLITS:
      images, labels = fashion_mnist.load_split(split, local_dir=local_dir,
                                                tfds_data_dir=tfds_data_dir)
      splits[split] = fashion_mnist.pad_images(images), labels
    return train_classifier(*splits["train"], *splits["test"], num_classes=num_classes,
                            **dataclasses.asdict(settings))

  return load_or_train(cache_dir, key, train, image_shape=image_shape,
                       num_classes=num_classes, settings=TrainSettings(steps, seed),
                       class_names=fashion_mnist.CLASS_NAMES)


def _oversample(num_examples: int, target: int, rng: np.random.Generator) -> np.ndarray:
  """Return target indices into num_examples: each one equally often, the remainder at random."""
  repeats, remainder = divmod(target, num_examples)
  return np.concatenate([np.tile(np.arange(num_examples), repeats),
                         rng.choice(num_examples, remainder, replace=False)])


def domain_pair_evaluator(cache_dir: str | os.PathLike, key: str, images_a: np.ndarray,
                          images_b: np.ndarray, test_a: np.ndarray, test_b: np.ndarray, *,
                          class_names: tuple[str, str] = ("A", "B"),
                          steps: int = DOMAIN_PAIR_STEPS, seed: int = 0,
                          batch_size: int = DEFAULT_BATCH_SIZE,
                          learning_rate: float = DEFAULT_LEARNING_RATE,
                          label_smoothing: float = DOMAIN_PAIR_LABEL_SMOOTHING) -> Evaluator:
  """Load or train a classifier of domain A (class 0) against domain B (class 1).

  The smaller training domain is oversampled to the size of the larger one,
  so the classifier learns no prior for either domain. Label smoothing keeps
  its features on a bounded scale (see DOMAIN_PAIR_LABEL_SMOOTHING). The test accuracy is
  over all of test_a and test_b, so it weighs the domains by their sizes.

  Args:
    cache_dir: folder of cached classifiers.
    key: folder name of this classifier, which should name both domains
      and the image shape, e.g. "shoes_vs_bags_32x32x1".
    images_a, images_b: uint8 [N, size, size, channels] training images of
      each domain, all of one shape.
    test_a, test_b: uint8 test images of each domain, of the same shape.
    class_names: names of domain A and B, recorded in info.json.
    steps, seed, batch_size, learning_rate, label_smoothing: see TrainSettings.

  Returns:
    The Evaluator of the two-class classifier.
  """
  arrays = dict(images_a=images_a, images_b=images_b, test_a=test_a, test_b=test_b)
  arrays = {name: np.asarray(images) for name, images in arrays.items()}
  for name, images in arrays.items():
    if images.dtype != np.uint8:
      raise ValueError(f"{name} must be uint8 in [0, 255], got dtype {images.dtype}")
    if len(images) == 0:
      raise ValueError(f"{name} is empty, expected at least one image")
  shapes = {name: _check_image_shape(images, name) for name, images in arrays.items()}
  if len(set(shapes.values())) != 1:
    raise ValueError(f"all domain images must have one shape, got {shapes}")
  image_shape = shapes["images_a"]

  def train(settings: TrainSettings) -> tuple[Variables, float]:
    train_a, train_b = arrays["images_a"], arrays["images_b"]
    target = max(len(train_a), len(train_b))
    rng = np.random.default_rng(settings.seed)
    train_images = np.concatenate([train_a[_oversample(len(train_a), target, rng)],
                                   train_b[_oversample(len(train_b), target, rng)]])
    train_labels = np.repeat(np.array([0, 1], np.int64), target)
    test_images = np.concatenate([arrays["test_a"], arrays["test_b"]])
    test_labels = np.repeat(np.array([0, 1], np.int64),
                            [len(arrays["test_a"]), len(arrays["test_b"])])
    return train_classifier(train_images, train_labels, test_images, test_labels,
                            num_classes=2, **dataclasses.asdict(settings))

  settings = TrainSettings(steps, seed, batch_size, learning_rate, label_smoothing)
  return load_or_train(cache_dir, key, train, image_shape=image_shape, num_classes=2,
                       settings=settings, class_names=class_names)
