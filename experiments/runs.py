"""Training runs shared by the experiments: one run per dataset, variant, seed and dtype."""

import json
import os
import shlex
import time

import jax
import numpy as np
from absl import logging

from configs import fashion_shoes_bags, gmm, gmm_ring
from crossdomain import train

VARIANTS = ("gan", "recongan", "discogan")
DEFAULT_WORKDIR = "runs/experiments"  # where the experiments keep their runs
CONFIGS = {"gmm": gmm.get_config, "gmm_ring": gmm_ring.get_config,
           "fashion": fashion_shoes_bags.get_config}
# Metrics reported per dataset, in table order.
REPORTED = {
    "toy": ("mode_coverage_ab", "mode_coverage_ba", "high_quality_ab", "high_quality_ba",
            "cycle_mse_a", "cycle_mse_b", "coverage_quality"),
    "image": ("target_accuracy_ab", "target_accuracy_ba", "frechet_distance_ab",
              "frechet_distance_floor_b", "frechet_distance_ba", "frechet_distance_floor_a",
              "kid_ab", "kid_ba", "cycle_mse_a", "cycle_mse_b", "subclass_probe_accuracy",
              "subclass_probe_chance"),
}


def _trained_steps(workdir: str) -> int | None:
  """Return the step of a run's latest checkpoint, or None when it has none."""
  folder = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(folder):
    return None
  steps = [int(name) for name in os.listdir(folder) if name.isdigit()]
  return max(steps, default=None)


def run_one(dataset: str, variant: str, seed: int, *, root: str, fashion_steps: int,
            toy_steps: int | None = None, compute_dtype: str = "float32") -> dict:
  """Train one run, or reuse a finished one, and return its ideal state and training time.

  The run's folder under `root` names the dataset, variant and seed, and the
  compute dtype when it is not float32. A run stopped before its last step
  is resumed. `toy_steps` None keeps the toy config's steps.

  Raises:
    SystemExit: the run's folder contains a run of more steps than requested,
      whose results would not be those of the requested steps.
  """
  config = CONFIGS[dataset]()
  config.seed = seed
  config.loss.variant = variant
  config.model.compute_dtype = compute_dtype
  config.eval.patience = 0
  if dataset == "fashion":
    config.num_steps = fashion_steps
  elif toy_steps is not None:
    config.num_steps = toy_steps
  config.eval.every = max(config.num_steps // 4, 1) if dataset == "fashion" else min(
      2_000, config.num_steps)
  name = f"{dataset}_{variant}_seed{seed}"
  if compute_dtype != "float32":
    name += f"_{compute_dtype}"
  workdir = os.path.join(root, name)
  trained = _trained_steps(workdir)
  if trained is not None and trained > config.num_steps:
    raise SystemExit(f"error: {workdir} contains a run of {trained} steps, more than the "
                     f"{config.num_steps} requested; delete it or pass another --workdir")
  timing = os.path.join(workdir, "training_seconds.json")
  seconds = 0.0
  if os.path.exists(timing):
    with open(timing) as handle:
      seconds = json.load(handle)["seconds"]
  elif trained == config.num_steps:
    logging.warning("%s finished without this script, so its training time is unknown",
                    workdir)
    seconds = float("nan")
  if trained != config.num_steps:
    # Finished runs are reused with their recorded time; others train on.
    start = time.perf_counter()
    train.train_and_evaluate(config, workdir)
    seconds += time.perf_counter() - start
    with open(timing, "w") as handle:
      json.dump({"seconds": seconds}, handle)
  with open(os.path.join(workdir, "ideal_state.json")) as handle:
    ideal = json.load(handle)
  return {"workdir": workdir, "seconds": seconds, "num_steps": config.num_steps, **ideal}


def mean_std(values: list[float]) -> str:
  """Format values as "mean ± sample standard deviation", or the value alone."""
  if len(values) == 1:
    return f"{values[0]:.4g}"
  return f"{np.mean(values):.4g} ± {np.std(values, ddof=1):.2g}"


def seeds_for(dataset: str, seeds: int, fashion_seeds: int | None) -> int:
  """Return how many seeds a dataset runs: `fashion_seeds` for Fashion-MNIST when set."""
  if dataset == "fashion" and fashion_seeds is not None:
    return fashion_seeds
  return seeds


def provenance(module: str, datasets: list[str], seeds: int, fashion_steps: int,
               fashion_seeds: int | None, toy_steps: int | None, workdir: str,
               seconds: float) -> str:
  """Return the line that names the command, date, devices and time behind a results page."""
  command = (f"uv run python -m experiments.{module} --datasets={','.join(datasets)} "
             f"--seeds={seeds} --fashion_steps={fashion_steps}")
  if fashion_seeds is not None:
    command += f" --fashion_seeds={fashion_seeds}"
  if toy_steps is not None:
    command += f" --toy_steps={toy_steps}"
  if workdir != DEFAULT_WORKDIR:
    command += f" --workdir={shlex.quote(workdir)}"
  return (f"Produced by `{command}` on {time.strftime('%Y-%m-%d')}, "
          f"{jax.device_count()} {jax.devices()[0].platform.upper()} device(s), "
          f"{seconds / 60:.1f} minutes for this command; runs that had finished before, if "
          "any, were reused.")


def check_flags(datasets: list[str], seeds: int, fashion_seeds: int | None) -> None:
  """Raise SystemExit with a one-line message for datasets or seed counts that cannot run."""
  unknown = [name for name in datasets if name not in CONFIGS]
  if unknown or not datasets:
    raise SystemExit(f"error: --datasets must name some of {sorted(CONFIGS)}, got {datasets}")
  if seeds < 1 or (fashion_seeds is not None and fashion_seeds < 1):
    raise SystemExit(f"error: --seeds and --fashion_seeds must be at least 1, got {seeds} "
                     f"and {fashion_seeds}")
