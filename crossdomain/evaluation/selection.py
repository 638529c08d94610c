"""Choose a run's best step by one metric, and stop when it no longer improves.

The "ideal state" of a run is the evaluated step with the best value of
`eval.metric`. Training stops early once `eval.patience` evaluations in a
row have not improved on the best by more than `eval.min_delta`.
"""

import dataclasses
import json
import os
from collections.abc import Iterable

import ml_collections

from crossdomain.errors import UserInputError

# Metrics where a lower value is better; every other metric is better higher.
LOWER_IS_BETTER_PREFIXES = ("frechet_distance", "kid", "cycle_mse")


def lower_is_better(metric: str) -> bool:
  return metric.startswith(LOWER_IS_BETTER_PREFIXES)


@dataclasses.dataclass
class Selection:
  """The evaluations of a run so far and the best one among them."""

  metric: str
  patience: int
  min_delta: float
  history: list[tuple[int, dict[str, float]]] = dataclasses.field(default_factory=list)
  best_step: int | None = None
  best_metrics: dict[str, float] | None = None
  evaluations_since_best: int = 0
  # The step of a resume that started the record again under another measure
  # of quality. Evaluations up to it are not candidates for the best step.
  restarted_at: int | None = None

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "Selection":
    return cls(config.metric, config.patience, config.min_delta)

  @property
  def best_value(self) -> float | None:
    return None if self.best_metrics is None else self.best_metrics[self.metric]

  def _improves(self, value: float) -> bool:
    if self.best_value is None:
      return True
    if lower_is_better(self.metric):
      return value < self.best_value - self.min_delta
    return value > self.best_value + self.min_delta

  def check_metric(self, measured: Iterable[str]) -> None:
    """Raise UserInputError unless the metric is one of the `measured` names."""
    measured = sorted(measured)
    if not self.metric:
      raise UserInputError(f"config.eval.metric is empty; name the metric that picks the best "
                           f"step, one of {measured}")
    if self.metric not in measured:
      raise UserInputError(f"eval.metric {self.metric!r} is not measured for this data; "
                           f"choose one of {measured}")

  def update(self, step: int, values: dict[str, float]) -> bool:
    """Record an evaluation; return whether it is the new best."""
    self.check_metric(values)
    self.history.append((step, dict(values)))
    if self._improves(values[self.metric]):
      self.best_step, self.best_metrics = step, dict(values)
      self.evaluations_since_best = 0
      return True
    self.evaluations_since_best += 1
    return False

  @property
  def should_stop(self) -> bool:
    return self.patience > 0 and self.evaluations_since_best >= self.patience

  def rule(self) -> str:
    direction = "lowest" if lower_is_better(self.metric) else "highest"
    text = f"the evaluated step with the {direction} {self.metric}"
    if self.patience > 0:
      text += (f"; training stops after {self.patience} evaluations in a row that do not "
               "improve on it")
      if self.min_delta > 0:
        text += f" by more than {self.min_delta}"
    return text

  @property
  def candidates(self) -> int:
    """Count the evaluations that the best step was chosen from."""
    first = -1 if self.restarted_at is None else self.restarted_at
    return sum(step > first for step, _ in self.history)

  def ideal_state(self, stopped_early: bool, details: dict[str, str]) -> dict:
    """Return the record written to ideal_state.json."""
    return {"step": self.best_step, "metric": self.metric, "value": self.best_value,
            "lower_is_better": lower_is_better(self.metric), "rule": self.rule(),
            "stopped_early": stopped_early, "evaluations": self.candidates,
            "record_restarted_at_step": self.restarted_at,
            "last_evaluated_step": self.history[-1][0] if self.history else None,
            "metrics": self.best_metrics, "details": details}


def write_json(path: str, record: dict) -> None:
  """Write JSON through a temporary file, so a killed run never leaves half a file."""
  temporary = f"{path}.tmp"
  with open(temporary, "w") as handle:
    json.dump(record, handle, indent=2)
    handle.write("\n")
  os.replace(temporary, path)
