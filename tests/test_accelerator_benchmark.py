"""The batch-size sweep of experiments/accelerator_benchmark.py, on made-up and tiny runs."""

import json
import os
import subprocess
import sys

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
      {"config_data_name": "pix2pix", "compute_dtype": "bfloat16", "upsample": "auto",
       "batch_size": 4096, "error": "RESOURCE_EXHAUSTED: | out of\nmemory"}])
  row = table.splitlines()[-1]
  assert row.startswith("| pix2pix | bfloat16 | auto | 4096 | "
                        "failed: RESOURCE_EXHAUSTED: / out of memory |")
  assert row.count("|") == table.splitlines()[0].count("|")


# Python code that runs the command where importing TensorFlow fails, as on
# accelerator images that lack it.
_WITHOUT_TENSORFLOW = ("import runpy, sys; sys.modules['tensorflow'] = None; "
                       "runpy.run_module('experiments.accelerator_benchmark', "
                       "run_name='__main__', alter_sys=True)")


def test_command_writes_results_without_tensorflow(tmp_path):
  out = tmp_path / "result"
  command = [sys.executable, "-c", _WITHOUT_TENSORFLOW,
             "--configs=configs/gmm.py", "--dtypes=float32", "--batch_sizes=8,16",
             "--min_gain=100", "--iterations=1", "--warmup=0", "--matmul_size=64",
             f"--out={out}"]
  result = subprocess.run(command, cwd=REPOSITORY_ROOT, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  records = json.loads((tmp_path / "result.json").read_text())
  # A min_gain of 100 (10,000%) ends the sweep after the second size.
  assert [record["batch_size"] for record in records] == [8, 16]
  assert all(record["matmul_dtype"] == "float32" for record in records)
  table = (tmp_path / "result.md").read_text()
  assert "| gmm | float32 | auto | 16 |" in table
