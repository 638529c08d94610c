"""Convolutional DiscoGAN networks: encoder-decoder generator and discriminator.

A size x size image goes through log2(size) - 2 stride-2 stages down to 4x4:
64x64 input gives stages of 64, 128, 256 and 512 channels, 32x32 input one
stage fewer. Batch norm follows every stage but the first, so those
convolutions have no bias.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from crossdomain.image_size import num_stages
from crossdomain.models.upsample import (Downsample, DownsampleFormulation, Formulation,
                                         Upsample, kernel_initializer)


BASE_FEATURES = 64  # channels of the first stage; each later stage doubles it
LEAKY_SLOPE = 0.2
# PyTorch's BatchNorm2d defaults, as in the reference implementation: running
# averages keep 90% of the old value per update.
BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5


def stage_features(image_size: int) -> list[int]:
  """Return the channel count of each encoder stage, e.g. [64, 128, 256] at 32x32."""
  return [BASE_FEATURES * 2**stage for stage in range(num_stages(image_size))]


def _batch_norm(train: bool, dtype) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=BATCH_NORM_MOMENTUM,
                      epsilon=BATCH_NORM_EPSILON, dtype=dtype)


class Encoder(nn.Module):
  """Stride-2 4x4 convolutions with leaky ReLU, batch norm on all but the first."""

  features: Sequence[int]
  dtype: jnp.dtype | None = None
  downsample: DownsampleFormulation = "auto"
  init_scheme: str = "pytorch"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, list[jax.Array]]:
    """Return the last stage's map and the maps of the batch-normalized stages."""
    normalized_maps = []
    for stage, features in enumerate(self.features):
      first = stage == 0
      # Named as the nn.Conv that this layer replaced, so checkpoints load
      # (initial values match it with init_scheme "lecun").
      x = Downsample(features, use_bias=first, formulation=self.downsample, dtype=self.dtype,
                     init_scheme=self.init_scheme, name=f"Conv_{stage}")(x)
      if not first:
        x = _batch_norm(train, self.dtype)(x)
      x = nn.leaky_relu(x, LEAKY_SLOPE)
      if not first:
        normalized_maps.append(x)
    return x, normalized_maps


class ImageGenerator(nn.Module):
  """Translate [batch, size, size, channels] images in [-1, 1] to the other domain."""

  image_size: int
  channels: int
  upsample: Formulation = "auto"
  dtype: jnp.dtype | None = None
  init_scheme: str = "pytorch"  # of the kernels; see upsample.kernel_initializer

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    features = stage_features(self.image_size)
    x, _ = Encoder(features, self.dtype, init_scheme=self.init_scheme)(x, train)

    # The decoder mirrors the encoder: each stage halves the channels and
    # doubles the size, and the last one maps to the image's channels.
    for out_features in reversed(features[:-1]):
      x = Upsample(out_features, formulation=self.upsample, dtype=self.dtype,
                   init_scheme=self.init_scheme)(x)
      x = _batch_norm(train, self.dtype)(x)
      x = nn.relu(x)
    # NOTE: the reference maps [0, 1] images through a sigmoid and has no bias
    # here, in the first convolution or in the discriminator's output layer.
    # Its translations were 2.3 times closer in Frechet distance after 600
    # Fashion-MNIST steps (one seed; docs/RESULTS.md). Which difference
    # causes that is not known.
    x = Upsample(self.channels, use_bias=True, formulation=self.upsample,
                 dtype=self.dtype, init_scheme=self.init_scheme)(x)
    return jnp.tanh(x.astype(jnp.float32))


class ImageDiscriminator(nn.Module):
  """Score images as real (positive logit) or translated, and expose features."""

  image_size: int
  dtype: jnp.dtype | None = None
  init_scheme: str = "pytorch"  # of the kernels; see upsample.kernel_initializer

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, list[jax.Array]]:
    """Return logits [batch] and the batch-normalized stages' maps for feature matching."""
    encoder = Encoder(stage_features(self.image_size), self.dtype, init_scheme=self.init_scheme)
    x, features = encoder(x, train)
    x = nn.Conv(1, (4, 4), padding="VALID", dtype=self.dtype,
                kernel_init=kernel_initializer(self.init_scheme, transposed=False))(x)
    logits = x.reshape(x.shape[0]).astype(jnp.float32)
    return logits, [feature.astype(jnp.float32) for feature in features]
