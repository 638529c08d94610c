"""Each loss term on inputs whose value is known in closed form."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from crossdomain import config as config_lib
from crossdomain import losses


def test_bce_discriminator_loss_at_zero_logits():
  zeros = jnp.zeros(4)
  # Both halves are -log(1/2), weighted 0.5 each.
  assert losses.discriminator_loss(zeros, zeros, "bce") == pytest.approx(math.log(2))


def test_bce_losses_at_known_logits():
  real, fake = jnp.array([2.0]), jnp.array([-1.0])
  expected_d = 0.5 * math.log1p(math.exp(-2.0)) + 0.5 * math.log1p(math.exp(-1.0))
  assert losses.discriminator_loss(real, fake, "bce") == pytest.approx(expected_d, rel=1e-6)
  # Non-saturating: -log sigmoid(fake logit).
  expected_g = math.log1p(math.exp(1.0))
  assert losses.generator_gan_loss(fake, "bce") == pytest.approx(expected_g, rel=1e-6)


def test_bce_is_stable_for_large_logits():
  assert losses.generator_gan_loss(jnp.array([-200.0]), "bce") == pytest.approx(200.0)
  assert losses.discriminator_loss(jnp.array([200.0]), jnp.array([-200.0]), "bce") == 0.0


def test_least_squares_losses():
  real, fake = jnp.array([1.0, 3.0]), jnp.array([0.0, 2.0])
  # Real: mean((0, 2)^2) = 2; fake: mean((0, 2)^2) = 2.
  assert losses.discriminator_loss(real, fake, "least_squares") == pytest.approx(2.0)
  # 0.5 * mean((-1, 1)^2) = 0.5.
  assert losses.generator_gan_loss(fake, "least_squares") == pytest.approx(0.5)


def test_discriminator_score_both_losses():
  logits = jnp.array([0.0, 2.0])
  # The probability of real under bce, the regressed output under least squares.
  expected_bce = 0.5 * (0.5 + 1.0 / (1.0 + math.exp(-2.0)))
  assert losses.discriminator_score(logits, "bce") == pytest.approx(expected_bce, rel=1e-6)
  assert losses.discriminator_score(logits, "least_squares") == pytest.approx(1.0)
  with pytest.raises(ValueError, match="'hinge'"):
    losses.discriminator_score(logits, "hinge")


def test_unknown_gan_loss_raises():
  with pytest.raises(ValueError, match="'hinge'"):
    losses.generator_gan_loss(jnp.zeros(1), "hinge")


def test_reconstruction_losses():
  original = jnp.zeros((2, 2))
  reconstructed = jnp.array([[1.0, -1.0], [2.0, 0.0]])
  assert losses.reconstruction_loss(original, reconstructed, "mse") == pytest.approx(1.5)
  assert losses.reconstruction_loss(original, reconstructed, "l1") == pytest.approx(1.0)
  assert losses.reconstruction_loss(original, original, "mse") == 0.0


def test_feature_matching_sums_layers_of_mean_gaps():
  real = [jnp.array([[1.0, 2.0], [3.0, 4.0]]), jnp.ones((2, 3, 3, 1))]
  fake = [jnp.array([[0.0, 0.0], [0.0, 0.0]]), jnp.ones((2, 3, 3, 1))]
  # Layer 1: batch means (2, 3) against (0, 0), mean of squares (4 + 9) / 2.
  # Layer 2: identical means.
  assert losses.feature_matching_loss(real, fake) == pytest.approx(6.5)


def test_feature_matching_ignores_order_within_batch():
  rng = np.random.default_rng(0)
  features = jnp.asarray(rng.normal(size=(8, 5)))
  assert losses.feature_matching_loss([features], [features[::-1]]) == pytest.approx(0.0, abs=1e-12)


def test_reconstruction_weight_curriculum():
  config = config_lib.base_config().loss
  assert losses.reconstruction_weight(jnp.array(0), config) == pytest.approx(0.01)
  assert losses.reconstruction_weight(jnp.array(9_999), config) == pytest.approx(0.01)
  assert losses.reconstruction_weight(jnp.array(10_000), config) == pytest.approx(0.5)
  config.recon_curriculum = False
  assert losses.reconstruction_weight(jnp.array(0), config) == pytest.approx(0.5)


def test_direction_loss_reference_weighting():
  config = config_lib.base_config().loss
  gan, feature_matching, recon, weight = 2.0, 1.0, 4.0, 0.25
  value = losses.direction_loss(gan, feature_matching, recon, weight, True, config)
  assert value == pytest.approx((0.1 * 2.0 + 0.9 * 1.0) * 0.75 + 0.25 * 4.0)
  assert losses.direction_loss(gan, feature_matching, recon, weight, False, config) == (
      pytest.approx(0.1 * 2.0 + 0.9 * 1.0))
  config.feature_matching = False
  value = losses.direction_loss(gan, feature_matching, recon, weight, True, config)
  assert value == pytest.approx(2.0 * 0.75 + 0.25 * 4.0)


@pytest.mark.parametrize("variant,cycle_a,cycle_b", [
    ("gan", False, False), ("recongan", True, False), ("discogan", True, True)])
def test_variants_choose_cycles(variant, cycle_a, cycle_b):
  assert losses.reconstructs(variant, "a") is cycle_a
  assert losses.reconstructs(variant, "b") is cycle_b


def test_unknown_variant_raises():
  with pytest.raises(ValueError, match="cyclegan"):
    losses.reconstructs("cyclegan", "a")
