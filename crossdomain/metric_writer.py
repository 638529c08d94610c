"""Scalars of a run in WORKDIR/metrics.jsonl and in TensorBoard event files."""

import json
import os

import tensorflow as tf


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
    with open(self.path, "w") as handle:
      for record in self.history:
        handle.write(json.dumps(record) + "\n")
    self._summary = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))

  @staticmethod
  def read(path: str) -> list[dict]:
    """Return the records of a metrics.jsonl file, or [] when there is none."""
    if not os.path.exists(path):
      return []
    with open(path) as handle:
      return [json.loads(line) for line in handle if line.strip()]

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
