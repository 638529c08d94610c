"""Trained classifiers cached on disk, so that each one is trained once.

A trained classifier is cached as cache_dir/<key>/ with two entries:

  info.json      what was trained: image shape, classes, model and training
                 settings, test accuracy and date
  variables.npz  the Flax variables as NumPy arrays, one per path such as
                 params/Conv_0/kernel

Plain NumPy files load on any device and in any process, and each process
of a multi-process run reads or writes them alone. Caches written by
earlier versions keep their variables in an orbax folder, variables/, which
is still read.

Each cache is written in a hidden temporary folder next to it and renamed
into place once complete, so a process killed mid-save leaves no folder that
a later call would load.
"""

import dataclasses
import datetime
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
import orbax.checkpoint as ocp
from absl import logging
from flax import traverse_util

from crossdomain import parallel
from crossdomain.evaluation.classifier import (EVAL_BATCH_SIZE, Classifier, Evaluator,
                                               TrainSettings, Variables)
from crossdomain.image_size import num_stages

TrainFn = Callable[[TrainSettings], tuple[Variables, float]]

INFO_FILENAME = "info.json"
VARIABLES_FILENAME = "variables.npz"
VARIABLES_DIRNAME = "variables"  # the orbax folder of earlier versions
_TEMP_PREFIX = "."  # temporary folders are hidden: .<key>.tmp-<random>
_TEMP_SUFFIX = ".tmp-"
_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


class CacheMismatchError(ValueError):
  """Raised when a cached classifier was trained for another request than the current one."""


class IncompleteCacheError(RuntimeError):
  """Raised when a cache folder exists but lacks its info.json or variables."""


def _model_config(module: Classifier) -> dict[str, int]:
  """Return the hyperparameters besides num_classes that fix the variables' shapes."""
  return dict(base_features=module.base_features, max_features=module.max_features,
              feature_dim=module.feature_dim)


def _with_default_settings(training: Mapping[str, Any]) -> dict[str, Any]:
  """Add the TrainSettings fields that older caches did not record, with their defaults."""
  defaults = {field.name: field.default for field in dataclasses.fields(TrainSettings)
              if field.default is not dataclasses.MISSING}
  return {**defaults, **training}


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
  has_variables = (os.path.isfile(os.path.join(path, VARIABLES_FILENAME))
                   or os.path.isdir(os.path.join(path, VARIABLES_DIRNAME)))
  if not os.path.isfile(info_path) or not has_variables:
    raise IncompleteCacheError(
        f"classifier cache {path} is incomplete: expected {INFO_FILENAME} and "
        f"{VARIABLES_FILENAME} in it. Delete the folder to train the classifier again.")
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
  arrays_path = os.path.join(path, VARIABLES_FILENAME)
  if os.path.isfile(arrays_path):
    with np.load(arrays_path, allow_pickle=False) as arrays:
      flat = {tuple(name.split("/")): jnp.asarray(arrays[name]) for name in arrays.files}
    variables = traverse_util.unflatten_dict(flat)
    expected = jax.tree.map(lambda leaf: (leaf.shape, leaf.dtype), abstract)
    if jax.tree.map(lambda leaf: (leaf.shape, leaf.dtype), variables) != expected:
      raise IncompleteCacheError(f"classifier cache {path} contains variables whose names or "
                                 "shapes do not match its info.json. Delete the folder to "
                                 "train the classifier again.")
  else:
    # An orbax folder records the devices it was saved from.
    with ocp.StandardCheckpointer() as checkpointer:
      variables = checkpointer.restore(os.path.join(path, VARIABLES_DIRNAME),
                                       parallel.on_first_local_device(abstract))
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
    flat = traverse_util.flatten_dict(jax.device_get(variables), sep="/")
    np.savez(os.path.join(temp_path, VARIABLES_FILENAME), **flat)
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
  Several processes that share cache_dir may each train, but only the
  first rename wins, and the others load its copy.

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

  # orbax, which reads caches of earlier versions, needs absolute paths.
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
