"""The image sizes that the networks accept: each stride-2 stage halves the side, down to 4x4.

The generators, the discriminators and the evaluator classifier all run
stride-2 stages until the feature map is 4x4, so they accept the same sizes:
powers of two of at least 8. This module imports nothing heavy, so the data
package can check a size before any file is read.
"""

import numbers

from crossdomain.errors import UserInputError

MIN_IMAGE_SIZE = 8
FINAL_MAP_SIZE = 4


def num_stages(image_size: int, name: str = "image size") -> int:
  """Return how many stride-2 stages take an image_size square down to 4x4.

  Args:
    image_size: side of the square images.
    name: what the error message calls the size, such as a config field.

  Raises:
    UserInputError: image_size is not an integer power of two of at least 8.
  """
  is_integer = isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool)
  if not (is_integer and image_size >= MIN_IMAGE_SIZE and image_size & (image_size - 1) == 0):
    raise UserInputError(f"{name} must be a power of two of at least {MIN_IMAGE_SIZE}, "
                         f"such as 32 or 64, got {image_size!r}")
  return int(image_size).bit_length() - FINAL_MAP_SIZE.bit_length()
