"""Saving and restoring runs with an orbax CheckpointManager.

Checkpoints live in WORKDIR/checkpoints/<step>, where <step> counts the
updates done. Orbax writes each one to a temporary folder and renames it
when complete, so a run killed mid-save never leaves a checkpoint that a
restart would pick up.

A checkpoint stores the train state in four items, so that a program that
only translates can read the generators alone, and a `meta` item that
records the config and example shapes it was made with.
"""

import json
import logging as logging_lib
import os
from typing import Any

import jax
import ml_collections
from absl import logging
import orbax.checkpoint as ocp

from crossdomain.errors import UserInputError
from crossdomain.steps import TrainState

STATE_ITEMS = ("generators", "discriminators", "optimizers", "progress")
META_ITEM = "meta"

# Config fields that decide which networks a checkpoint contains, or the
# kind of data. A checkpoint made with other values cannot be restored into
# this run.
_STRUCTURAL_FIELDS = ("model.tie_generators", "data.name")
# Layer widths of the networks of vector domains. Image networks never read them.
_VECTOR_STRUCTURAL_FIELDS = ("model.hidden",)
# Sections whose changes a resumed run accepts with a warning: it continues
# on other data, with another objective or optimizer, or with other compute.
_WARNED_SECTIONS = ("data", "loss", "seed", "optimizer", "model", "update_cycle")


def _split(state: TrainState) -> dict[str, Any]:
  return {
      "generators": {"params": state.generator_params, "batch_stats": state.generator_stats},
      "discriminators": {"params": state.discriminator_params,
                         "batch_stats": state.discriminator_stats},
      "optimizers": {"generator": state.generator_opt_state,
                     "discriminator": state.discriminator_opt_state},
      "progress": {"step": state.step, "rng": state.rng},
  }


def _join(items: dict[str, Any], template: TrainState) -> TrainState:
  return template.replace(
      step=items["progress"]["step"], rng=items["progress"]["rng"],
      generator_params=items["generators"]["params"],
      generator_stats=items["generators"]["batch_stats"],
      discriminator_params=items["discriminators"]["params"],
      discriminator_stats=items["discriminators"]["batch_stats"],
      generator_opt_state=items["optimizers"]["generator"],
      discriminator_opt_state=items["optimizers"]["discriminator"])


def make_meta(config: ml_collections.ConfigDict, shape_a, shape_b, columns_a=None,
              columns_b=None) -> dict[str, Any]:
  """Return what a checkpoint records about the run that wrote it.

  `columns_a` and `columns_b` are the header rows of CSV domains, or None.
  """
  return {"config": json.loads(config.to_json()),
          "example_shape_a": list(shape_a), "example_shape_b": list(shape_b),
          "columns_a": None if columns_a is None else list(columns_a),
          "columns_b": None if columns_b is None else list(columns_b)}


def _lookup(tree: dict, dotted: str):
  for key in dotted.split("."):
    if not isinstance(tree, dict) or key not in tree:
      return None
    tree = tree[key]
  return tree


def describe_mismatch(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
  """Return one line per structural difference between two runs' meta records."""
  differences = []
  for key in ("example_shape_a", "example_shape_b"):
    if saved.get(key) != current.get(key):
      differences.append(f"{key}: checkpoint {saved.get(key)}, this run {current.get(key)}")
  fields = _STRUCTURAL_FIELDS
  if len(saved.get("example_shape_a") or ()) == 1:
    fields += _VECTOR_STRUCTURAL_FIELDS
  for field in fields:
    before = _lookup(saved["config"], field)
    now = _lookup(current["config"], field)
    if json.dumps(before) != json.dumps(now):
      differences.append(f"config.{field}: checkpoint {before!r}, this run {now!r}")
  return differences


def describe_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
  """Return one line per changed setting of _WARNED_SECTIONS between two runs' meta records."""
  def flatten(tree, prefix):
    if not isinstance(tree, dict):
      return {prefix: tree}
    return {key: value for name, child in tree.items()
            for key, value in flatten(child, f"{prefix}.{name}").items()}

  changes = []
  for section in _WARNED_SECTIONS:
    before = flatten(_lookup(saved["config"], section), section)
    now = flatten(_lookup(current["config"], section), section)
    for field in sorted(set(before) | set(now)):
      if json.dumps(before.get(field)) != json.dumps(now.get(field)):
        changes.append(f"config.{field}: checkpoint {before.get(field)!r}, "
                       f"this run {now.get(field)!r}")
  return changes


def unreadable(directory: str, step: int, all_steps, error: Exception) -> UserInputError:
  """Return the error for a checkpoint that orbax failed to read, naming the way out."""
  older = sorted(saved for saved in all_steps if saved < step)
  remedy = (f"to resume from step {older[-1]}, the latest older checkpoint" if older
            else "to start the run again")
  # Orbax wraps TensorStore's error, whose first line names the file and the fault.
  root = error
  for _ in range(10):
    if (root.__cause__ or root.__context__) is None:
      break
    root = root.__cause__ or root.__context__
  lines = str(root).strip().splitlines()
  cause = f"{type(root).__name__}: {lines[0][:300]}" if lines else type(root).__name__
  return UserInputError(
      f"the checkpoint at step {step} in {directory} cannot be read ({cause}). A full disk "
      f"or a copy cut short can leave a checkpoint damaged. Move "
      f"{os.path.join(directory, str(step))} out of that folder {remedy}. To read another "
      "checkpoint, pass its step.")


def _check_fits(saved: dict[str, Any], meta: dict[str, Any], step: int, directory: str) -> None:
  """Raise UserInputError when the checkpoint at `step` was made by a run of another structure."""
  differences = describe_mismatch(saved, meta)
  if differences:
    raise UserInputError(
        f"the checkpoint at step {step} in {directory} does not fit this config:\n  "
        + "\n  ".join(differences)
        + "\nUse another --workdir, or the config the checkpoint was made with. "
          "The checkpoint was left unchanged.")


# Orbax warns twice whenever a CheckpointManager is opened read-only, which
# the programs here do on purpose.
_READ_ONLY_WARNINGS = ("Given directory is read only",
                       "CheckpointManagerOptions.read_only=True")


class _DropReadOnlyWarnings(logging_lib.Filter):

  def filter(self, record: logging_lib.LogRecord) -> bool:
    return not record.getMessage().startswith(_READ_ONLY_WARNINGS)


def open_read_only(directory: str) -> ocp.CheckpointManager:
  """Open the checkpoints in `directory` for reading, without orbax's warnings about it."""
  quiet = _DropReadOnlyWarnings()
  absl_logger = logging_lib.getLogger("absl")  # orbax logs through absl
  absl_logger.addFilter(quiet)
  try:
    return ocp.CheckpointManager(
        directory, options=ocp.CheckpointManagerOptions(read_only=True, create=False),
        item_names=(*STATE_ITEMS, META_ITEM))
  finally:
    absl_logger.removeFilter(quiet)


def check_workdir(workdir: str, meta: dict[str, Any]) -> None:
  """Raise UserInputError when the latest checkpoint in `workdir` does not fit `meta`.

  The checkpoints are opened read-only, so a run can check them before
  anything slow, such as an evaluator's training, and before it writes.
  """
  directory = os.path.join(os.path.abspath(workdir), "checkpoints")
  if not os.path.isdir(directory):
    return
  manager = open_read_only(directory)
  try:
    latest = manager.latest_step()
    if latest is not None:
      try:
        saved = manager.restore(latest, args=ocp.args.Composite(
            **{META_ITEM: ocp.args.JsonRestore()}))[META_ITEM]
      except Exception as error:  # orbax and TensorStore raise many kinds
        raise unreadable(directory, latest, manager.all_steps(), error) from error
      _check_fits(saved, meta, latest, directory)
  finally:
    manager.close()


def _abstract(tree):
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _best_step(meta: dict[str, Any] | None) -> int | None:
  """Return the best step that a meta item's selection entry names, if any."""
  return ((meta or {}).get("selection") or {}).get("best_step")


class _KeepStep(ocp.checkpoint_managers.PreservationPolicy):
  """Preservation policy that keeps the checkpoint of one step, which can change."""

  def __init__(self):
    self.step: int | None = None

  def should_preserve(self, checkpoints, *, context) -> list[bool]:
    del context
    return [info.step == self.step for info in checkpoints]


class Checkpoints:
  """The checkpoints of one run: the latest `config.keep_checkpoints` of them and the best."""

  def __init__(self, workdir: str, config: ml_collections.ConfigDict, meta: dict[str, Any]):
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    self._meta = meta
    # `save` takes the best step from the selection entry of the meta item,
    # and `restore` reads it back, so it survives a resume. Orbax's BestN is
    # not used: it ranks metrics that orbax writes to disk only when best_fn
    # is set.
    self._best = _KeepStep()
    policy = ocp.checkpoint_managers.AnyPreservationPolicy(
        [ocp.checkpoint_managers.LatestN(config.keep_checkpoints), self._best])
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policy,
        # Temporary folders of saves that a killed run left behind.
        cleanup_tmp_directories=True,
        create=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_names=(*STATE_ITEMS, META_ITEM))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, state: TrainState, extra: dict[str, Any] | None = None) -> None:
    """Start an asynchronous save of `state` under its step.

    Args:
      state: the train state.
      extra: more JSON-serializable facts to store in the meta item. Its
        "selection" entry names the run's "best_step" so far, whose
        checkpoint is kept beside the latest ones. Without one, the best
        step known before is kept.
    """
    best_step = _best_step(extra)
    if best_step is not None:
      self._best.step = best_step
    items = {name: ocp.args.StandardSave(tree) for name, tree in _split(state).items()}
    items[META_ITEM] = ocp.args.JsonSave({**self._meta, **(extra or {})})
    self._manager.save(int(state.step), args=ocp.args.Composite(**items), force=True)

  def read_meta(self, step: int) -> dict[str, Any]:
    return self._manager.restore(step, args=ocp.args.Composite(
        **{META_ITEM: ocp.args.JsonRestore()}))[META_ITEM]

  def restore(self, step: int, template: TrainState) -> TrainState:
    """Restore the state saved at `step` into the shapes and shardings of `template`.

    Raises:
      UserInputError: the checkpoint was made by a run of another structure.
    """
    try:
      saved = self.read_meta(step)
    except Exception as error:  # orbax and TensorStore raise many kinds
      raise unreadable(self.directory, step, self._manager.all_steps(), error) from error
    _check_fits(saved, self._meta, step, self.directory)
    self._best.step = _best_step(saved)
    changes = describe_changes(saved, self._meta)
    if changes:
      logging.warning("Resuming step %d with settings other than the checkpoint's:\n  %s",
                      step, "\n  ".join(changes))
    args = {name: ocp.args.StandardRestore(_abstract(tree))
            for name, tree in _split(template).items()}
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(**args))
    except Exception as error:
      raise unreadable(self.directory, step, self._manager.all_steps(), error) from error
    return _join(restored, template)

  def wait(self) -> None:
    """Block until pending asynchronous saves are on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Wait for pending saves to finish, then release the manager."""
    self._manager.wait_until_finished()
    self._manager.close()
