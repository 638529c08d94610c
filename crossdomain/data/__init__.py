"""Training and held-out examples of two domains, chosen by `config.data.name`.

Images are kept as uint8 [N, size, size, channels] and vectors as float32
[N, features]; the tf.data pipeline scales both to the model's range. Large
image sets keep their training examples on disk as a `pipeline.FileSource`
and decode them batch by batch. Held-out examples are always in memory.
"""

import dataclasses
import hashlib
import json
import os

import ml_collections
import numpy as np

from crossdomain.image_size import num_stages
from crossdomain.data import gmm, pipeline
from crossdomain.errors import UserInputError


@dataclasses.dataclass(frozen=True)
class Domain:
  """One domain's examples, with the mode or class each example came from.

  Attributes:
    train: the training examples, an in-memory array [N, ...] or a FileSource.
    train_labels: int [N], zeros for sources without classes.
    test: the held-out examples in memory, uint8 images [M, size, size,
      channels] or float32 vectors [M, features].
    test_labels: int [M].
    columns: the header row of a CSV domain, else None.
  """

  train: np.ndarray | pipeline.FileSource
  train_labels: np.ndarray
  test: np.ndarray
  test_labels: np.ndarray
  columns: tuple[str, ...] | None = None

  @property
  def example_shape(self) -> tuple[int, ...]:
    if isinstance(self.train, pipeline.FileSource):
      return tuple(self.train.example_shape)
    return tuple(self.train.shape[1:])

  @property
  def num_train(self) -> int:
    return len(self.train)

  def train_sample(self, limit: int, seed: int) -> np.ndarray:
    """Return up to `limit` training examples in memory, chosen at random by `seed`."""
    count = min(limit, len(self.train))
    indices = np.sort(np.random.default_rng(seed).permutation(len(self.train))[:count])
    if isinstance(self.train, pipeline.FileSource):
      return pipeline.decode_examples(self.train, indices)
    return self.train[indices]


@dataclasses.dataclass(frozen=True)
class DomainPair:
  """Domains A and B.

  Attributes:
    a, b: the two domains.
    mixtures: the known densities of the toy's domains, else None.
    contents: for data that the config names by location (image folders,
      CSV files), a summary of what was found there: the number of examples
      and a digest of the files. None where the config fixes the data.
  """

  a: Domain
  b: Domain
  mixtures: tuple[gmm.Mixture, gmm.Mixture] | None = None
  contents: str | None = None

  @property
  def is_image(self) -> bool:
    return len(self.a.example_shape) == 3


def _load_gmm(config: ml_collections.ConfigDict, seed: int) -> DomainPair:
  for field in ("num_train", "num_test"):
    if not config[field] > 0:
      raise UserInputError(f"config.data.{field} must be positive, got {config[field]!r}")
  mixtures = (gmm.Mixture(config.means_a, config.variance_a),
              gmm.Mixture(config.means_b, config.variance_b))
  rng = np.random.default_rng(seed)
  domains = []
  for mixture in mixtures:
    train, train_modes = mixture.sample(config.num_train, rng)
    test, test_modes = mixture.sample(config.num_test, rng)
    domains.append(Domain(train, train_modes, test, test_modes))
  return DomainPair(domains[0], domains[1], mixtures)


def _load_fashion_mnist(config: ml_collections.ConfigDict, seed: int) -> DomainPair:
  del seed  # Fashion-MNIST's train and test splits are fixed.
  # TensorFlow Datasets is slow to import, so only image runs pay for it.
  from crossdomain.data import fashion_mnist

  splits = {}
  for split in ("train", "test"):
    splits[split] = fashion_mnist.load_domains(
        split, local_dir=config.fashion_mnist_dir, tfds_data_dir=config.tfds_data_dir)
  train, test = splits["train"], splits["test"]
  bag_label = fashion_mnist.BAG_CLASS
  return DomainPair(
      Domain(train.images_a, train.labels_a, test.images_a, test.labels_a),
      Domain(train.images_b, np.full(len(train.images_b), bag_label),
             test.images_b, np.full(len(test.images_b), bag_label)))


def _required(config: ml_collections.ConfigDict, field: str):
  """Return config.<field>, raising UserInputError when the placeholder is still unset."""
  value = config[field]
  if value is None:
    raise UserInputError(f"config.data.{field} is not set; pass --config.data.{field}=VALUE")
  return value


def _check_max_test_examples(config: ml_collections.ConfigDict) -> None:
  if not config.max_test_examples > 0:
    raise UserInputError(f"config.data.max_test_examples must be positive, "
                         f"got {config.max_test_examples!r}")


def _check_image_size(config: ml_collections.ConfigDict) -> None:
  """Check the image side before any file is read: each network stage halves it, down to 4."""
  num_stages(config.image_size, "config.data.image_size")


def _hold_out(count: int, config: ml_collections.ConfigDict, seed: int,
              domain: int, source: str) -> tuple[np.ndarray, np.ndarray]:
  """Draw the held-out examples of one domain, deterministically from the seed.

  The held-out set has round(test_fraction * count) examples, at least one
  and at most max_test_examples.

  Returns:
    (train indices, held-out indices), disjoint, together covering range(count).
  """
  if not 0.0 < config.test_fraction < 1.0:
    raise UserInputError(f"config.data.test_fraction must lie in (0, 1), "
                         f"got {config.test_fraction!r}")
  _check_max_test_examples(config)
  num_test = min(config.max_test_examples, max(1, round(config.test_fraction * count)))
  if count - num_test < 1:
    raise UserInputError(f"{source} has too few examples ({count}) to hold out {num_test} "
                         "and train on the rest; add examples")
  order = np.random.default_rng([seed, domain]).permutation(count)
  return order[num_test:], order[:num_test]


def _load_pix2pix(config: ml_collections.ConfigDict, seed: int) -> DomainPair:
  # TensorFlow Datasets is slow to import, so only runs that use it pay for it.
  from crossdomain.data import pix2pix

  _check_image_size(config)
  _check_max_test_examples(config)
  sources = pix2pix.load_domains(
      (config.dataset_a, config.dataset_b), (config.half_a, config.half_b),
      image_size=config.image_size, max_test_examples=config.max_test_examples, seed=seed,
      manual_dir=config.manual_dir, tfds_data_dir=config.tfds_data_dir)
  domains = [Domain(source.train, np.zeros(len(source.train), np.int64),
                    source.test, np.zeros(len(source.test), np.int64))
             for source in sources]
  return DomainPair(domains[0], domains[1])


def _load_image_folders(config: ml_collections.ConfigDict, seed: int) -> DomainPair:
  from crossdomain.data import image_folders

  _check_image_size(config)
  image_folders.check_channels(config.channels)
  domains, digest, counts = [], hashlib.sha256(), []
  for domain, field in enumerate(("folder_a", "folder_b")):
    folder = _required(config, field)
    images = image_folders.find_images(folder, config.image_size, config.channels,
                                       f"data.{field}")
    paths = np.array(list(images), dtype=object)
    # Digest the names relative to the folder and the files' bytes, because the
    # folder may move and its files may be copied with new times.
    digest.update(json.dumps([(os.path.relpath(path, folder), fingerprint.hex())
                              for path, fingerprint in images.items()]).encode())
    counts.append(len(paths))
    train, test = _hold_out(len(paths), config, seed, domain, f"image folder {folder}")
    train_source = image_folders.ImageFiles(paths[train], config.image_size, config.channels)
    test_source = image_folders.ImageFiles(paths[test], config.image_size, config.channels)
    domains.append(Domain(train_source, np.zeros(len(train), np.int64),
                          pipeline.decode_examples(test_source), np.zeros(len(test), np.int64)))
  return DomainPair(domains[0], domains[1], contents=_contents(counts, "images", digest))


def _load_csv(config: ml_collections.ConfigDict, seed: int) -> DomainPair:
  from crossdomain.data import csv_vectors

  domains, digest, counts = [], hashlib.sha256(), []
  for domain, field in enumerate(("csv_a", "csv_b")):
    path = _required(config, field)
    vectors, header = csv_vectors.read_table(path)
    digest.update(json.dumps(header).encode() + vectors.tobytes())
    counts.append(len(vectors))
    train, test = _hold_out(len(vectors), config, seed, domain, f"CSV file {path}")
    domains.append(Domain(vectors[train], np.zeros(len(train), np.int64),
                          vectors[test], np.zeros(len(test), np.int64),
                          None if header is None else tuple(header)))
  return DomainPair(domains[0], domains[1], contents=_contents(counts, "rows", digest))


def _contents(counts: list[int], unit: str, digest) -> str:
  """Return DomainPair.contents: the examples of each domain and the first digits of `digest`."""
  return f"{counts[0]} and {counts[1]} {unit}, sha256 {digest.hexdigest()[:12]}"


_LOADERS = {
    "gmm": _load_gmm,
    "fashion_mnist": _load_fashion_mnist,
    "pix2pix": _load_pix2pix,
    "image_folders": _load_image_folders,
    "csv": _load_csv,
}


def load(config: ml_collections.ConfigDict, seed: int) -> DomainPair:
  """Load the domains that the `data` section of a config names.

  Args:
    config: the `data` section of a run config.
    seed: the run's seed. It picks the held-out examples of image folders and
      CSV files, and the halves of a pix2pix dataset that both domains share.

  Returns:
    Domains A and B.
  """
  loader = _LOADERS.get(config.name)
  if loader is None:
    raise UserInputError(f"unknown data.name {config.name!r}; expected one of "
                         f"{', '.join(repr(name) for name in _LOADERS)}")
  return loader(config, seed)
