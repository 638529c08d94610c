"""Training and held-out examples of two domains, chosen by `config.data.name`.

Images are kept as uint8 [N, size, size, channels] and vectors as float32
[N, features]; the tf.data pipeline scales both to the model's range.
"""

import dataclasses

import ml_collections
import numpy as np

from crossdomain.data import gmm


@dataclasses.dataclass(frozen=True)
class Domain:
  """One domain's examples, with the mode or class each example came from."""

  train: np.ndarray
  train_labels: np.ndarray
  test: np.ndarray
  test_labels: np.ndarray

  @property
  def example_shape(self) -> tuple[int, ...]:
    return tuple(self.train.shape[1:])


@dataclasses.dataclass(frozen=True)
class DomainPair:
  """Domains A and B; `mixtures` holds their known densities for the toy, else None."""

  a: Domain
  b: Domain
  mixtures: tuple[gmm.Mixture, gmm.Mixture] | None = None

  @property
  def is_image(self) -> bool:
    return len(self.a.example_shape) == 3


def _load_gmm(config: ml_collections.ConfigDict, seed: int) -> DomainPair:
  mixtures = (gmm.Mixture(config.means_a, config.variance_a),
              gmm.Mixture(config.means_b, config.variance_b))
  rng = np.random.default_rng(seed)
  domains = []
  for mixture in mixtures:
    train, train_modes = mixture.sample(config.num_train, rng)
    test, test_modes = mixture.sample(config.num_test, rng)
    domains.append(Domain(train, train_modes, test, test_modes))
  return DomainPair(domains[0], domains[1], mixtures)


def _load_fashion_mnist(config: ml_collections.ConfigDict) -> DomainPair:
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


def load(config: ml_collections.ConfigDict, seed: int) -> DomainPair:
  """Load the domains that the `data` section of a config names."""
  if config.name == "gmm":
    return _load_gmm(config, seed)
  if config.name == "fashion_mnist":
    return _load_fashion_mnist(config)
  raise ValueError(f"unknown data.name {config.name!r}; expected 'gmm' or 'fashion_mnist'")
