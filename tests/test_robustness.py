"""Runs that are stopped, killed, diverge or meet a checkpoint of another model."""

import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import gmm as gmm_config
from crossdomain import checkpointing, steps, train
from crossdomain.divergence import TrainingDivergedError
from crossdomain.errors import UserInputError

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The same tiny toy run, as config overrides for the command line and in-process.
TINY = {"num_steps": 40, "log_every": 5, "sample_every": 1000, "checkpoint_every": 5,
        "data.num_train": 64, "data.num_test": 32, "data.batch_size": 16,
        "model.hidden": (16, 16)}


def _tiny_config(**overrides):
  config = gmm_config.get_config()
  for name, value in {**TINY, **overrides}.items():
    section, _, field = name.rpartition(".")
    (config[section] if section else config)[field] = value
  return config


def _start(workdir, **overrides):
  arguments = [f"--config.{name}={value}" for name, value in {**TINY, **overrides}.items()]
  environment = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2",
                 "JAX_DISABLE_MOST_OPTIMIZATIONS": "true"}
  return subprocess.Popen(
      [sys.executable, "-m", "crossdomain.main", "--config=configs/gmm.py",
       f"--workdir={workdir}", *arguments],
      cwd=REPOSITORY, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _saved_steps(workdir):
  folder = os.path.join(workdir, "checkpoints")
  return sorted(int(name) for name in os.listdir(folder) if name.isdigit()) if os.path.isdir(
      folder) else []


def _wait_for(condition, timeout=120.0):
  deadline = time.monotonic() + timeout
  while not condition():
    if time.monotonic() > deadline:
      raise AssertionError("timed out waiting for the training process")
    time.sleep(0.05)


def _restore(workdir, step):
  config = _tiny_config()
  networks = train.build_networks(config.model, (2,), (2,))
  template = steps.init_state(networks, config, (2,), (2,))
  meta = checkpointing.make_meta(config, (2,), (2,))
  manager = checkpointing.Checkpoints(workdir, config, meta)
  try:
    return manager.restore(step, template)
  finally:
    manager.close()


def _assert_trees_equal(left, right):
  for x, y in zip(jax.tree.leaves(left), jax.tree.leaves(right), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_sigterm_saves_checkpoint_and_exits_zero(tmp_path):
  process = _start(tmp_path, num_steps=1_000_000, checkpoint_every=1_000_000, log_every=20)
  _wait_for(lambda: os.path.exists(tmp_path / "metrics.jsonl")
            and os.path.getsize(tmp_path / "metrics.jsonl") > 0)
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=120)

  assert process.returncode == 0, stderr[-3000:]
  assert "Stopped by SIGTERM" in stderr
  saved = _saved_steps(str(tmp_path))
  assert len(saved) == 1 and saved[0] >= 20

  resumed = _start(tmp_path, num_steps=saved[0] + 2)
  _, stderr = resumed.communicate(timeout=120)
  assert resumed.returncode == 0, stderr[-3000:]
  assert f"Resuming from the checkpoint at step {saved[0]}" in stderr
  assert _saved_steps(str(tmp_path))[-1] == saved[0] + 2


def test_sigkill_at_any_point_resumes_exactly(tmp_path):
  uninterrupted = _start(tmp_path / "whole")
  _, stderr = uninterrupted.communicate(timeout=120)
  assert uninterrupted.returncode == 0, stderr[-3000:]

  killed = tmp_path / "killed"
  # Kill right after a checkpoint appears, while the next ones are written,
  # and after a delay that lands between checkpoints.
  for kill_when in (lambda: _saved_steps(str(killed)),
                    lambda: len(_saved_steps(str(killed))) >= 3,
                    lambda: len(_saved_steps(str(killed))) >= 4):
    process = _start(killed)
    _wait_for(lambda: kill_when() or process.poll() is not None)
    process.kill()
    process.communicate(timeout=60)
  final = _start(killed)
  _, stderr = final.communicate(timeout=120)
  assert final.returncode == 0, stderr[-3000:]

  assert _saved_steps(str(killed))[-1] == 40
  _assert_trees_equal(_restore(str(killed), 40), _restore(str(tmp_path / "whole"), 40))


def _inject(monkeypatch, at_step, *, loss=False, params=False):
  """Make the generator update write NaN into its loss or parameters at one step."""
  original = steps.generator_step

  def generator_step(state, batch_a, batch_b, **kwargs):
    new_state, metrics = original(state, batch_a, batch_b, **kwargs)
    hit = state.step + 1 == at_step
    if loss:
      metrics = {**metrics, "g_loss": jnp.where(hit, jnp.nan, metrics["g_loss"])}
    if params:
      poisoned = jax.tree.map(lambda p: jnp.where(hit, jnp.nan, p), new_state.generator_params)
      new_state = new_state.replace(generator_params=poisoned)
    return new_state, metrics

  monkeypatch.setattr(steps, "generator_step", generator_step)


def test_nonfinite_loss_stops_run(tmp_path, monkeypatch):
  _inject(monkeypatch, at_step=6, loss=True)
  config = _tiny_config(log_every=1, checkpoint_every=2)
  with pytest.raises(TrainingDivergedError, match="loss g_loss of the generators is nan at step 6"):
    train.train_and_evaluate(config, str(tmp_path))
  assert _saved_steps(str(tmp_path)) == [2, 4]
  assert int(_restore(str(tmp_path), 4).step) == 4


def test_nonfinite_parameters_stop_before_checkpoint(tmp_path, monkeypatch):
  # Poisoned at a checkpoint step, before any later loss could show it.
  _inject(monkeypatch, at_step=8, params=True)
  config = _tiny_config(checkpoint_every=4)
  with pytest.raises(TrainingDivergedError, match="parameters of g_ab.* at step 8"):
    train.train_and_evaluate(config, str(tmp_path))
  assert _saved_steps(str(tmp_path)) == [4]


def _snapshot(folder):
  files = {}
  for root, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(root, name)
      with open(path, "rb") as handle:
        files[os.path.relpath(path, folder)] = handle.read()
  return files


def test_checkpoint_of_other_model_is_rejected_untouched(tmp_path):
  train.train_and_evaluate(_tiny_config(num_steps=5), str(tmp_path))
  before = _snapshot(tmp_path / "checkpoints")

  other = _tiny_config(num_steps=10, **{"model.hidden": (32, 32),
                                        "model.tie_generators": False})
  with pytest.raises(UserInputError) as error:
    train.train_and_evaluate(other, str(tmp_path))
  message = str(error.value)
  assert "does not fit this config" in message
  assert "config.model.hidden: checkpoint [16, 16], this run [32, 32]" in message
  assert "config.model.tie_generators: checkpoint True, this run False" in message
  assert _snapshot(tmp_path / "checkpoints") == before
