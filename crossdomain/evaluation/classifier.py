"""The evaluator classifier: a small CNN trained on real images, and its batched inference.

A classifier is trained on real images of known classes. Its logits show
which class a translated image looks like, and its penultimate features feed
the Fréchet distance, KID and linear probes. Nothing is downloaded: the
classifiers are trained here on the data at hand. classifier_cache.py keeps
trained ones on disk, and evaluators.py builds the two that training uses.
"""

import dataclasses
import functools
import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import linen as nn

from crossdomain import model_range, reporting
from crossdomain.image_size import num_stages

Variables = Mapping[str, Any]  # Flax variables, here only {"params": ...}

DEFAULT_BATCH_SIZE = 128
DEFAULT_LEARNING_RATE = 2e-3
EVAL_BATCH_SIZE = 256  # images per compiled Evaluator call


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


def scale_images(images: np.ndarray) -> np.ndarray:
  """Scale uint8 images to float32 in [-1, 1], as the training pipeline's to_model_range does."""
  return np.asarray(images, np.float32) / 127.5 - 1.0


def check_image_shape(images: np.ndarray, name: str) -> tuple[int, int, int]:
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
  shape = check_image_shape(images, f"{name} images")
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
      if model_range.leaves_range(low, high):
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

