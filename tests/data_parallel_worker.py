"""Run image-model updates on a one-device and an eight-device mesh and compare.

Started by tests/test_parallel.py in a process of its own with
JAX_NUM_CPU_DEVICES=8, because the device count is fixed when JAX starts.
Prints one line per check and exits 1 when a difference exceeds float32
rounding.

Two checks:
- one discriminator and one generator update from the same state, with the
  reference Adam: losses, batch statistics and Adam's first moment (half
  the gradient after one update) must agree;
- five updates in a row with Adam's epsilon at 1, where the update is
  nearly proportional to the gradient. With epsilon 1e-8 the first updates
  are close to learning_rate * sign(gradient), so a gradient element that
  rounding moves across zero changes its parameter by twice the learning
  rate, and parameters after several updates agree only to about 1%.
"""

import functools
import sys

import jax
import numpy as np

from crossdomain import config as config_lib, parallel, steps
from crossdomain.models import build_networks

SHAPE = (16, 16, 1)
BATCH = 16
TOLERANCE = 1e-4  # largest difference, relative to the largest magnitude of the array


def compile_updates(mesh, config, networks, state):
  replicated = parallel.replicated(mesh)
  state_sharding = jax.tree.map(lambda _: replicated, state)
  return {kind: jax.jit(functools.partial(fn, networks=networks, config=config),
                        out_shardings=(state_sharding, replicated))
          for kind, fn in (("D", steps.discriminator_step), ("G", steps.generator_step))}


def run(mesh, config, networks, batches, cycle):
  """Return the state after each update and the metrics, on this mesh."""
  state = steps.init_state(networks, config, SHAPE, SHAPE)
  update = compile_updates(mesh, config, networks, state)
  state = jax.device_put(state, parallel.replicated(mesh))
  sharding = parallel.batch_sharding(mesh)
  results = []
  for kind, (a, b) in zip(cycle, batches):
    state, metrics = update[kind](state, jax.device_put(a, sharding), jax.device_put(b, sharding))
    results.append(jax.device_get((state, metrics)))
  return results


def worst_difference(left, right) -> float:
  worst = 0.0
  for x, y in zip(jax.tree.leaves(left), jax.tree.leaves(right), strict=True):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    scale = max(float(np.max(np.abs(x))), 1e-6)
    worst = max(worst, float(np.max(np.abs(x - y))) / scale)
  return worst


def main():
  assert jax.device_count() == 8, jax.devices()
  one_device = jax.make_mesh((1,), (parallel.DATA_AXIS,), devices=jax.devices()[:1],
                             axis_types=(jax.sharding.AxisType.Auto,))
  eight_devices = parallel.make_mesh()
  rng = np.random.default_rng(0)
  batches = [(rng.uniform(-1, 1, (BATCH, *SHAPE)).astype(np.float32),
              rng.uniform(-1, 1, (BATCH, *SHAPE)).astype(np.float32)) for _ in range(5)]
  failed = False

  config = config_lib.base_config()
  networks = build_networks(config.model, SHAPE, SHAPE)
  for kind in "DG":
    (one_state, one_metrics), = run(one_device, config, networks, batches, kind)
    (eight_state, eight_metrics), = run(eight_devices, config, networks, batches, kind)
    for name, left, right in (
        ("losses", one_metrics, eight_metrics),
        ("batch statistics", (one_state.generator_stats, one_state.discriminator_stats),
         (eight_state.generator_stats, eight_state.discriminator_stats)),
        ("first moments", (one_state.generator_opt_state, one_state.discriminator_opt_state),
         (eight_state.generator_opt_state, eight_state.discriminator_opt_state))):
      difference = worst_difference(left, right)
      failed |= difference > TOLERANCE
      print(f"one {kind} update, {name}: max relative difference {difference:.2e}")

  config.optimizer.eps = 1.0
  one = run(one_device, config, networks, batches, "DGGDG")[-1][0]
  eight = run(eight_devices, config, networks, batches, "DGGDG")[-1][0]
  difference = worst_difference(one, eight)
  failed |= difference > TOLERANCE
  print(f"five updates, whole state: max relative difference {difference:.2e}")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
