"""Saving and restoring the train state with an orbax CheckpointManager.

Checkpoints live in WORKDIR/checkpoints/<step>, where <step> counts the
updates done. Orbax writes each one to a temporary folder and renames it
when complete, so a run killed mid-save never leaves a checkpoint that a
restart would pick up.
"""

import os

import jax
import ml_collections
import orbax.checkpoint as ocp


class Checkpoints:
  """The latest `keep` checkpoints of one run."""

  def __init__(self, workdir: str, config: ml_collections.ConfigDict):
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.LatestN(config.keep_checkpoints),
        create=True)
    self._manager = ocp.CheckpointManager(
        os.path.join(os.path.abspath(workdir), "checkpoints"), options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, state) -> None:
    """Start an asynchronous save of `state` under its step."""
    self._manager.save(int(state.step), args=ocp.args.StandardSave(state), force=True)

  def restore(self, step: int, template):
    """Restore the state saved at `step` with the shapes, dtypes and shardings of `template`."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def close(self) -> None:
    """Wait for pending saves to finish, then release the manager."""
    self._manager.wait_until_finished()
    self._manager.close()
