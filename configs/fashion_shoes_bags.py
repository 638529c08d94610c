"""DiscoGAN between Fashion-MNIST shoes (A) and bags (B) at 32x32x1.

Domain A contains sandals, sneakers and ankle boots, domain B bags; the two are
drawn independently. Losses and schedule are the reference implementation's.

    python -m crossdomain.main --config=configs/fashion_shoes_bags.py --workdir=/tmp/fmnist

Reads Debian's dataset-fashion-mnist files (`apt-get install
dataset-fashion-mnist`) or TensorFlow Datasets' download.
"""

import ml_collections

from crossdomain import config as base


def get_config():
  """Return the Fashion-MNIST shoes and bags config."""
  config = base.base_config()
  config.num_steps = 20_000
  config.log_every = 50
  config.sample_every = 250
  config.checkpoint_every = 500

  config.data.name = "fashion_mnist"
  config.data.fashion_mnist_dir = "/usr/share/datasets/fashion-mnist"
  # Where TensorFlow Datasets prepares the data; None for its default,
  # ~/tensorflow_datasets.
  config.data.tfds_data_dir = ml_collections.config_dict.placeholder(str)

  # Evaluated against a 10-class classifier of Fashion-MNIST; training stops
  # after 2,000 steps without a better mean Frechet distance of translations.
  config.eval.every = 250
  config.eval.metric = "frechet_distance_mean"
  config.eval.patience = 8
  return config
