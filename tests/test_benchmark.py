"""The training benchmark on tiny configs: its record, its command line and the peer run."""

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest

from crossdomain import benchmark, parallel
from crossdomain.errors import UserInputError
from configs import fashion_shoes_bags, gmm, shoes_bags

REQUIRED_KEYS = ("compile_seconds", "seconds_per_iteration", "images_per_second",
                 "flops_per_iteration", "gflops_per_second", "matmul_peak_gflops_per_second",
                 "peak_memory_bytes")
REPOSITORY_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _assert_positive_figures(record):
  for key in REQUIRED_KEYS:
    assert key in record, key
    assert math.isfinite(record[key]), (key, record[key])
    assert record[key] > 0, (key, record[key])


def _small_image_config():
  config = shoes_bags.get_config()
  config.data.image_size = 16
  config.data.batch_size = 4
  return config


def test_example_shapes_follow_the_data_source():
  assert benchmark.example_shapes(shoes_bags.get_config().data) == ((64, 64, 3), (64, 64, 3))
  assert benchmark.example_shapes(fashion_shoes_bags.get_config().data) == (
      (32, 32, 1), (32, 32, 1))
  assert benchmark.example_shapes(gmm.get_config().data) == ((2,), (2,))
  config = shoes_bags.get_config()
  config.data.name = "csv"
  del config.data["image_size"]
  with pytest.raises(UserInputError, match="data.name .csv. is unknown"):
    benchmark.example_shapes(config.data)


@pytest.mark.parametrize("make_config", [gmm.get_config, _small_image_config])
def test_run_records_positive_figures(make_config):
  record = benchmark.run(make_config(), iterations=1, warmup=0, matmul_size=64)
  _assert_positive_figures(record)
  assert record["iterations"] == 1
  assert len(record["iteration_seconds"]) == 1
  assert len(record["matmul_peak_samples"]) == 1
  assert record["matmul_peak_gflops_per_second"] == record["matmul_peak_samples"][0]
  assert "peer" not in record
  report = benchmark.format_report(record)
  assert "compile, both steps" in report
  is_image = len(record["example_shape_a"]) == 3
  assert ("images per second" in report) == is_image
  assert ("examples per second" in report) != is_image
  assert ("upsample" in report) == is_image  # the toy's networks have no convolutions
  assert record["load_average_before"] >= 0
  assert "load average, 1 minute:" in report


def test_report_notes_too_small_peak():
  record = benchmark.run(gmm.get_config(), iterations=1, warmup=0, matmul_size=64)
  record["fraction_of_matmul_peak"] = 0.5
  assert "too small to measure the peak" not in benchmark.format_report(record)
  record["fraction_of_matmul_peak"] = 1.5
  assert "64^2 products are too small to measure the peak" in benchmark.format_report(record)


def test_layers_time_every_form():
  record = benchmark.run(_small_image_config(), iterations=1, warmup=0, matmul_size=64,
                         layer_rounds=1)
  layers = record["layers"]
  # 16x16 images have two stride-2 layer pairs: 16x16x3 / 8x8x64 and 8x8x64 / 4x4x128.
  assert {tuple(layer["big_shape"]) for layer in layers} == {(16, 16, 3), (8, 8, 64)}
  forms = {layer["form"] for layer in layers if layer["product"] == "transposed convolution"}
  assert forms == {"subpixel", "shifted_subpixel", "dilated", "col2im"}
  for layer in layers:
    assert layer["seconds"] > 0, layer
    assert math.isfinite(layer["gflops_per_second"]), layer
  assert "transposed convolution" in benchmark.format_report(record)


def test_image_options_reject_vector_configs():
  with pytest.raises(UserInputError, match="--layers times image networks"):
    benchmark.run(gmm.get_config(), iterations=1, warmup=0, matmul_size=64, layer_rounds=1)
  with pytest.raises(UserInputError, match="the PyTorch peer benchmarks images only"):
    benchmark.run(gmm.get_config(), iterations=1, warmup=0, matmul_size=64,
                  peer_python=sys.executable)


def test_matmul_peak_in_bfloat16():
  record = benchmark.run(gmm.get_config(), iterations=1, warmup=0, matmul_size=64,
                         matmul_dtype="bfloat16")
  _assert_positive_figures(record)
  assert record["matmul_dtype"] == "bfloat16"
  report = benchmark.format_report(record)
  assert "(bfloat16 64^2, median of 1 sample between" in report
  assert "NOTE: the networks compute in float32 but the peak was measured in bfloat16" in report


def test_run_rejects_unknown_matmul_dtype():
  with pytest.raises(UserInputError, match="--matmul_dtype must be one of .* got 'float16'"):
    benchmark.run(gmm.get_config(), iterations=1, warmup=0, matmul_size=64,
                  matmul_dtype="float16")


def test_run_rejects_zero_iterations():
  with pytest.raises(UserInputError, match="--iterations must be at least 1, got 0"):
    benchmark.run(gmm.get_config(), iterations=0, warmup=0, matmul_size=64)


def test_missing_peer_script_raises():
  with pytest.raises(UserInputError, match="peer script not found: .*no_such_peer.py"):
    benchmark.run(_small_image_config(), iterations=1, warmup=0, matmul_size=64,
                  peer_python=sys.executable, peer_script="no_such_peer.py")


def _write_fake_peer(path):
  """Write a script with the PyTorch peer's `bench` command line that prints fixed figures."""
  path.write_text(textwrap.dedent("""
      import json, sys
      arguments = sys.argv[1:]
      assert arguments[2] == "bench", arguments
      size = int(arguments[arguments.index("--size") + 1])
      print(json.dumps({"median_s_d_step": 0.25, "median_s_g_step": 0.75, "size": size,
                        "torch": "fake", "threads": int(arguments[1]), "mode": "lean",
                        "flops_per_iteration": 2e9, "gflops_per_s": 2.0}, indent=1))
      """))


def test_peer_figures_and_ratio(tmp_path):
  peer_script = tmp_path / "peer.py"
  _write_fake_peer(peer_script)
  record = benchmark.run(_small_image_config(), iterations=1, warmup=0, matmul_size=64,
                         peer_python=sys.executable, peer_script=str(peer_script))
  assert record["peer"]["size"] == 16
  assert record["peer_seconds_per_iteration"] == 1.0
  assert record["seconds_per_iteration_over_peer"] == pytest.approx(
      record["seconds_per_iteration"])
  assert record["gflops_per_second_peer_count"] == pytest.approx(
      2.0 / record["seconds_per_iteration"])
  assert "ours / peer" in benchmark.format_report(record)


def _command_line_record(devices: int = 1, batch_size: int = 32):
  """Run the benchmark command on the toy config in a process of its own and return its record."""
  environment = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",
                 "JAX_NUM_CPU_DEVICES": str(devices)}
  completed = subprocess.run(
      [sys.executable, "-m", "crossdomain.benchmark", "--config=configs/gmm.py",
       f"--config.data.batch_size={batch_size}", "--iterations=1", "--warmup=0", "--matmul_size=64",
       "--json"],
      cwd=REPOSITORY_ROOT, env=environment, capture_output=True, text=True, check=False)
  assert completed.returncode == 0, completed.stderr[-2000:]
  assert "Unable to initialize backend" not in completed.stderr
  return json.loads(completed.stdout)


def test_command_line_prints_only_json():
  record = _command_line_record()
  _assert_positive_figures(record)
  assert record["batch_size"] == 32
  assert record["devices"] == 1


@pytest.mark.slow
def test_operations_count_every_device():
  # XLA's cost analysis counts one device's share of the batch; the record
  # counts the whole iteration. Only the replicated Adam updates repeat on
  # every device: at batch 1024 they add 0.6% to the toy's operations.
  single, four = (_command_line_record(devices, batch_size=1024) for devices in (1, 4))
  assert four["devices"] == 4
  assert four["flops_per_iteration"] == pytest.approx(single["flops_per_iteration"], rel=0.05)
  # CPU devices share the cores, so the peak of one product is the machine's.
  assert four["matmul_peak_devices"] == 1
  assert four["fraction_of_matmul_peak"] == pytest.approx(
      four["gflops_per_second"] / four["matmul_peak_gflops_per_second"])


def test_callback_after_each_timed_iteration():
  config = gmm.get_config()
  config.data.batch_size = 4
  mesh = parallel.make_mesh()
  state, batch_a, batch_b, compiled, _, _ = benchmark.compile_steps(config, mesh)
  calls = []
  seconds = benchmark.time_iterations(compiled, state, batch_a, batch_b, iterations=3,
                                      warmup=2, after_each=lambda: calls.append(len(calls)))
  assert len(seconds) == 3
  assert calls == [0, 1, 2]
