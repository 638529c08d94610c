"""Time each product of every stride-2 layer pair, in every exact form of models/upsample.py.

`python -m crossdomain.benchmark --layers` prints these figures. The rule
of upsample.cpu_upsample_form, which picks a form per layer, was chosen
from them on the CPU.
"""

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from crossdomain.models import image, upsample


def layer_shapes(image_size: int, channels: int) -> list[tuple[int, int, int]]:
  """Return (big size, big channels, small channels) of each stride-2 layer pair.

  Encoder stage i and the decoder layer that mirrors it share these
  shapes: the stride-2 convolution maps the big map to the small one, the
  transposed convolution the small map to the big one.
  """
  features = image.stage_features(image_size)
  big_channels = [channels, *features[:-1]]
  return [(image_size // 2**stage, big, small)
          for stage, (big, small) in enumerate(zip(big_channels, features))]


def _transposed_weight_gradient(form: str):
  """Return the kernel gradient of a transposed-convolution form as JAX differentiates it."""
  function = upsample.UPSAMPLE_FUNCTIONS[form]

  def weight_gradient(big, small, kernel):
    _, transpose = jax.vjp(lambda kernel: function(small, kernel), kernel)
    return transpose(big)[0]
  return weight_gradient


def _layer_products(big: jax.Array, small: jax.Array) -> dict[tuple[str, str], tuple]:
  """Return (jitted function, arguments) of each product of one layer pair, by (product, form)."""
  down_kernel = jnp.zeros((4, 4, big.shape[-1], small.shape[-1]), big.dtype)
  up_kernel = down_kernel.swapaxes(2, 3)
  # Arrays go in as arguments: captured as constants, XLA would fold the products.
  products = {
      ("convolution", "conv"): (jax.jit(upsample.downsample_conv), (big, down_kernel)),
      ("weight gradient", "conv"): (jax.jit(upsample.weight_gradient), (big, small)),
  }
  for form, function in upsample.UPSAMPLE_FUNCTIONS.items():
    products[("transposed convolution", form)] = (jax.jit(function), (small, up_kernel))
    # The dilated form's weight gradient took 2 to 19 s per call at these
    # shapes on 2 cores, so it is left out.
    if form != "dilated":
      products[("weight gradient", f"{form} autodiff")] = (
          jax.jit(_transposed_weight_gradient(form)), (big, small, up_kernel))
  return products


def time_layers(image_size: int, channels: int, batch_size: int, rounds: int) -> list[dict]:
  """Time every product of every stride-2 layer in every form, the forms taking turns.

  Returns:
    One record per layer, product and form: shapes, median seconds and GFLOP/s.
  """
  rng = np.random.default_rng(0)
  records = []
  for size, big_channels, small_channels in layer_shapes(image_size, channels):
    big = jnp.asarray(rng.normal(size=(batch_size, size, size, big_channels)), jnp.float32)
    small = jnp.asarray(rng.normal(size=(batch_size, size // 2, size // 2, small_channels)),
                        jnp.float32)
    products = _layer_products(big, small)
    for function, arguments in products.values():
      jax.block_until_ready(function(*arguments))

    # Round robin, so that a change in the machine's load hits every form alike.
    seconds = {key: [] for key in products}
    for _ in range(rounds):
      for key, (function, arguments) in products.items():
        start = time.perf_counter()
        jax.block_until_ready(function(*arguments))
        seconds[key].append(time.perf_counter() - start)

    # Every product takes one multiply-add per small-map pixel, kernel tap
    # (16) and pair of big and small channels.
    flops = 2 * batch_size * (size // 2) ** 2 * 16 * big_channels * small_channels
    for (product, form), times in seconds.items():
      median = statistics.median(times)
      records.append({"big_shape": [size, size, big_channels],
                      "small_shape": [size // 2, size // 2, small_channels],
                      "product": product, "form": form, "seconds": median,
                      "gflops_per_second": flops / median / 1e9})
  return records


def format_layers(records: list[dict]) -> str:
  """Return the per-layer records as a table, one line per layer and product."""
  lines = ["  per layer (big map <-> small map), median ms and GFLOP/s of each form:"]
  rows = {}
  for record in records:
    big = "x".join(str(side) for side in record["big_shape"])
    small = "x".join(str(side) for side in record["small_shape"])
    key = (f"{big} <-> {small}", record["product"])
    rows.setdefault(key, []).append(f"{record['form']} {record['seconds'] * 1e3:.1f} "
                                    f"({record['gflops_per_second']:.0f})")
  for (layer, product), cells in rows.items():
    lines.append(f"    {layer:22s} {product:22s} " + ", ".join(cells))
  return "\n".join(lines)
