"""The networks' 4x4 stride-2 convolutions and transposed convolutions, in equivalent forms.

Every form computes the same function of the same kernel. The transposed
convolution doubles height and width with kernel 4, stride 2 and padding 1
(the PyTorch `ConvTranspose2d(k=4, s=2, p=1)` of the reference DiscoGAN).
Output pixel `2m + r` along an axis receives input `x[m]` and one
neighbour, through two of the kernel's four taps:

    r = 0:  x[m - 1] * w[3] + x[m] * w[1]
    r = 1:  x[m] * w[2] + x[m + 1] * w[0]

Transposed-convolution forms:

- `subpixel` computes each of the four output phases (r along height times
  r along width) as a 2x2 convolution of the input and interleaves them
  (depth-to-space).
- `shifted_subpixel` groups output pixels in 2x2 blocks that start one
  pixel earlier, rows (2m - 1, 2m) and likewise columns. Both pixels of such
  a block read the same inputs x[m - 1] and x[m], so one 2x2 convolution of
  the padded input to 4 * out_channels computes every block, and
  depth-to-space and a one-pixel crop give the output. It computes
  (height + 1) * (width + 1) blocks for height * width outputs, the cost of
  the shifted grid.
- `dilated` is the textbook form: a convolution of the zero-dilated input
  with the flipped kernel.
- `col2im` multiplies each input pixel by all 16 taps in one matrix product
  and adds the shifted tap maps into the four phases.

The transposed convolution with kernel w is the adjoint of the encoders'
4x4 stride-2 convolution (padding 1) with w's input and output channels
swapped, so the input gradient of each is the other. `auto` uses this on
XLA's CPU backend. Every layer, up or down, computes each stride-2
convolution and weight gradient with XLA's convolution, the fastest at
every shape measured, and each transposed convolution, forward pass or
input gradient, in the form that `cpu_upsample_form` picks for its shape.
The other forms are differentiated by JAX as written.
"""

import functools
from typing import Literal

import jax
import jax.numpy as jnp
from flax import linen as nn

Formulation = Literal["subpixel", "shifted_subpixel", "dilated", "col2im", "auto"]
DownsampleFormulation = Literal["conv", "auto"]
UPSAMPLE_FORMULATIONS = ("subpixel", "shifted_subpixel", "dilated", "col2im", "auto")
DOWNSAMPLE_FORMULATIONS = ("conv", "auto")

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")

# Kernel taps used by output phase r, ordered to match the padded input
# window [x[m - 1 + r], x[m + r]].
_PHASE_TAPS = ((3, 1), (2, 0))
# (tap, input offset d) pairs of output phase r: phase r of output pixel
# 2m + r receives x[m + d] * w[tap].
_PHASE_TAP_OFFSETS = (((3, -1), (1, 0)), ((2, 0), (0, 1)))


def upsample_subpixel(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Apply the transposed convolution as four 2x2 phase convolutions.

  Args:
    x: [batch, height, width, in_channels].
    kernel: [4, 4, in_channels, out_channels].

  Returns:
    [batch, 2 * height, 2 * width, out_channels].
  """
  batch, height, width, _ = x.shape
  out_channels = kernel.shape[-1]
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))

  rows = []
  for row_phase, row_taps in enumerate(_PHASE_TAPS):
    columns = []
    for column_phase, column_taps in enumerate(_PHASE_TAPS):
      # Taps (t, t - 2) as a strided slice, whose gradient needs no scatter.
      phase_kernel = kernel[row_taps[0]::-2, column_taps[0]::-2]
      window = padded[:, row_phase:row_phase + height + 1,
                      column_phase:column_phase + width + 1]
      columns.append(jax.lax.conv_general_dilated(
          window, phase_kernel, (1, 1), "VALID", dimension_numbers=_DIMENSIONS))
    rows.append(jnp.stack(columns, axis=3))

  # [batch, height, row_phase, width, column_phase, channels] interleaves
  # the phases into [batch, 2 * height, 2 * width, channels].
  phases = jnp.stack(rows, axis=2)
  return phases.reshape(batch, 2 * height, 2 * width, out_channels)


def upsample_shifted_subpixel(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Apply the transposed convolution as one 2x2 convolution to 2x2 output blocks.

  Args:
    x: [batch, height, width, in_channels].
    kernel: [4, 4, in_channels, out_channels].

  Returns:
    [batch, 2 * height, 2 * width, out_channels].
  """
  batch, height, width, in_channels = x.shape
  out_channels = kernel.shape[-1]
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))

  # Block m holds output rows (2m - 1, 2m), rho = 0 and 1, and reads window
  # rows (x[m - 1], x[m]), a = 0 and 1, through tap 2 * (1 - a) + rho, by
  # the phase equations above. Columns work the same way.
  taps = kernel.reshape(2, 2, 2, 2, in_channels, out_channels)  # [1 - a, rho, 1 - b, sigma, ...]
  block_kernel = taps[::-1, :, ::-1].transpose(0, 2, 4, 1, 3, 5).reshape(
      2, 2, in_channels, 4 * out_channels)
  blocks = jax.lax.conv_general_dilated(padded, block_kernel, (1, 1), "VALID",
                                        dimension_numbers=_DIMENSIONS)

  # [batch, height + 1, width + 1, (rho, sigma, channels)] to pixels -1 ..
  # 2 * height along each axis, then drop the first and the last.
  blocks = blocks.reshape(batch, height + 1, width + 1, 2, 2, out_channels)
  pixels = blocks.transpose(0, 1, 3, 2, 4, 5).reshape(
      batch, 2 * height + 2, 2 * width + 2, out_channels)
  return pixels[:, 1:-1, 1:-1]


def upsample_dilated(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Apply the transposed convolution as a convolution of the dilated input."""
  flipped = kernel[::-1, ::-1]
  return jax.lax.conv_general_dilated(
      x, flipped, window_strides=(1, 1), padding=((2, 2), (2, 2)),
      lhs_dilation=(2, 2), dimension_numbers=_DIMENSIONS)


def _shift(x: jax.Array, offset: int, axis: int) -> jax.Array:
  """Return y with y[m] = x[m + offset] along `axis`, zero where m + offset is outside."""
  if offset == 0:
    return x
  size = x.shape[axis]
  padding = [(0, 0)] * x.ndim
  padding[axis] = (1, 0) if offset < 0 else (0, 1)
  padded = jnp.pad(x, padding)
  start = 0 if offset < 0 else 1
  return jax.lax.slice_in_dim(padded, start, start + size, axis=axis)


def upsample_col2im(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Apply the transposed convolution as one matrix product to all taps, then col2im.

  Args:
    x: [batch, height, width, in_channels].
    kernel: [4, 4, in_channels, out_channels].

  Returns:
    [batch, 2 * height, 2 * width, out_channels].
  """
  in_channels, out_channels = kernel.shape[2:]
  # [in_channels, (tap_row, tap_column, out_channels)]
  matrix = kernel.transpose(2, 0, 1, 3).reshape(in_channels, 16 * out_channels)
  taps = jnp.dot(x.reshape(-1, in_channels), matrix)
  return _add_tap_maps(taps, x.shape, out_channels)


def downsample_input_gradient_col2im(gradient: jax.Array, kernel: jax.Array) -> jax.Array:
  """Return the stride-2 convolution's input gradient, `upsample_col2im` with channels swapped.

  The product contracts the kernel over its last axis where it lies, which
  spares XLA a transposed copy of the kernel on every call (8 MiB for 256 to 512
  channels).

  Args:
    gradient: the gradient of the convolution's output [batch, height, width, out_channels].
    kernel: the convolution's kernel [4, 4, in_channels, out_channels].

  Returns:
    [batch, 2 * height, 2 * width, in_channels].
  """
  in_channels, out_channels = kernel.shape[2:]
  # [(tap_row, tap_column, in_channels), out_channels], contracted over out_channels.
  matrix = kernel.reshape(16 * in_channels, out_channels)
  taps = jax.lax.dot_general(gradient.reshape(-1, out_channels), matrix,
                             (((1,), (1,)), ((), ())))
  return _add_tap_maps(taps, gradient.shape, in_channels)


def _add_tap_maps(taps: jax.Array, input_shape: tuple[int, ...], channels: int) -> jax.Array:
  """Add the shifted tap maps of `taps` [pixels, 16 * channels] into the four output phases."""
  batch, height, width, _ = input_shape
  taps = taps.reshape(batch, height, width, 4, 4, channels)

  rows = []
  for row_phase in range(2):
    columns = []
    for column_phase in range(2):
      phase = None
      for row_tap, row_offset in _PHASE_TAP_OFFSETS[row_phase]:
        for column_tap, column_offset in _PHASE_TAP_OFFSETS[column_phase]:
          term = _shift(_shift(taps[:, :, :, row_tap, column_tap], row_offset, 1),
                        column_offset, 2)
          phase = term if phase is None else phase + term
      columns.append(phase)
    rows.append(jnp.stack(columns, axis=3))
  phases = jnp.stack(rows, axis=2)
  return phases.reshape(batch, 2 * height, 2 * width, channels)


def downsample_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Apply the 4x4 stride-2 convolution with padding 1 as one XLA convolution."""
  return jax.lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)),
                                      dimension_numbers=_DIMENSIONS)


def weight_gradient(big: jax.Array, small: jax.Array) -> jax.Array:
  """Return the stride-2 convolution's kernel gradient, through XLA's own transpose.

  Args:
    big: the convolution's input [batch, height, width, in_channels].
    small: the gradient of its output [batch, height / 2, width / 2, out_channels].

  Returns:
    [4, 4, in_channels, out_channels].
  """
  zeros = jnp.zeros((4, 4, big.shape[-1], small.shape[-1]), big.dtype)
  _, transpose = jax.vjp(lambda kernel: downsample_conv(big, kernel), zeros)
  return transpose(small)[0]


# The transposed-convolution function of each explicit form.
UPSAMPLE_FUNCTIONS = {"subpixel": upsample_subpixel,
                      "shifted_subpixel": upsample_shifted_subpixel,
                      "dilated": upsample_dilated, "col2im": upsample_col2im}


def _swap_channels(kernel: jax.Array) -> jax.Array:
  return kernel.swapaxes(2, 3)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def downsample_mixed(x: jax.Array, kernel: jax.Array, upsample_form: str) -> jax.Array:
  """Apply the stride-2 convolution, with its input gradient computed as `upsample_form`.

  The forward pass is XLA's convolution and the weight gradient its
  transpose, which were fastest at every shape measured.
  """
  return downsample_conv(x, kernel)


def _downsample_mixed_forward(x, kernel, upsample_form):
  return downsample_conv(x, kernel), (x, kernel)


def _downsample_mixed_backward(upsample_form, residuals, gradient):
  x, kernel = residuals
  if upsample_form == "col2im":
    input_gradient = downsample_input_gradient_col2im(gradient, kernel)
  else:
    input_gradient = UPSAMPLE_FUNCTIONS[upsample_form](gradient, _swap_channels(kernel))
  return input_gradient, weight_gradient(x, gradient)


downsample_mixed.defvjp(_downsample_mixed_forward, _downsample_mixed_backward)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def upsample_mixed(x: jax.Array, kernel: jax.Array, upsample_form: str) -> jax.Array:
  """Apply the transposed convolution as `upsample_form`, with gradients by XLA's convolution."""
  return UPSAMPLE_FUNCTIONS[upsample_form](x, kernel)


def _upsample_mixed_forward(x, kernel, upsample_form):
  return UPSAMPLE_FUNCTIONS[upsample_form](x, kernel), (x, kernel)


def _upsample_mixed_backward(upsample_form, residuals, gradient):
  del upsample_form
  x, kernel = residuals
  input_gradient = downsample_conv(gradient, _swap_channels(kernel))
  return input_gradient, _swap_channels(weight_gradient(gradient, x))


upsample_mixed.defvjp(_upsample_mixed_forward, _upsample_mixed_backward)


def cpu_upsample_form(small_size: int, big_channels: int) -> str:
  """Return the transposed-convolution form measured fastest on XLA's CPU backend.

  Args:
    small_size: height of the smaller map (the transposed convolution's
      input, the stride-2 convolution's output).
    big_channels: channels of the larger map.
  """
  # Median ms per call at batch 64, measured 2026-12-05 on a 2-core Intel
  # Xeon (AVX-512) with jax 0.10.2 by `python -m crossdomain.benchmark
  # --config=configs/shoes_bags.py --layers` (and fashion_shoes_bags.py):
  #
  #   input -> output           subpixel  shifted_subpixel  dilated  col2im
  #   32x32x64  -> 64x64x3         42.5          7.9           7.1     3.4
  #   16x16x128 -> 32x32x64        24.5         20.3          48.7    48.4
  #   8x8x256   -> 16x16x128       20.9         20.3          32.9    19.2
  #   4x4x512   -> 8x8x256         17.8         25.1          22.1    15.5
  #   16x16x64  -> 32x32x1          4.6          1.6           1.1     0.5
  #   8x8x128   -> 16x16x64         7.5          5.6           6.9     4.9
  #   4x4x256   -> 8x8x128          5.4          6.4           5.6     4.4
  #
  # col2im wins while its 16 tap maps stay small or the big map has few
  # channels. From a 16x16 input on, adding up the tap maps costs more than
  # the shifted grid's extra border.
  if small_size >= 16 and big_channels > 4:
    return "shifted_subpixel"
  return "col2im"


def uses_auto_forms() -> bool:
  """Return whether `auto` mixes forms: only on XLA's CPU backend, where they were measured."""
  return jax.default_backend() == "cpu"


INIT_SCHEMES = ("pytorch", "lecun")


def kernel_initializer(init_scheme: str, transposed: bool) -> nn.initializers.Initializer:
  """Return the initializer of a [4, 4, in, out] kernel.

  "pytorch" draws from U(-1/sqrt(n), 1/sqrt(n)), as torch.nn.Conv2d and
  ConvTranspose2d do by default, and so does the reference implementation.
  n is 16 times the input channels of a convolution, but 16 times the output
  channels of a transposed convolution, since PyTorch counts the second axis
  of its weight. "lecun" is Flax's default, a truncated normal of variance
  1/n with n = 16 times the input channels. Its kernels are 1.2 to 1.7 times
  larger in every layer but the decoder's last, and behind batch norm larger
  kernels make Adam's steps smaller relative to the weights.
  """
  if init_scheme == "lecun":
    return nn.initializers.lecun_normal()
  if init_scheme == "pytorch":
    # Flax's uniform variance scaling has limit sqrt(3 * scale / n).
    in_axis, out_axis = (-1, -2) if transposed else (-2, -1)
    return nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform",
                                            in_axis=in_axis, out_axis=out_axis)
  raise ValueError(f"unknown init scheme {init_scheme!r}; expected one of {INIT_SCHEMES}")


class Upsample(nn.Module):
  """4x4 stride-2 transposed convolution that doubles height and width."""

  features: int
  use_bias: bool = False
  formulation: Formulation = "auto"  # as in ImageGenerator
  dtype: jnp.dtype | None = None
  init_scheme: str = "pytorch"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", kernel_initializer(self.init_scheme, transposed=True),
                        (4, 4, x.shape[-1], self.features), jnp.float32)
    dtype = self.dtype or x.dtype
    x, kernel = x.astype(dtype), kernel.astype(dtype)

    if self.formulation == "auto":
      if uses_auto_forms():
        y = upsample_mixed(x, kernel, cpu_upsample_form(x.shape[1], self.features))
      else:
        # NOTE: no accelerator has been measured; the previous default stays.
        y = upsample_subpixel(x, kernel)
    elif self.formulation in UPSAMPLE_FUNCTIONS:
      y = UPSAMPLE_FUNCTIONS[self.formulation](x, kernel)
    else:
      raise ValueError(f"unknown upsample formulation {self.formulation!r}; "
                       f"expected one of {UPSAMPLE_FORMULATIONS}")

    if self.use_bias:
      bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
      y = y + bias.astype(dtype)
    return y


class Downsample(nn.Module):
  """4x4 stride-2 convolution with padding 1 that halves height and width.

  Its parameters, `kernel` [4, 4, in, out] and `bias` [out], have the names
  and shapes of `nn.Conv(features, (4, 4), strides=(2, 2), padding=((1, 1),
  (1, 1)))`, so a Downsample named like that Conv loads its checkpoints; with
  init "lecun" it also draws the same initial values.
  """

  features: int
  use_bias: bool = True
  formulation: DownsampleFormulation = "auto"
  dtype: jnp.dtype | None = None
  init_scheme: str = "pytorch"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", kernel_initializer(self.init_scheme, transposed=False),
                        (4, 4, x.shape[-1], self.features), jnp.float32)
    # Without a dtype, nn.Conv computes in the promoted type of input and kernel.
    dtype = self.dtype or jnp.promote_types(x.dtype, jnp.float32)
    x, kernel = x.astype(dtype), kernel.astype(dtype)

    if self.formulation == "auto":
      if uses_auto_forms():
        y = downsample_mixed(x, kernel, cpu_upsample_form(x.shape[1] // 2, x.shape[-1]))
      else:
        y = downsample_conv(x, kernel)
    elif self.formulation == "conv":
      y = downsample_conv(x, kernel)
    else:
      raise ValueError(f"unknown downsample formulation {self.formulation!r}; "
                       f"expected one of {DOWNSAMPLE_FORMULATIONS}")

    if self.use_bias:
      bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
      y = y + bias.astype(dtype)
    return y
