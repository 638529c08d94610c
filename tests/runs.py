"""Start the main program on a tiny toy run and read back what it saved."""

import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np

from configs import gmm as gmm_config
from crossdomain import checkpointing, steps
from crossdomain.models import build_networks

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The same tiny toy run, as config overrides for the command line and in-process.
TINY = {"num_steps": 40, "log_every": 5, "sample_every": 1000, "checkpoint_every": 5,
        "data.num_train": 64, "data.num_test": 32, "data.batch_size": 16,
        "model.hidden": (16, 16)}


def tiny_config(**overrides):
  config = gmm_config.get_config()
  for name, value in {**TINY, **overrides}.items():
    section, _, field = name.rpartition(".")
    (config[section] if section else config)[field] = value
  return config


def start(workdir, *flags, devices=1, **overrides):
  """Start `python -m crossdomain.main` on the tiny toy run; return the Popen."""
  arguments = [f"--config.{name}={value}" for name, value in {**TINY, **overrides}.items()]
  environment = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2",
                 "JAX_DISABLE_MOST_OPTIMIZATIONS": "true", "JAX_NUM_CPU_DEVICES": str(devices)}
  return subprocess.Popen(
      [sys.executable, "-m", "crossdomain.main", "--config=configs/gmm.py",
       f"--workdir={workdir}", *arguments, *flags],
      cwd=REPOSITORY, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout=180):
  """Wait for a process; return its stderr, asserting that it exited 0."""
  _, stderr = process.communicate(timeout=timeout)
  assert process.returncode == 0, stderr[-3000:]
  return stderr


def saved_steps(workdir):
  folder = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(folder):
    return []
  return sorted(int(name) for name in os.listdir(folder) if name.isdigit())


def wait_for(condition, timeout=180.0):
  deadline = time.monotonic() + timeout
  while not condition():
    if time.monotonic() > deadline:
      raise AssertionError("timed out waiting for the training process")
    time.sleep(0.05)


def restore(workdir, step, **overrides):
  """Read the train state that a tiny toy run saved at `step`."""
  config = tiny_config(**overrides)
  networks = build_networks(config.model, (2,), (2,))
  template = steps.init_state(networks, config, (2,), (2,))
  manager = checkpointing.Checkpoints(workdir, config, checkpointing.make_meta(config, (2,), (2,)))
  try:
    return manager.restore(step, template)
  finally:
    manager.close()


def free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


def assert_trees_close(left, right, rtol=0.0):
  """Assert equal leaves, or leaves within rtol of each array's largest magnitude."""
  for x, y in zip(jax.tree.leaves(left), jax.tree.leaves(right), strict=True):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    scale = max(float(np.max(np.abs(x))), 1e-6) if x.size else 1.0
    np.testing.assert_allclose(x, y, rtol=0, atol=rtol * scale)
