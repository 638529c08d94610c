"""Shapes, parameter counts and the transposed-convolution forms of the networks."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from crossdomain import config as config_lib
from crossdomain.models import build_networks
from crossdomain.errors import UserInputError
from crossdomain.image_size import num_stages
from crossdomain.models.image import ImageDiscriminator, ImageGenerator
from crossdomain.models.upsample import Upsample, upsample_dilated, upsample_subpixel
from crossdomain.models.vector import VectorDiscriminator, VectorGenerator


def _count(params) -> int:
  return sum(leaf.size for leaf in jax.tree.leaves(params))


def _conv(k, c_in, c_out, bias=False):
  return k * k * c_in * c_out + (c_out if bias else 0)


def _expected_generator_params(size, channels):
  widths = [64 * 2**i for i in range(num_stages(size))]
  total = _conv(4, channels, widths[0], bias=True)  # first stage: bias, no batch norm
  for c_in, c_out in zip(widths, widths[1:]):
    total += _conv(4, c_in, c_out) + 2 * c_out  # batch norm scale and offset
  for c_in, c_out in zip(widths[::-1], widths[::-1][1:]):
    total += _conv(4, c_in, c_out) + 2 * c_out
  return total + _conv(4, widths[0], channels, bias=True)


def _expected_discriminator_params(size, channels):
  widths = [64 * 2**i for i in range(num_stages(size))]
  total = _conv(4, channels, widths[0], bias=True)
  for c_in, c_out in zip(widths, widths[1:]):
    total += _conv(4, c_in, c_out) + 2 * c_out
  return total + _conv(4, widths[-1], 1, bias=True)


@pytest.mark.parametrize("size,channels", [(32, 1), (64, 3)])
def test_image_generator_shape_and_params(size, channels):
  generator = ImageGenerator(size, channels)
  x = jnp.zeros((2, size, size, channels))
  variables = generator.init(jax.random.PRNGKey(0), x, train=False)
  y, updates = generator.apply(variables, x, train=True, mutable=["batch_stats"])

  assert y.shape == x.shape
  assert float(jnp.max(jnp.abs(y))) <= 1.0
  assert _count(variables["params"]) == _expected_generator_params(size, channels)
  assert set(updates["batch_stats"]) == set(variables["batch_stats"])


@pytest.mark.parametrize("size,channels,features", [(32, 1, 2), (64, 3, 3)])
def test_image_discriminator_logits_and_features(size, channels, features):
  discriminator = ImageDiscriminator(size)
  x = jnp.zeros((2, size, size, channels))
  variables = discriminator.init(jax.random.PRNGKey(0), x, train=False)
  logits, maps = discriminator.apply(variables, x, train=False)

  assert logits.shape == (2,)
  assert len(maps) == features  # every stage after the first
  assert maps[-1].shape == (2, 4, 4, 64 * 2**features)
  assert _count(variables["params"]) == _expected_discriminator_params(size, channels)


@pytest.mark.parametrize("size,stages", [(8, 1), (16, 2), (32, 3), (64, 4), (128, 5),
                                         (np.int64(64), 4)])
def test_num_stages_down_to_4x4(size, stages):
  assert num_stages(size) == stages


@pytest.mark.parametrize("size", [0, 4, 12, 48, -64, 64.0, True, "64"])
def test_num_stages_rejects_bad_sizes(size):
  with pytest.raises(UserInputError, match=f"image size must be a power of two .* got {size!r}"):
    num_stages(size)


def test_num_stages_names_the_field():
  with pytest.raises(UserInputError, match="config.data.image_size must be a power of two"):
    num_stages(48, "config.data.image_size")


def _transposed_conv_by_definition(x, kernel):
  """Scatter form: output 2i + t - 1 receives x[i] * kernel[t] along each axis."""
  batch, height, width, _ = x.shape
  out = np.zeros((batch, 2 * height, 2 * width, kernel.shape[-1]))
  for i in range(height):
    for j in range(width):
      for ty in range(4):
        for tx in range(4):
          oy, ox = 2 * i + ty - 1, 2 * j + tx - 1
          if 0 <= oy < 2 * height and 0 <= ox < 2 * width:
            out[:, oy, ox] += x[:, i, j] @ kernel[ty, tx]
  return out


@pytest.mark.parametrize("upsample", [upsample_subpixel, upsample_dilated])
def test_upsample_matches_definition(upsample):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 3, 5, 4)).astype(np.float32)
  kernel = rng.normal(size=(4, 4, 4, 6)).astype(np.float32)
  np.testing.assert_allclose(upsample(x, kernel), _transposed_conv_by_definition(x, kernel),
                             rtol=1e-5, atol=1e-5)


def test_upsample_forms_have_same_gradients():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(2, 4, 4, 8)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(4, 4, 8, 5)), jnp.float32)
  target = jnp.asarray(rng.normal(size=(2, 8, 8, 5)), jnp.float32)

  def loss(upsample, x, kernel):
    return jnp.sum(jnp.square(upsample(x, kernel) - target))

  grads_subpixel = jax.grad(loss, argnums=(1, 2))(upsample_subpixel, x, kernel)
  grads_dilated = jax.grad(loss, argnums=(1, 2))(upsample_dilated, x, kernel)
  for subpixel, dilated in zip(grads_subpixel, grads_dilated):
    np.testing.assert_allclose(subpixel, dilated, rtol=1e-4, atol=1e-4)


def test_upsample_module_forms_share_parameters():
  x = jnp.ones((1, 4, 4, 3))
  variables = Upsample(2, formulation="subpixel").init(jax.random.PRNGKey(0), x)
  subpixel = Upsample(2, formulation="subpixel").apply(variables, x)
  dilated = Upsample(2, formulation="dilated").apply(variables, x)
  np.testing.assert_allclose(subpixel, dilated, rtol=1e-5, atol=1e-5)


def test_vector_networks_shapes():
  x = jnp.zeros((5, 2))
  generator = VectorGenerator(3)
  variables = generator.init(jax.random.PRNGKey(0), x, train=False)
  assert generator.apply(variables, x, train=True).shape == (5, 3)
  assert _count(variables["params"]) == (2 * 256 + 256) + (256 * 256 + 256) + (256 * 3 + 3)

  discriminator = VectorDiscriminator()
  variables = discriminator.init(jax.random.PRNGKey(0), x, train=False)
  logits, features = discriminator.apply(variables, x, train=True)
  assert logits.shape == (5,)
  assert [f.shape for f in features] == [(5, 256), (5, 256)]


def _model_config(tie: bool) -> ml_collections.ConfigDict:
  config = config_lib.base_config().model
  config.tie_generators = tie
  return config


def test_tied_roles_reuse_translators():
  networks = build_networks(_model_config(True), (32, 32, 1), (32, 32, 1))
  assert sorted(networks.generators) == ["g_ab", "g_ba"]
  assert networks.roles == {"ab": "g_ab", "ba": "g_ba", "aba": "g_ba", "bab": "g_ab"}


def test_untied_roles_are_four_networks():
  networks = build_networks(_model_config(False), (2,), (3,))
  assert sorted(networks.generators) == ["g_ab", "g_ba", "r_ab", "r_ba"]
  assert len(set(networks.roles.values())) == 4
  # The second leg of A -> B -> A maps B (3 features) back to A (2 features).
  assert networks.generators[networks.roles["aba"]].out_features == 2
  assert networks.generators[networks.roles["bab"]].out_features == 3


def test_mismatched_domains_raise():
  with pytest.raises(ValueError, match="both be images or both vectors"):
    build_networks(_model_config(True), (32, 32, 1), (2,))
  with pytest.raises(ValueError, match="share one shape"):
    build_networks(_model_config(True), (32, 32, 1), (64, 64, 1))
