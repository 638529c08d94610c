"""DiscoGAN between two CSV files of vectors, A and B, with multilayer perceptrons.

Each row is one example and each column one feature. A header row is
optional, and the two files may have different numbers of columns. Values
enter the networks unscaled, so columns should be of order 1. The losses are
the Gaussian mixture toy's: GAN and reconstruction with equal weights.

    python -m crossdomain.main --config=configs/csv.py --workdir=DIR \\
        --config.data.csv_a=A.csv --config.data.csv_b=B.csv
"""

import ml_collections

from crossdomain import config as base


def get_config():
  """Return the CSV vectors config."""
  config = base.base_config()
  config.num_steps = 8_000
  config.log_every = 500
  config.sample_every = 2_000
  config.checkpoint_every = 2_000

  config.data.name = "csv"
  config.data.csv_a = ml_collections.config_dict.placeholder(str)
  config.data.csv_b = ml_collections.config_dict.placeholder(str)
  # Share of each file's rows held out for figures and evaluation, drawn from
  # the seed: at least one row and at most max_test_examples.
  config.data.test_fraction = 0.1
  config.data.max_test_examples = 1_000

  config.loss.feature_matching = False
  config.loss.recon_curriculum = False
  config.loss.recon_weight = 0.5
  config.update_cycle = "DG"
  # Vectors of unknown density are scored by Fréchet distances between the
  # translated and the real held-out vectors of each domain.
  config.eval.metric = "frechet_distance_mean"
  return config
