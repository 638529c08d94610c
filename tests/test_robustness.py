"""Runs that are stopped, killed, diverge or meet a checkpoint of another model."""

import gc
import json
import logging
import os
import signal
import sys
import time

import jax
import jax.numpy as jnp
import pytest

from crossdomain import checkpointing, steps, train, workdir_lock
from crossdomain.divergence import TrainingDivergedError
from crossdomain.errors import UserInputError
from tests import runs


@pytest.mark.slow
def test_sigterm_saves_checkpoint_and_exits_zero(tmp_path, caplog):
  process = runs.start(tmp_path, num_steps=1_000_000, checkpoint_every=1_000_000, log_every=20,
                       sample_every=1_000_000)
  runs.wait_for(lambda: os.path.exists(tmp_path / "metrics.jsonl")
                and os.path.getsize(tmp_path / "metrics.jsonl") > 0)
  process.send_signal(signal.SIGTERM)
  assert "Stopped by SIGTERM" in runs.finish(process)
  # No sample figures were due, but the stop draws the loss graph.
  assert os.path.getsize(tmp_path / "losses.png") > 0
  saved = runs.saved_steps(str(tmp_path))
  assert len(saved) == 1
  assert saved[0] >= 20
  # The steps since the last logged period are logged at the stop.
  with open(tmp_path / "metrics.jsonl") as handle:
    assert json.loads(handle.readlines()[-1])["step"] == saved[0]

  with caplog.at_level(logging.INFO):
    train.train_and_evaluate(runs.tiny_config(num_steps=saved[0] + 2), str(tmp_path))
  assert f"Resuming from the checkpoint at step {saved[0]}" in caplog.text
  assert runs.saved_steps(str(tmp_path))[-1] == saved[0] + 2


@pytest.mark.slow
def test_sigkill_at_any_point_resumes_exactly(tmp_path):
  whole = train.train_and_evaluate(runs.tiny_config(), str(tmp_path / "whole"))

  killed = tmp_path / "killed"
  # Kill right after a checkpoint appears, while the next ones are written,
  # and after a delay that lands between checkpoints.
  for kill_when in (lambda: runs.saved_steps(str(killed)),
                    lambda: len(runs.saved_steps(str(killed))) >= 3,
                    lambda: len(runs.saved_steps(str(killed))) >= 4):
    process = runs.start(killed)
    runs.wait_for(lambda: kill_when() or process.poll() is not None)
    process.kill()
    process.communicate(timeout=60)
  resumed = train.train_and_evaluate(runs.tiny_config(), str(killed))

  assert runs.saved_steps(str(killed))[-1] == 40
  runs.assert_trees_close(runs.restore(str(killed), 40), whole)
  runs.assert_trees_close(resumed, whole)


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
  config = runs.tiny_config(log_every=1, checkpoint_every=2)
  with pytest.raises(TrainingDivergedError, match="loss g_loss of the generators is nan at step 6"):
    train.train_and_evaluate(config, str(tmp_path))
  assert runs.saved_steps(str(tmp_path)) == [2, 4]
  assert int(runs.restore(str(tmp_path), 4).step) == 4


def test_nonfinite_parameters_stop_before_checkpoint(tmp_path, monkeypatch):
  # Poisoned at a checkpoint step, before any later loss could show it.
  _inject(monkeypatch, at_step=8, params=True)
  config = runs.tiny_config(checkpoint_every=4)
  with pytest.raises(TrainingDivergedError, match="parameters of g_ab.* at step 8"):
    train.train_and_evaluate(config, str(tmp_path))
  assert runs.saved_steps(str(tmp_path)) == [4]


def _snapshot(folder):
  files = {}
  for root, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(root, name)
      with open(path, "rb") as handle:
        files[os.path.relpath(path, folder)] = handle.read()
  return files


def test_resume_with_changed_data_warns(tmp_path, caplog):
  train.train_and_evaluate(runs.tiny_config(num_steps=4), str(tmp_path))
  changed = runs.tiny_config(num_steps=6, **{"data.variance_b": 0.5})
  with caplog.at_level(logging.WARNING):
    train.train_and_evaluate(changed, str(tmp_path))
  assert "Resuming step 4 with settings other than the checkpoint's" in caplog.text
  assert "config.data.variance_b: checkpoint 0.1, this run 0.5" in caplog.text
  # num_steps is expected to change on resume and is not reported.
  assert "num_steps" not in caplog.text


def test_checkpoint_of_other_model_is_rejected_untouched(tmp_path, monkeypatch):
  train.train_and_evaluate(runs.tiny_config(num_steps=5), str(tmp_path))
  before = _snapshot(tmp_path / "checkpoints")

  def make_quality(*args):
    raise AssertionError("the quality measure, which may train an evaluator, came first")

  # The mismatch is found before anything slow, such as an evaluator's training.
  monkeypatch.setattr(train.quality_lib, "make_quality", make_quality)
  other = runs.tiny_config(num_steps=10, **{"model.hidden": (32, 32),
                                        "model.tie_generators": False})
  with pytest.raises(UserInputError) as error:
    train.train_and_evaluate(other, str(tmp_path))
  message = str(error.value)
  assert "does not fit this config" in message
  assert "config.model.hidden: checkpoint [16, 16], this run [32, 32]" in message
  assert "config.model.tie_generators: checkpoint True, this run False" in message
  assert _snapshot(tmp_path / "checkpoints") == before


def test_image_runs_ignore_hidden_widths():
  def meta(shape, hidden):
    return {"example_shape_a": list(shape), "example_shape_b": list(shape),
            "config": {"model": {"hidden": hidden, "tie_generators": True},
                       "data": {"name": "pix2pix"}}}

  # Image networks never read model.hidden, so a change must not block a resume.
  assert checkpointing.describe_mismatch(meta((8, 8, 3), [16]), meta((8, 8, 3), [32])) == []
  assert checkpointing.describe_mismatch(meta((2,), [16]), meta((2,), [32])) == [
      "config.model.hidden: checkpoint [16], this run [32]"]


def test_dispatch_window_waits_for_older_steps():
  @jax.jit
  def slow(x):
    # About 0.1 s on a CPU core, so that no result is ready as soon as it is dispatched.
    return jax.lax.fori_loop(0, 40, lambda _, y: jnp.tanh(y @ y), x)

  x = jnp.full((512, 512), 1e-3)
  jax.block_until_ready(slow(x))  # compile
  window = train.DispatchWindow(limit=2)
  outputs = []
  for _ in range(5):
    outputs.append(slow(x))
    window.add(outputs[-1])
  assert all(output.is_ready() for output in outputs[:3])
  jax.block_until_ready(outputs)


def test_repeated_signal_counts_once_then_kills(monkeypatch):
  from crossdomain import preemption

  kills, now = [], [100.0]
  monkeypatch.setattr(preemption.os, "kill", lambda pid, signum: kills.append(signum))
  monkeypatch.setattr(preemption.signal, "signal", lambda signum, handler: None)
  monkeypatch.setattr(preemption.time, "monotonic", lambda: now[0])
  stop = preemption.StopRequest()

  stop._handle(signal.SIGINT, None)
  now[0] += 0.2  # the copy that `uv run` forwards
  stop._handle(signal.SIGINT, None)
  assert stop.requested
  assert kills == []

  now[0] += preemption.REPEAT_SECONDS  # a second Ctrl-C, to end a run that hangs
  stop._handle(signal.SIGINT, None)
  assert kills == [signal.SIGINT]


@pytest.fixture
def interrupt_hooks():
  """Restore the SIGINT handler and sys.unraisablehook that a test replaces."""
  previous_handler, previous_hook = signal.getsignal(signal.SIGINT), sys.unraisablehook
  yield
  signal.signal(signal.SIGINT, previous_handler)
  sys.unraisablehook = previous_hook


def _wait_for_interrupt(seconds=5.0):
  deadline = time.monotonic() + seconds
  while time.monotonic() < deadline:
    time.sleep(0.01)


def test_dropped_ctrl_c_is_redelivered(interrupt_hooks):
  from crossdomain import preemption

  signal.signal(signal.SIGINT, signal.default_int_handler)
  preemption.install_interrupt_redelivery()
  raised = []

  def callback(phase, info):
    del info
    if phase == "start" and not raised:
      raised.append(True)
      raise KeyboardInterrupt  # Python drops it and calls sys.unraisablehook

  gc.callbacks.append(callback)
  try:
    gc.collect()
  finally:
    gc.callbacks.remove(callback)
  assert raised == [True]
  with pytest.raises(KeyboardInterrupt):
    _wait_for_interrupt()


def test_ignored_sigint_stays_ignored(interrupt_hooks):
  from crossdomain import preemption

  hook = sys.unraisablehook
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  preemption.install_interrupt_redelivery()
  assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
  assert sys.unraisablehook is hook


def _largest_file(folder) -> str:
  paths = [os.path.join(root, name) for root, _, names in os.walk(folder) for name in names]
  return max(paths, key=os.path.getsize)


@pytest.mark.parametrize("item", ["generators", "meta"])
def test_damaged_checkpoint_names_the_way_out(tmp_path, item):
  config = runs.tiny_config(num_steps=4, checkpoint_every=2)
  train.train_and_evaluate(config, str(tmp_path))
  damaged = _largest_file(tmp_path / "checkpoints" / "4" / item)
  with open(damaged, "r+b") as handle:
    handle.truncate(os.path.getsize(damaged) // 2)
  older = _snapshot(tmp_path / "checkpoints" / "2")

  config.num_steps = 6
  with pytest.raises(UserInputError) as error:
    train.train_and_evaluate(config, str(tmp_path))

  message = str(error.value)
  assert "the checkpoint at step 4" in message
  assert "cannot be read" in message
  assert "to resume from step 2" in message
  assert "\n" not in message
  assert _snapshot(tmp_path / "checkpoints" / "2") == older

  # The way out that the message names works.
  os.rename(tmp_path / "checkpoints" / "4", tmp_path / "damaged_4")
  assert int(train.train_and_evaluate(config, str(tmp_path)).step) == 6


def test_half_written_metrics_line_is_dropped(tmp_path, caplog):
  train.train_and_evaluate(runs.tiny_config(num_steps=5), str(tmp_path))
  with open(tmp_path / "metrics.jsonl", "a") as handle:
    handle.write('{"step": 7, "train_g_lo')

  with caplog.at_level(logging.WARNING):
    train.train_and_evaluate(runs.tiny_config(num_steps=10), str(tmp_path))

  assert "Skipped 1 unreadable line of" in caplog.text
  with open(tmp_path / "metrics.jsonl") as handle:
    steps = [json.loads(line)["step"] for line in handle]
  # A training record and an evaluation record at each run's last step.
  assert steps == [5, 5, 10, 10]


def test_resume_with_changed_optimizer_warns(tmp_path, caplog):
  train.train_and_evaluate(runs.tiny_config(num_steps=4), str(tmp_path))
  changed = runs.tiny_config(num_steps=6, **{"optimizer.learning_rate": 1e-3,
                                             "update_cycle": "DGG"})
  with caplog.at_level(logging.WARNING):
    train.train_and_evaluate(changed, str(tmp_path))

  assert "config.optimizer.learning_rate: checkpoint 0.0002, this run 0.001" in caplog.text
  assert "config.update_cycle: checkpoint 'DG', this run 'DGG'" in caplog.text


def test_second_run_on_a_busy_workdir_stops(tmp_path):
  with workdir_lock.hold(str(tmp_path)):
    with pytest.raises(UserInputError, match=r"is in use by another run \(process \d+ on "):
      train.train_and_evaluate(runs.tiny_config(num_steps=2), str(tmp_path))

  # Once the first run has ended, the workdir is free again, and the lock
  # file no longer names a process.
  assert int(train.train_and_evaluate(runs.tiny_config(num_steps=2), str(tmp_path)).step) == 2
  assert (tmp_path / workdir_lock.LOCK_FILENAME).read_text() == ""


def test_workdir_that_is_a_file_is_rejected(tmp_path):
  workdir = tmp_path / "run"
  workdir.write_text("notes\n")
  with pytest.raises(UserInputError, match=f"--workdir {workdir} is a file; pass a folder"):
    train.train_and_evaluate(runs.tiny_config(num_steps=2), str(workdir))

  assert workdir.read_text() == "notes\n"


def test_failed_setup_leaves_no_workdir(tmp_path):
  workdir = tmp_path / "run"
  with pytest.raises(UserInputError, match="batch_size"):
    train.train_and_evaluate(runs.tiny_config(**{"data.batch_size": 1000}), str(workdir))

  assert not os.path.exists(workdir)
