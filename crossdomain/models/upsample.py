"""The decoder's 4x4 stride-2 transposed convolution, in two equivalent forms.

Both forms compute the same function of the same kernel: the transposed
convolution that doubles height and width with kernel 4, stride 2 and
padding 1 (the PyTorch `ConvTranspose2d(k=4, s=2, p=1)` of the reference
DiscoGAN). Output pixel `2m + r` along an axis receives input `x[m]` and one
neighbour, through two of the kernel's four taps:

    r = 0:  x[m - 1] * w[3] + x[m] * w[1]
    r = 1:  x[m] * w[2] + x[m + 1] * w[0]

`subpixel` computes each of the four output phases (r along height times r
along width) as a 2x2 convolution of the input and interleaves them
(depth-to-space). `dilated` is the textbook form: a convolution of the
zero-dilated input with the flipped kernel. On XLA's CPU backend the weight
gradient of the dilated form is several times slower, so `subpixel` is the
default.
"""

from typing import Literal

import jax
import jax.numpy as jnp
from flax import linen as nn

Formulation = Literal["subpixel", "dilated"]

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")

# Kernel taps used by output phase r, ordered to match the padded input
# window [x[m - 1 + r], x[m + r]].
_PHASE_TAPS = ((3, 1), (2, 0))


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
      phase_kernel = kernel[jnp.array(row_taps)][:, jnp.array(column_taps)]
      window = padded[:, row_phase:row_phase + height + 1,
                      column_phase:column_phase + width + 1]
      columns.append(jax.lax.conv_general_dilated(
          window, phase_kernel, (1, 1), "VALID", dimension_numbers=_DIMENSIONS))
    rows.append(jnp.stack(columns, axis=3))

  # [batch, height, row_phase, width, column_phase, channels] interleaves
  # the phases into [batch, 2 * height, 2 * width, channels].
  phases = jnp.stack(rows, axis=2)
  return phases.reshape(batch, 2 * height, 2 * width, out_channels)


def upsample_dilated(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Apply the transposed convolution as a convolution of the dilated input."""
  flipped = kernel[::-1, ::-1]
  return jax.lax.conv_general_dilated(
      x, flipped, window_strides=(1, 1), padding=((2, 2), (2, 2)),
      lhs_dilation=(2, 2), dimension_numbers=_DIMENSIONS)


class Upsample(nn.Module):
  """4x4 stride-2 transposed convolution that doubles height and width."""

  features: int
  use_bias: bool = False
  formulation: Formulation = "subpixel"
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (4, 4, x.shape[-1], self.features), jnp.float32)
    dtype = self.dtype or x.dtype
    x, kernel = x.astype(dtype), kernel.astype(dtype)

    if self.formulation == "subpixel":
      y = upsample_subpixel(x, kernel)
    elif self.formulation == "dilated":
      y = upsample_dilated(x, kernel)
    else:
      raise ValueError(f"unknown upsample formulation {self.formulation!r}; "
                       "expected 'subpixel' or 'dilated'")

    if self.use_bias:
      bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
      y = y + bias.astype(dtype)
    return y
