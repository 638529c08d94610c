"""The range of image values inside the networks, [-1, 1], and the check of it.

The data pipelines map uint8 pixels p to p / 127.5 - 1. Rounding in that
arithmetic, or in a user's own, can put a value a little past -1 or 1, so
the check allows a small tolerance.
"""

TOLERANCE = 1e-3


def leaves_range(low: float, high: float) -> bool:
  """Return whether values from low to high leave [-1, 1] by more than TOLERANCE."""
  return low < -1.0 - TOLERANCE or high > 1.0 + TOLERANCE
