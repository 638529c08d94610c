"""Every form of the stride-2 convolution and its transpose against XLA's plain one."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from crossdomain.models import upsample
from crossdomain.models.image import Encoder, ImageGenerator

TOLERANCE = {"rtol": 1e-4, "atol": 1e-4}


def _plain_upsample(x, kernel):
  """The transposed convolution by its definition: the transpose of XLA's stride-2 convolution."""
  batch, height, width, _ = x.shape
  big = jnp.zeros((batch, 2 * height, 2 * width, kernel.shape[-1]), x.dtype)
  _, transpose = jax.vjp(lambda big: _plain_downsample(big, kernel.swapaxes(2, 3)), big)
  return transpose(x)[0]


def _plain_downsample(x, kernel):
  return jax.lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _random(shape, seed):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _value_and_gradients(function, x, kernel, seed):
  """Return function(x, kernel) and the gradients of <function(x, kernel), cotangent>."""
  output = function(x, kernel)
  cotangent = _random(output.shape, seed)
  gradients = jax.grad(lambda x, kernel: jnp.vdot(function(x, kernel), cotangent),
                       argnums=(0, 1))(x, kernel)
  return output, gradients


def _assert_same(function, reference, x, kernel):
  output, (input_gradient, kernel_gradient) = _value_and_gradients(function, x, kernel, 7)
  expected, (expected_input, expected_kernel) = _value_and_gradients(reference, x, kernel, 7)
  np.testing.assert_allclose(output, expected, **TOLERANCE, err_msg="output")
  np.testing.assert_allclose(input_gradient, expected_input, **TOLERANCE,
                             err_msg="input gradient")
  np.testing.assert_allclose(kernel_gradient, expected_kernel, **TOLERANCE,
                             err_msg="kernel gradient")


# [batch, height, width, in_channels], out_channels: square and not, one
# channel as in Fashion-MNIST's last decoder layer, three as in RGB.
UPSAMPLE_SHAPES = [((2, 4, 4, 8), 5), ((2, 3, 5, 4), 1), ((1, 4, 6, 6), 3)]
DOWNSAMPLE_SHAPES = [((2, 8, 8, 3), 6), ((2, 6, 10, 1), 4), ((1, 4, 4, 8), 5)]


def test_plain_upsample_is_pytorch_transposed_conv():
  """Output 2i + t - 1 receives x[i] * kernel[t] along each axis, as in ConvTranspose2d(4, 2, 1)."""
  x, kernel = _random((1, 3, 2, 2), 0), _random((4, 4, 2, 3), 1)
  expected = np.zeros((1, 6, 4, 3))
  for i, j, ty, tx in itertools.product(range(3), range(2), range(4), range(4)):
    oy, ox = 2 * i + ty - 1, 2 * j + tx - 1
    if 0 <= oy < 6 and 0 <= ox < 4:
      expected[:, oy, ox] += np.asarray(x[:, i, j] @ kernel[ty, tx])
  np.testing.assert_allclose(_plain_upsample(x, kernel), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["subpixel", "shifted_subpixel", "dilated", "col2im"])
@pytest.mark.parametrize("x_shape,out_channels", UPSAMPLE_SHAPES)
def test_upsample_form_matches_plain(name, x_shape, out_channels):
  x = _random(x_shape, 2)
  kernel = _random((4, 4, x_shape[-1], out_channels), 3)
  _assert_same(upsample.UPSAMPLE_FUNCTIONS[name], _plain_upsample, x, kernel)


def test_weight_gradient_matches_autodiff():
  big, small = _random((2, 6, 8, 3), 6), _random((2, 3, 4, 5), 7)
  kernel = jnp.zeros((4, 4, 3, 5))
  _, transpose = jax.vjp(lambda kernel: _plain_downsample(big, kernel), kernel)
  np.testing.assert_allclose(upsample.weight_gradient(big, small), transpose(small)[0],
                             **TOLERANCE)


@pytest.mark.parametrize("form", sorted(upsample.UPSAMPLE_FUNCTIONS))
@pytest.mark.parametrize("x_shape,out_channels", UPSAMPLE_SHAPES)
def test_mixed_upsample_matches_plain(form, x_shape, out_channels):
  x = _random(x_shape, 8)
  kernel = _random((4, 4, x_shape[-1], out_channels), 9)
  _assert_same(lambda x, kernel: upsample.upsample_mixed(x, kernel, form), _plain_upsample,
               x, kernel)


@pytest.mark.parametrize("form", sorted(upsample.UPSAMPLE_FUNCTIONS))
@pytest.mark.parametrize("x_shape,out_channels", DOWNSAMPLE_SHAPES)
def test_mixed_downsample_matches_plain(form, x_shape, out_channels):
  x = _random(x_shape, 10)
  kernel = _random((4, 4, x_shape[-1], out_channels), 11)
  _assert_same(lambda x, kernel: upsample.downsample_mixed(x, kernel, form),
               _plain_downsample, x, kernel)


def test_mixed_forms_under_jit_and_bfloat16():
  x, kernel = _random((2, 4, 4, 8), 12), _random((4, 4, 8, 3), 13)

  def loss(x, kernel):
    output = upsample.upsample_mixed(x, kernel, "shifted_subpixel")
    return jnp.sum(output.astype(jnp.float32) ** 2)

  expected = jax.grad(loss, argnums=1)(x, kernel)
  low = jax.jit(jax.grad(loss, argnums=1))(x.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16))
  assert low.dtype == jnp.bfloat16
  scale = float(jnp.max(jnp.abs(expected)))
  np.testing.assert_allclose(low.astype(jnp.float32), expected, rtol=0.05, atol=0.05 * scale)


@pytest.mark.parametrize("small_size,big_channels", [(16, 1), (32, 3), (4, 256), (8, 128),
                                                     (16, 64), (2, 512)])
def test_cpu_upsample_form_is_known(small_size, big_channels):
  assert upsample.cpu_upsample_form(small_size, big_channels) in upsample.UPSAMPLE_FUNCTIONS


@pytest.mark.parametrize("formulation", upsample.UPSAMPLE_FORMULATIONS)
def test_upsample_module_forms_agree(formulation):
  x = _random((2, 4, 4, 6), 14)
  variables = upsample.Upsample(3, use_bias=True).init(jax.random.PRNGKey(0), x)
  module = upsample.Upsample(3, use_bias=True, formulation=formulation)

  def loss(params, x):
    return jnp.sum(jnp.sin(module.apply({"params": params}, x)))

  reference = upsample.Upsample(3, use_bias=True, formulation="dilated")

  def reference_loss(params, x):
    return jnp.sum(jnp.sin(reference.apply({"params": params}, x)))

  value, gradients = jax.value_and_grad(loss, argnums=(0, 1))(variables["params"], x)
  expected, expected_gradients = jax.value_and_grad(reference_loss, argnums=(0, 1))(
      variables["params"], x)
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  for leaf, expected_leaf in zip(jax.tree.leaves(gradients), jax.tree.leaves(expected_gradients)):
    np.testing.assert_allclose(leaf, expected_leaf, **TOLERANCE)


@pytest.mark.parametrize("formulation", upsample.DOWNSAMPLE_FORMULATIONS)
@pytest.mark.parametrize("use_bias", [True, False])
def test_downsample_module_is_flax_conv(formulation, use_bias):
  """Same parameter names, shapes and initial values as nn.Conv, and the same outputs."""
  x = _random((2, 8, 8, 3), 15)
  conv = nn.Conv(4, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)), use_bias=use_bias)
  down = upsample.Downsample(4, use_bias=use_bias, formulation=formulation,
                             init_scheme="lecun")
  conv_params = conv.init(jax.random.PRNGKey(1), x)["params"]
  down_params = down.init(jax.random.PRNGKey(1), x)["params"]

  assert jax.tree.structure(down_params) == jax.tree.structure(conv_params)
  for leaf, conv_leaf in zip(jax.tree.leaves(down_params), jax.tree.leaves(conv_params)):
    np.testing.assert_array_equal(leaf, conv_leaf)
  np.testing.assert_allclose(down.apply({"params": down_params}, x),
                             conv.apply({"params": conv_params}, x), **TOLERANCE)


def test_unknown_formulations_raise():
  x = jnp.ones((1, 4, 4, 2))
  with pytest.raises(ValueError, match="unknown upsample formulation 'transposed'"):
    upsample.Upsample(2, formulation="transposed").init(jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match="unknown downsample formulation 'im2col'"):
    upsample.Downsample(2, formulation="im2col").init(jax.random.PRNGKey(0), x)


class _ConvEncoder(nn.Module):
  """The encoder as it was built before Downsample: nn.Conv layers, for parameter paths."""

  features: tuple[int, ...]

  @nn.compact
  def __call__(self, x):
    for stage, features in enumerate(self.features):
      x = nn.Conv(features, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
                  use_bias=stage == 0)(x)
      if stage:
        x = nn.BatchNorm(use_running_average=True)(x)
    return x


def test_encoder_keeps_conv_parameter_paths():
  x = jnp.zeros((1, 16, 16, 1))
  encoder = Encoder((8, 16), init_scheme="lecun").init(jax.random.PRNGKey(2), x, train=False)
  conv_encoder = _ConvEncoder((8, 16)).init(jax.random.PRNGKey(2), x)
  assert jax.tree.structure(encoder) == jax.tree.structure(conv_encoder)
  for leaf, conv_leaf in zip(jax.tree.leaves(encoder), jax.tree.leaves(conv_encoder)):
    np.testing.assert_array_equal(leaf, conv_leaf)


def _generator_loss(formulation, variables, x):
  output, _ = ImageGenerator(16, 3, upsample=formulation).apply(
      variables, x, train=True, mutable=["batch_stats"])
  return jnp.mean(jnp.square(output - x))


def test_generator_auto_matches_subpixel():
  x = _random((2, 16, 16, 3), 16) * 0.5
  variables = ImageGenerator(16, 3, upsample="subpixel").init(jax.random.PRNGKey(3), x,
                                                              train=False)
  grads = {}
  for formulation in ("subpixel", "auto"):
    grads[formulation] = jax.grad(
        lambda params: _generator_loss(formulation, {**variables, "params": params}, x))(
            variables["params"])
  for auto, subpixel in zip(jax.tree.leaves(grads["auto"]), jax.tree.leaves(grads["subpixel"])):
    np.testing.assert_allclose(auto, subpixel, rtol=1e-3, atol=1e-6)


def test_encoder_auto_gradients_match_conv():
  """Input and parameter gradients in training mode, as both updates take them."""
  x = _random((2, 16, 16, 3), 17)
  variables = Encoder((8, 16)).init(jax.random.PRNGKey(4), x, train=False)

  def loss(params, x, downsample):
    (features, _), _ = Encoder((8, 16), downsample=downsample).apply(
        {**variables, "params": params}, x, train=True, mutable=["batch_stats"])
    return jnp.sum(jnp.tanh(features))

  auto = jax.grad(loss, argnums=(0, 1))(variables["params"], x, "auto")
  conv = jax.grad(loss, argnums=(0, 1))(variables["params"], x, "conv")
  for auto_leaf, conv_leaf in zip(jax.tree.leaves(auto), jax.tree.leaves(conv)):
    np.testing.assert_allclose(auto_leaf, conv_leaf, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("module,fan_in", [
    # PyTorch's fan-in: 16 taps times the input channels of a convolution
    # (here 32), but times the output channels of a transposed one (here 64).
    (upsample.Downsample(64), 16 * 32),
    (upsample.Upsample(64), 16 * 64),
])
def test_pytorch_init_draws_reference_uniform(module, fan_in):
  kernel = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 32)))["params"]["kernel"]
  bound = 1 / np.sqrt(fan_in)
  assert np.abs(kernel).max() <= bound
  # A uniform distribution on [-bound, bound] has standard deviation bound / sqrt(3).
  np.testing.assert_allclose(np.std(kernel), bound / np.sqrt(3), rtol=0.02)
  np.testing.assert_allclose(np.abs(kernel).max(), bound, rtol=0.01)
