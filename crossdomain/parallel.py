"""The device mesh and the shardings of the train state and the batches.

Data parallelism over every device of every process: the state is
replicated, each global batch is split along its first axis over the mesh's
`data` axis, and the jitted step computes batch-norm statistics and
gradients over the whole global batch.
"""

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

from crossdomain.errors import UserInputError


DATA_AXIS = "data"


def make_mesh() -> jax.sharding.Mesh:
  """Return a one-axis mesh over all devices of all processes."""
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,),
                       axis_types=(jax.sharding.AxisType.Auto,))


def check_batch_size(batch_size: int, mesh: jax.sharding.Mesh) -> None:
  """Raise UserInputError unless the global batch divides evenly over the mesh."""
  devices = mesh.devices.size
  if batch_size % devices:
    raise UserInputError(f"data.batch_size {batch_size} does not divide evenly over {devices} "
                         f"devices; use a multiple of {devices}")


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def global_batch(local_rows: np.ndarray, mesh: jax.sharding.Mesh) -> jax.Array:
  """Assemble the global batch from this process's rows of it."""
  return jax.make_array_from_process_local_data(batch_sharding(mesh), local_rows)


def any_process(flag: bool) -> bool:
  """Return whether `flag` is true in any process of the run.

  In a run of several processes, each one waits here for all the others, so
  all of them must call it at the same step.
  """
  if jax.process_count() == 1:
    return flag
  flags = multihost_utils.process_allgather(np.array([flag], np.int32))
  return bool(np.any(flags))


def from_first_process(values: dict[str, float]) -> dict[str, float]:
  """Return process 0's `values`, in every process of the run.

  Processes that compute the same floats can still differ in the last
  bits, for example on GPUs. Decisions taken from them, such as when to
  stop, must be the same everywhere. All processes must call this together.
  """
  if jax.process_count() == 1:
    return values
  names = sorted(values)
  # Sent as the bits of float64 values, which JAX would round to float32.
  bits = np.array([values[name] for name in names], np.float64).view(np.uint32)
  received = np.asarray(multihost_utils.broadcast_one_to_all(bits)).view(np.float64)
  return {name: float(value) for name, value in zip(names, received)}


def on_first_local_device(abstract):
  """Return shapes and dtypes `abstract` placed on this process's first device.

  Restoring a checkpoint onto this target reads it whatever devices it was
  saved from, such as all devices of a data-parallel run.
  """
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(
      lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device), abstract)
