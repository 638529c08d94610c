"""Two-dimensional Gaussian mixture domains, the DiscoGAN toy problem.

Each domain is a fixed sample of a mixture of isotropic Gaussians with
equal weights. Every point keeps the index of the component it was drawn
from, its mode, so plots and metrics can follow where each mode goes.
"""

import dataclasses
import math

import numpy as np

from crossdomain.errors import UserInputError



@dataclasses.dataclass(frozen=True)
class Mixture:
  """Equal-weight Gaussian mixture with means [components, dims] and variance * I."""

  means: np.ndarray
  variance: float

  def __post_init__(self):
    means = np.asarray(self.means, np.float32)
    if means.ndim != 2 or len(means) == 0:
      raise UserInputError(f"mixture means must be a non-empty [components, dims] list, "
                       f"got shape {means.shape}")
    if not self.variance > 0:
      raise UserInputError(f"mixture variance must be positive, got {self.variance}")
    object.__setattr__(self, "means", means)

  @property
  def num_modes(self) -> int:
    return len(self.means)

  def sample(self, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw `count` points; return float32 points [count, dims] and modes [count]."""
    modes = rng.integers(0, self.num_modes, size=count)
    noise = rng.standard_normal((count, self.means.shape[1])) * math.sqrt(self.variance)
    return (self.means[modes] + noise).astype(np.float32), modes.astype(np.int32)

  def log_density(self, points: np.ndarray) -> np.ndarray:
    """Return log p(x) for points [N, dims]."""
    dims = self.means.shape[1]
    squared = np.sum(np.square(points[:, None, :] - self.means[None]), axis=-1)
    log_normal = -0.5 * squared / self.variance - 0.5 * dims * math.log(2 * math.pi * self.variance)
    return np.logaddexp.reduce(log_normal, axis=1) - math.log(self.num_modes)


def ring_means(count: int, radius: float, phase: float = 0.0) -> list[tuple[float, float]]:
  """Return `count` points evenly spaced on a circle, the first at angle `phase` (radians)."""
  angles = phase + 2 * math.pi * np.arange(count) / count
  return [(radius * math.cos(angle), radius * math.sin(angle)) for angle in angles]
