"""Data parallelism over several devices and several processes matches one device."""

import json
import os
import signal
import subprocess
import sys

import pytest

from crossdomain import train
from tests import runs

pytestmark = pytest.mark.slow

# Adam with epsilon 1 updates nearly in proportion to the gradient, so
# rounding differences between device counts stay at rounding size; see
# tests/data_parallel_worker.py.
SMOOTH_ADAM = {"optimizer.eps": 1.0}
TOLERANCE = 1e-4


def test_image_updates_on_eight_devices_match_one():
  environment = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": "8",
                 "TF_CPP_MIN_LOG_LEVEL": "2"}
  result = subprocess.run([sys.executable, os.path.join("tests", "data_parallel_worker.py")],
                          cwd=runs.REPOSITORY, env=environment, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0, result.stdout + result.stderr[-3000:]
  assert result.stdout.count("max relative difference") == 7


def test_toy_run_on_eight_devices_matches_one(tmp_path):
  eight = runs.start(tmp_path / "eight", devices=8, num_steps=10, **SMOOTH_ADAM)
  one_device = train.train_and_evaluate(runs.tiny_config(num_steps=10, **SMOOTH_ADAM),
                                        str(tmp_path / "one"))
  assert "batch 16 over 8 devices" in runs.finish(eight)
  runs.assert_trees_close(one_device, runs.restore(str(tmp_path / "eight"), 10, **SMOOTH_ADAM),
                          TOLERANCE)


def test_two_processes_match_one(tmp_path):
  port = runs.free_port()
  processes = [runs.start(tmp_path / "pair", f"--coordinator_address=127.0.0.1:{port}",
                          "--num_processes=2", f"--process_id={index}", num_steps=10,
                          **SMOOTH_ADAM)
               for index in range(2)]
  single = train.train_and_evaluate(runs.tiny_config(num_steps=10, **SMOOTH_ADAM),
                                    str(tmp_path / "single"))
  logs = [runs.finish(process) for process in processes]

  assert "Process 1 of 2" in logs[1]
  runs.assert_trees_close(single, runs.restore(str(tmp_path / "pair"), 10, **SMOOTH_ADAM),
                          TOLERANCE)
  # Only process 0 writes metrics: one record per logging period and one
  # for the evaluation at the end, not two of each.
  with open(tmp_path / "pair" / "metrics.jsonl") as handle:
    steps = [json.loads(line)["step"] for line in handle]
  assert steps == [5, 10, 10]


def test_two_image_processes_stop_together(tmp_path):
  from tests.test_image_folders import write_color_folder

  folders = [write_color_folder(tmp_path / name, 32) for name in ("a", "b")]
  overrides = {"data.folder_a": folders[0], "data.folder_b": folders[1], "data.image_size": 8,
               "data.test_fraction": 0.25, "data.batch_size": 8, "num_steps": 1_000_000,
               "log_every": 5, "sample_every": 1_000_000, "checkpoint_every": 1_000_000,
               "eval.every": 5, "eval.patience": 1_000, "eval.evaluator_steps": 2,
               "eval.max_examples": 8, "eval.evaluator_dir": tmp_path / "evaluators"}
  port = runs.free_port()
  environment = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2",
                 "JAX_DISABLE_MOST_OPTIMIZATIONS": "true"}
  processes = [subprocess.Popen(
      [sys.executable, "-m", "crossdomain.main", "--config=configs/image_folders.py",
       f"--workdir={tmp_path / 'run'}", f"--coordinator_address=127.0.0.1:{port}",
       "--num_processes=2", f"--process_id={index}",
       *(f"--config.{name}={value}" for name, value in overrides.items())],
      cwd=runs.REPOSITORY, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True) for index in range(2)]
  try:
    # Both use one evaluator cache folder, so one process caches the
    # evaluator and the other loads that copy, perhaps after training its own.
    runs.wait_for(lambda: (tmp_path / "run" / "ideal_state.json").exists(), timeout=240)
    # A preempted pod signals its hosts at different moments, here only one.
    processes[1].send_signal(signal.SIGTERM)
    logs = [runs.finish(process, timeout=120) for process in processes]
  finally:
    for process in processes:
      process.kill()

  stopped = runs.saved_steps(str(tmp_path / "run"))[-1]
  assert stopped % 10 == 0  # the processes agree every 10 steps
  assert f"Stopped by SIGTERM after step {stopped}" in logs[1]
  assert f"Stopped after step {stopped} because another process" in logs[0]
  for log in logs:
    assert "eval at step 5" in log


def test_batch_must_divide_over_devices(tmp_path):
  process = runs.start(tmp_path, devices=8, **{"data.batch_size": 12})
  _, stderr = process.communicate(timeout=180)
  assert process.returncode != 0
  assert "error: data.batch_size 12 does not divide evenly over 8 devices; use a multiple of 8" in stderr
