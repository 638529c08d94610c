"""Loss terms of coupled GANs and the rule that combines them per direction.

Every loss term is a pure function that returns a float32 scalar averaged
over the batch. `reconstruction_weight`, `reconstructs` and `direction_loss`
are the rule that combines the terms. Logits are unbounded discriminator
outputs (positive means real).
"""

from collections.abc import Sequence
from typing import Literal, get_args

import jax
import jax.numpy as jnp
import ml_collections

GanLoss = Literal["bce", "least_squares"]
ReconstructionLoss = Literal["mse", "l1"]
GAN_LOSSES = get_args(GanLoss)
RECONSTRUCTION_LOSSES = get_args(ReconstructionLoss)
VARIANTS = ("gan", "recongan", "discogan")


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array,
                       kind: GanLoss) -> jax.Array:
  """Return the loss of one discriminator: real scored 1, translated scored 0.

  The two halves are weighted 0.5 each, as in the reference implementation.
  """
  if kind == "bce":
    # -log sigmoid(l) = softplus(-l) and -log(1 - sigmoid(l)) = softplus(l).
    real = jnp.mean(jax.nn.softplus(-real_logits))
    fake = jnp.mean(jax.nn.softplus(fake_logits))
  elif kind == "least_squares":
    real = jnp.mean(jnp.square(real_logits - 1.0))
    fake = jnp.mean(jnp.square(fake_logits))
  else:
    raise ValueError(f"unknown GAN loss {kind!r}; expected 'bce' or 'least_squares'")
  return 0.5 * real + 0.5 * fake


def discriminator_score(logits: jax.Array, kind: GanLoss) -> jax.Array:
  """Return the mean score that a discriminator gives: 1 means real, 0 translated.

  Under `bce` it is the mean probability of real, sigmoid(logit). Under
  `least_squares` the logit itself is regressed to 1 or 0, so its mean is
  the score.
  """
  if kind == "bce":
    return jnp.mean(jax.nn.sigmoid(logits))
  if kind == "least_squares":
    return jnp.mean(logits)
  raise ValueError(f"unknown GAN loss {kind!r}; expected 'bce' or 'least_squares'")


def generator_gan_loss(fake_logits: jax.Array, kind: GanLoss) -> jax.Array:
  """Return the generator's GAN loss: non-saturating BCE or least squares to 1."""
  if kind == "bce":
    return jnp.mean(jax.nn.softplus(-fake_logits))
  if kind == "least_squares":
    return 0.5 * jnp.mean(jnp.square(fake_logits - 1.0))
  raise ValueError(f"unknown GAN loss {kind!r}; expected 'bce' or 'least_squares'")


def reconstruction_loss(original: jax.Array, reconstructed: jax.Array,
                        kind: ReconstructionLoss) -> jax.Array:
  """Return the mean squared or mean absolute error over all elements."""
  difference = reconstructed.astype(jnp.float32) - original.astype(jnp.float32)
  if kind == "mse":
    return jnp.mean(jnp.square(difference))
  if kind == "l1":
    return jnp.mean(jnp.abs(difference))
  raise ValueError(f"unknown reconstruction loss {kind!r}; expected 'mse' or 'l1'")


def feature_matching_loss(real_features: Sequence[jax.Array],
                          fake_features: Sequence[jax.Array]) -> jax.Array:
  """Return the squared gap between batch-mean real and fake features.

  Each layer contributes the mean over its feature positions of the squared
  difference of batch means, as the reference implementation computes it;
  the layers' terms are summed.
  """
  total = jnp.zeros((), jnp.float32)
  for real, fake in zip(real_features, fake_features, strict=True):
    gap = jnp.mean(real, axis=0) - jnp.mean(fake, axis=0)
    total = total + jnp.mean(jnp.square(gap))
  return total


def reconstruction_weight(step: jax.Array, config: ml_collections.ConfigDict) -> jax.Array:
  """Return w, the reconstruction share of a direction's generator loss at a step.

  With the curriculum, w stays at `recon_weight_start` for the first
  `recon_curriculum_steps` steps, so the translators first learn to fool the
  discriminators, then rises to `recon_weight`.
  """
  if not config.recon_curriculum:
    return jnp.asarray(config.recon_weight, jnp.float32)
  return jnp.where(step < config.recon_curriculum_steps,
                   jnp.float32(config.recon_weight_start),
                   jnp.float32(config.recon_weight))


def reconstructs(variant: str, domain: Literal["a", "b"]) -> bool:
  """Return whether a variant trains the cycle that starts and ends in `domain`.

  `gan` trains no cycle, `recongan` only A -> B -> A, `discogan` both.
  """
  if variant not in VARIANTS:
    raise ValueError(f"unknown loss variant {variant!r}; expected one of {VARIANTS}")
  return variant == "discogan" or (variant == "recongan" and domain == "a")


def direction_loss(gan: jax.Array, feature_matching: jax.Array, reconstruction: jax.Array,
                   weight: jax.Array, with_reconstruction: bool,
                   config: ml_collections.ConfigDict) -> jax.Array:
  """Combine one direction's terms into its generator loss.

  The adversarial part is `gan_weight * gan + feature_matching_weight *
  feature_matching` with feature matching on, or the plain GAN loss with it
  off. A direction that reconstructs returns `(1 - w) * adversarial + w *
  reconstruction`; one that does not returns the adversarial part alone.
  """
  if config.feature_matching:
    adversarial = config.gan_weight * gan + config.feature_matching_weight * feature_matching
  else:
    adversarial = gan
  if not with_reconstruction:
    return adversarial
  return (1.0 - weight) * adversarial + weight * reconstruction
