"""The batch-size sweep of experiments/accelerator_benchmark.py, on made-up and tiny runs."""

import json
import os
import subprocess
import sys

import pytest

from experiments import accelerator_benchmark

REPOSITORY_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _measure_from(throughputs):
  """Return a measure function that reports the given images per second per batch size."""
  def measure(batch_size):
    value = throughputs[batch_size]
    if value is None:
      return {"batch_size": batch_size, "error": "RESOURCE_EXHAUSTED: out of memory"}
    return {"batch_size": batch_size, "images_per_second": value}
  return measure


def test_sweep_stops_when_throughput_flattens():
  measure = _measure_from({64: 100.0, 128: 180.0, 256: 185.0, 512: 400.0})
  records = accelerator_benchmark.sweep_batch_sizes([64, 128, 256, 512], 0.05, measure)
  assert [record["batch_size"] for record in records] == [64, 128, 256]


def test_sweep_stops_after_error():
  measure = _measure_from({64: 100.0, 128: None, 256: 300.0})
  records = accelerator_benchmark.sweep_batch_sizes([64, 128, 256], 0.05, measure)
  assert [record["batch_size"] for record in records] == [64, 128]
  assert "error" in records[-1]


def test_sweep_runs_every_size_while_rising():
  measure = _measure_from({64: 100.0, 128: 150.0, 256: 200.0})
  records = accelerator_benchmark.sweep_batch_sizes([64, 128, 256], 0.05, measure)
  assert len(records) == 3


def test_table_shows_failed_run():
  table = accelerator_benchmark.results_table([
      {"config": "configs/shoes_bags.py", "compute_dtype": "bfloat16", "upsample": "auto",
       "batch_size": 4096, "error": "RESOURCE_EXHAUSTED: | out of\nmemory"}])
  header, row = table.splitlines()[0], table.splitlines()[-1]
  assert row.startswith("| configs/shoes_bags.py | bfloat16 | auto | 4096 | "
                        "failed: RESOURCE_EXHAUSTED: / out of memory |")
  assert row.count("|") == header.count("|")


def _block_tensorflow(directory):
  """Make `import tensorflow` fail in processes that put directory first on their path."""
  package = directory / "tensorflow"
  package.mkdir()
  (package / "__init__.py").write_text("raise ImportError('TensorFlow is blocked')\n")
  return {**os.environ, "PYTHONPATH": os.pathsep.join(
      [str(directory), REPOSITORY_ROOT, os.environ.get("PYTHONPATH", "")])}


def _run_sweep(tmp_path, *arguments):
  command = [sys.executable, "-m", "experiments.accelerator_benchmark",
             "--configs=configs/gmm.py", "--dtypes=float32", "--timed_iterations=1",
             "--warmup_iterations=0", "--peak_matmul_size=64", f"--out={tmp_path / 'result'}",
             *arguments]
  return subprocess.run(command, cwd=REPOSITORY_ROOT, capture_output=True, text=True,
                        timeout=300, env=_block_tensorflow(tmp_path))


@pytest.mark.slow
def test_command_writes_results_without_tensorflow(tmp_path):
  # A min_gain of 100 (10,000%) ends the sweep after the second size.
  result = _run_sweep(tmp_path, "--batch_sizes=8,16,32", "--min_gain=100")
  assert result.returncode == 0, result.stderr[-2000:]
  results = json.loads((tmp_path / "result.json").read_text())
  assert results["settings"]["batch_sizes"] == [8, 16, 32]
  records = results["records"]
  assert [record["batch_size"] for record in records] == [8, 16]
  assert all(record["matmul_dtype"] == "float32" for record in records)
  assert all(record["config"] == "configs/gmm.py" for record in records)
  table = (tmp_path / "result.md").read_text()
  assert "| gmm | float32 | auto | 16 |" in table
  assert "jax " in table.splitlines()[0]


@pytest.mark.parametrize("argument,message", [
    ("--configs=configs/no_such.py", "--configs: config file not found: configs/no_such.py"),
    ("--dtypes=float16", "--dtypes must be a comma-separated list of"),
    ("--upsamples=subpixle", "--upsamples must be a comma-separated list of"),
    ("--batch_sizes=8,eight", "--batch_sizes must be positive integers, got '8,eight'"),
    ("--batch_sizes=0", "--batch_sizes must be positive integers, got '0'"),
])
def test_command_checks_flags_first(tmp_path, argument, message):
  result = _run_sweep(tmp_path, argument)
  assert result.returncode != 0
  assert message in result.stderr
  assert not (tmp_path / "result.json").exists()


def test_table_peak_counts_every_accelerator():
  record = {"config": "configs/shoes_bags.py", "config_data_name": "pix2pix",
            "compute_dtype": "bfloat16", "upsample": "auto",
            "batch_size": 256, "images_per_second": 900.0, "seconds_per_iteration": 0.28,
            "gflops_per_second": 2000.0, "matmul_peak_gflops_per_second": 400.0,
            "matmul_peak_devices": 8, "fraction_of_matmul_peak": 0.625,
            "compile_seconds": 30.0, "peak_memory_bytes": 2**30}
  row = accelerator_benchmark.results_table([record]).splitlines()[-1]
  assert "| 2000 | 3200 | 62% |" in row
