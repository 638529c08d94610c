"""Multilayer perceptrons for vector domains such as the 2-D Gaussian mixtures."""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn


class VectorGenerator(nn.Module):
  """Map [batch, in_features] points to [batch, out_features] points."""

  out_features: int
  hidden: Sequence[int] = (256, 256)
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    del train  # no batch norm or dropout: the same function in training and inference
    for width in self.hidden:
      x = nn.relu(nn.Dense(width, dtype=self.dtype)(x))
    return nn.Dense(self.out_features, dtype=self.dtype)(x).astype(jnp.float32)


class VectorDiscriminator(nn.Module):
  """Score points: logits [batch] and the hidden activations for feature matching."""

  hidden: Sequence[int] = (256, 256)
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, list[jax.Array]]:
    del train
    features = []
    for width in self.hidden:
      x = nn.relu(nn.Dense(width, dtype=self.dtype)(x))
      features.append(x.astype(jnp.float32))
    logits = nn.Dense(1, dtype=self.dtype)(x)
    return logits[:, 0].astype(jnp.float32), features
