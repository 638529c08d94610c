"""Toy DiscoGAN: a 5-component Gaussian mixture (A) to a 2-component one (B).

The setting of the public TensorFlow toy that the DiscoGAN paper's mixture
experiment follows: 512 samples per domain, variance 0.1, batch 64, 1000
epochs, MLPs of two hidden layers of 256 units.

    python -m crossdomain.main --config=configs/gmm.py --workdir=/tmp/gmm

About a minute of training on a 2-core CPU. Nearly all translated points land
on B's two modes, though the points of one A mode may split between them
(see figures/toy_scatter_<step>.png and the mode tables in ideal_state.json).
"""

from crossdomain import config as base


def get_config():
  """Return the toy mixture config."""
  config = base.base_config()
  config.num_steps = 8_000  # 1000 epochs of 512 points in batches of 64
  config.log_every = 500
  config.sample_every = 2_000
  config.checkpoint_every = 2_000

  config.data.name = "gmm"
  config.data.means_a = ((0.0, 0.0), (2.0, 2.0), (-1.0, -1.0), (1.0, -1.0), (-1.0, 1.0))
  config.data.variance_a = 0.1
  config.data.means_b = ((-1.0, -1.0), (1.0, 1.0))
  config.data.variance_b = 0.1
  config.data.num_train = 512  # points per domain
  config.data.num_test = 512

  # The toy adds GAN and reconstruction losses with equal weights.
  config.loss.feature_matching = False
  config.loss.recon_curriculum = False
  config.loss.recon_weight = 0.5
  config.update_cycle = "DG"

  config.eval.every = 500
  config.eval.metric = "coverage_quality"
  config.eval.patience = 0  # train the full 1000 epochs of the public toy

  return config
