"""Progress lines, figures and metric averages: the parts of a run its user looks at."""

import os
import time

import jax
import numpy as np

from crossdomain import data as data_lib, plotting
from crossdomain.data import pipeline


def sample_inputs(domains: data_lib.DomainPair, count: int) -> tuple[np.ndarray, np.ndarray]:
  """Return the held-out examples that every figure of the run translates, in model range."""
  if domains.is_image:
    count_a = count_b = min(count, len(domains.a.test), len(domains.b.test))
  else:
    count_a, count_b = len(domains.a.test), len(domains.b.test)
  inputs = [pipeline.to_model_range(domain.test[:n]).numpy()
            for domain, n in ((domains.a, count_a), (domains.b, count_b))]
  return inputs[0], inputs[1]


def save_figures(workdir: str, step: int, domains: data_lib.DomainPair,
                  inputs: tuple[np.ndarray, np.ndarray], outputs: dict[str, np.ndarray] | None,
                  history: list[dict]) -> None:
  """Write the sample grid or toy scatter of this step and the loss graph.

  Vector domains of unknown density have no sample figure, so for them
  `outputs` may be None and only the loss graph is written.
  """
  figures = os.path.join(workdir, "figures")
  if domains.is_image or domains.mixtures is not None:
    os.makedirs(figures, exist_ok=True)
  inputs_a, inputs_b = inputs
  if domains.is_image:
    rows = dict(zip(plotting.SAMPLE_ROWS, (inputs_a, outputs["ab"], outputs["aba"],
                                            inputs_b, outputs["ba"], outputs["bab"])))
    plotting.save_sample_grid(os.path.join(figures, f"samples_{step:07d}.png"), rows, step)
  elif domains.mixtures is not None:
    points = {"a": inputs_a, "b": inputs_b, "ab": outputs["ab"], "ba": outputs["ba"]}
    plotting.save_toy_scatter(os.path.join(figures, f"toy_scatter_{step:07d}.png"), points,
                              domains.a.test_labels, domains.b.test_labels, domains.mixtures, step)
  plotting.save_loss_plot(os.path.join(workdir, "losses.png"), history)


class Progress:
  """Training steps per second over the last logging period and the estimated time left.

  Time spent on other work, such as evaluations, is left out of the rate
  with `exclude`, so the rate stays that of the steps themselves.
  """

  def __init__(self, start_step: int, num_steps: int):
    self.num_steps = num_steps
    self.restart(start_step)

  def restart(self, step: int) -> None:
    """Measure the next period from `step` and now, for example once compilation is done."""
    self.last_step, self.last_time = step, time.perf_counter()

  def exclude(self, seconds: float) -> None:
    """Leave `seconds` of other work in this period out of the rate."""
    self.last_time += seconds

  def update(self, step: int, other_seconds_left: float = 0.0) -> tuple[float, float]:
    """Return (steps per second, seconds left) since the last update or restart.

    `other_seconds_left` is the expected time of the work besides the steps
    still to come, such as evaluations; the time left includes it.
    """
    now = time.perf_counter()
    rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
    self.last_step, self.last_time = step, now
    # No step since the last restart: the rate is unknown, and so is the time left.
    if rate <= 0:
      return rate, float("inf")
    return rate, (self.num_steps - step) / rate + other_seconds_left


def format_duration(seconds: float) -> str:
  if not np.isfinite(seconds):
    return "?"
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}"


def mean_metrics(window: list[dict[str, jax.Array]]) -> dict[str, float]:
  """Average each metric over the steps of a logging period that produced it."""
  fetched = jax.device_get(window)
  names = sorted({name for metrics in fetched for name in metrics})
  return {f"train_{name}": float(np.mean([m[name] for m in fetched if name in m]))
          for name in names}
