"""Toy DiscoGAN between two rings of 10 Gaussian components each.

A's ring has radius 2, B's radius 1.5 turned by half a step, so a good
translator sends each A mode to its own B mode.

    python -m crossdomain.main --config=configs/gmm_ring.py --workdir=/tmp/ring
"""

import math

from configs import gmm
from crossdomain.data.gmm import ring_means


def get_config():
  """Return the ring mixture config."""
  config = gmm.get_config()
  config.data.means_a = tuple(ring_means(10, 2.0))
  config.data.means_b = tuple(ring_means(10, 1.5, phase=math.pi / 10))
  # Neighbouring modes lie 1.24 (A) and 0.93 (B) apart: about 9 and 7 standard deviations.
  config.data.variance_a = 0.02
  config.data.variance_b = 0.02
  return config
