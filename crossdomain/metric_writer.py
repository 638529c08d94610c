"""Scalars of a run in WORKDIR/metrics.jsonl and in TensorBoard event files."""

import json
import os

import tensorflow as tf
from absl import logging


class MetricWriter:
  """Append one record per logged step; only the writing process creates files."""

  def __init__(self, workdir: str, start_step: int, enabled: bool = True):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.enabled = enabled
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    # A run killed after its last checkpoint logged steps that the resumed
    # run repeats; keep the records up to the step it resumes from.
    self.history = [record for record in self.read(self.path) if record["step"] <= start_step]
    # Written aside and renamed, so that a kill here leaves the old file whole.
    temporary = self.path + ".tmp"
    with open(temporary, "w") as handle:
      for record in self.history:
        handle.write(json.dumps(record) + "\n")
    os.replace(temporary, self.path)
    self._summary = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))

  @staticmethod
  def read(path: str) -> list[dict]:
    """Return the records of a metrics.jsonl file, or [] when there is none.

    Lines that are not a JSON record with a step, such as the last line of
    a run killed while it wrote, are skipped with a warning.
    """
    if not os.path.exists(path):
      return []
    records, unreadable = [], []
    with open(path) as handle:
      for number, line in enumerate(handle, 1):
        if not line.strip():
          continue
        try:
          record = json.loads(line)
        except json.JSONDecodeError:
          record = None
        if isinstance(record, dict) and isinstance(record.get("step"), int):
          records.append(record)
        else:
          unreadable.append(number)
    if unreadable:
      logging.warning("Skipped %d unreadable %s of %s (line %s), such as a line cut short "
                      "when a run was killed; the file keeps only the readable records.",
                      len(unreadable), "line" if len(unreadable) == 1 else "lines", path,
                      ", ".join(map(str, unreadable[:5])))
    return records

  def write(self, step: int, scalars: dict[str, float]) -> None:
    if not self.enabled:
      return
    record = {"step": step, **{name: float(value) for name, value in scalars.items()}}
    self.history.append(record)
    with open(self.path, "a") as handle:
      handle.write(json.dumps(record) + "\n")
    with self._summary.as_default(step=step):
      for name, value in scalars.items():
        tf.summary.scalar(name, value)
    self._summary.flush()

  def close(self) -> None:
    if self.enabled:
      self._summary.close()
