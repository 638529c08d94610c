"""The networks of a coupled GAN and how the four generator roles map onto them.

A translation `ab` maps domain A to B. A reconstruction of A runs `ab` and
then `aba`, the second leg that maps B back to A. With tied generators the
second legs reuse the translators (`aba` is `ba`, `bab` is `ab`); untied,
they are two more networks with their own parameters.
"""

import dataclasses

import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from crossdomain.errors import UserInputError
from crossdomain.image_size import num_stages
from crossdomain.models.image import ImageDiscriminator, ImageGenerator
from crossdomain.models.vector import VectorDiscriminator, VectorGenerator


# Role of each generator: which parameter set it uses, tied and untied.
TIED_ROLES = {"ab": "g_ab", "ba": "g_ba", "aba": "g_ba", "bab": "g_ab"}
UNTIED_ROLES = {"ab": "g_ab", "ba": "g_ba", "aba": "r_ba", "bab": "r_ab"}

# Types the networks can compute in (model.compute_dtype). Parameters,
# optimizer states and losses stay float32.
COMPUTE_DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class Networks:
  """Flax modules for each parameter set of the generators and discriminators.

  Attributes:
    generators: parameter-set name ('g_ab', 'g_ba', and untied also 'r_ab',
      'r_ba') to the module that uses it.
    discriminators: 'd_a' and 'd_b' to their modules.
    roles: translation role ('ab', 'ba', 'aba', 'bab') to parameter-set name.
  """

  generators: dict[str, nn.Module]
  discriminators: dict[str, nn.Module]
  roles: dict[str, str]


def _dtype(config: ml_collections.ConfigDict):
  if config.compute_dtype not in COMPUTE_DTYPES:
    raise UserInputError(f"config.model.compute_dtype must be 'float32' or 'bfloat16', "
                         f"got {config.compute_dtype!r}")
  return jnp.dtype(config.compute_dtype)


def build_networks(config: ml_collections.ConfigDict, shape_a: tuple[int, ...],
                   shape_b: tuple[int, ...]) -> Networks:
  """Build the networks for domains whose single examples have these shapes.

  Args:
    config: the `model` section of the run config.
    shape_a, shape_b: one example of each domain, [size, size, channels] for
      images or [features] for vectors.
  """
  dtype = _dtype(config)
  if len(shape_a) != len(shape_b):
    raise UserInputError(f"domains A and B must both be images or both vectors, "
                     f"got example shapes {shape_a} and {shape_b}")

  if len(shape_a) == 3:
    if shape_a != shape_b:
      raise UserInputError(f"image domains must share one shape, got {shape_a} and {shape_b}")
    size, _, channels = shape_a
    num_stages(size)  # reject an unusable size now, not when the networks first run
    generator_ab = generator_ba = ImageGenerator(size, channels, config.upsample, dtype,
                                                 init_scheme=config.init_scheme)
    discriminator_a = discriminator_b = ImageDiscriminator(size, dtype,
                                                           init_scheme=config.init_scheme)
  elif len(shape_a) == 1:
    hidden = tuple(config.hidden)
    generator_ab = VectorGenerator(shape_b[0], hidden, dtype)
    generator_ba = VectorGenerator(shape_a[0], hidden, dtype)
    discriminator_a = discriminator_b = VectorDiscriminator(hidden, dtype)
  else:
    raise UserInputError(f"examples must be [size, size, channels] images or [features] "
                     f"vectors, got shape {shape_a}")

  generators = {"g_ab": generator_ab, "g_ba": generator_ba}
  if not config.tie_generators:
    generators.update(r_ab=generator_ab, r_ba=generator_ba)
  roles = TIED_ROLES if config.tie_generators else UNTIED_ROLES
  return Networks(generators=generators,
                  discriminators={"d_a": discriminator_a, "d_b": discriminator_b},
                  roles=dict(roles))
