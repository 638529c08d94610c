"""Time the train step on a GPU or TPU over batch sizes, compute dtypes and forms.

    python -m experiments.accelerator_benchmark --out=runs/accelerator_benchmark

For each config, compute dtype and transposed-convolution form, it runs
`crossdomain.benchmark.run` at each batch size of --batch_sizes in turn. It
stops after the first batch size whose images per second are not
--min_gain above the best so far, or that runs out of device memory. The matmul peak is measured in the compute
dtype, so a bfloat16 run is compared with the bfloat16 peak. It writes
every record to OUT.json and a table to OUT.md, and prints the table.

Nothing here imports TensorFlow, so it also runs where only JAX, Flax,
optax, absl and ml_collections are installed. The PyTorch peer runs on the
CPU only, so it is not part of these runs.
"""

import importlib.util
import json
import os
import sys
from collections.abc import Callable

import jax
import ml_collections
from absl import app, flags, logging

from crossdomain import benchmark, cli
from crossdomain.errors import UserInputError

_CONFIGS = flags.DEFINE_list(
    "configs", ["configs/shoes_bags.py", "configs/fashion_shoes_bags.py"],
    "Run config files; only their data shape, model, losses and optimizer matter.")
_DTYPES = flags.DEFINE_list("dtypes", ["float32", "bfloat16"],
                            f"Compute dtypes, any of {benchmark.MATMUL_DTYPES}.")
_UPSAMPLES = flags.DEFINE_list(
    "upsamples", ["auto"], "Transposed-convolution forms (model.upsample) to compare; "
    "off the CPU, auto is subpixel.")
_BATCH_SIZES = flags.DEFINE_list(
    "batch_sizes", ["64", "128", "256", "512", "1024", "2048"],
    "Batch sizes per domain, in the order they are tried.")
_MIN_GAIN = flags.DEFINE_float(
    "min_gain", 0.05, "Relative rise in images per second over the best so far that a "
    "batch size needs for the next one to be tried.")
# --iterations, --warmup and --matmul_size are crossdomain.benchmark's flags.
# Accelerator steps take milliseconds, so more of them are timed, and their
# matmul peak needs larger products.
flags.FLAGS.set_default("iterations", 10)
flags.FLAGS.set_default("warmup", 3)
flags.FLAGS.set_default("matmul_size", 8192)
_OUT = flags.DEFINE_string("out", "runs/accelerator_benchmark",
                           "Path of the results without extension: OUT.json and OUT.md.")


def load_config(path: str) -> ml_collections.ConfigDict:
  """Return get_config() of a config file, as --config=PATH would load it."""
  spec = importlib.util.spec_from_file_location("benchmarked_config", path)
  if not os.path.isfile(path) or spec is None or spec.loader is None:
    raise UserInputError(f"config file not found or not a Python file: {path}")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def sweep_batch_sizes(batch_sizes: list[int], min_gain: float,
                      measure: Callable[[int], dict]) -> list[dict]:
  """Measure batch sizes in order until throughput stops rising, and return the records.

  A record with an "error" key (out of memory, say) ends the sweep, and so
  does the first record whose images per second are not min_gain above the
  best before it.
  """
  records, best = [], 0.0
  for batch_size in batch_sizes:
    record = measure(batch_size)
    records.append(record)
    if "error" in record:
      break
    throughput = record["images_per_second"]
    if best and throughput < best * (1 + min_gain):
      break
    best = max(best, throughput)
  return records


def measure_one(config: ml_collections.ConfigDict, dtype: str, upsample: str,
                batch_size: int) -> dict:
  """Run the benchmark at one setting, or record why it failed."""
  config = config.copy_and_resolve_references()
  config.data.batch_size = batch_size
  config.model.compute_dtype = dtype
  config.model.upsample = upsample
  try:
    return benchmark.run(config, iterations=flags.FLAGS.iterations, warmup=flags.FLAGS.warmup,
                         matmul_size=flags.FLAGS.matmul_size, matmul_dtype=dtype)
  except jax.errors.JaxRuntimeError as error:
    logging.warning("batch %d in %s with upsample %s failed: %s", batch_size, dtype,
                    upsample, error)
    return {"config_data_name": config.data.name, "batch_size": batch_size,
            "compute_dtype": dtype, "upsample": upsample, "error": str(error)[:2000]}


def results_table(records: list[dict]) -> str:
  """Return one Markdown row per run: throughput, time, fraction of the peak, memory."""
  lines = ["| data | dtype | upsample | batch | images/s | s/iteration | GFLOP/s | "
           "peak GFLOP/s | of peak | compile s | peak memory GiB |", "|---" * 11 + "|"]
  for record in records:
    head = (f"| {record['config_data_name']} | {record['compute_dtype']} | "
            f"{record['upsample']} | {record['batch_size']} |")
    if "error" in record:
      message = " ".join(record["error"].replace("|", "/").split())[:100]
      lines.append(f"{head} failed: {message} |" + " |" * 6)
      continue
    lines.append(
        f"{head} {record['images_per_second']:.1f} | {record['seconds_per_iteration']:.4f} | "
        f"{record['gflops_per_second']:.0f} | {record['matmul_peak_gflops_per_second']:.0f} | "
        f"{record['fraction_of_matmul_peak']:.0%} | {record['compile_seconds']:.1f} | "
        f"{record['peak_memory_bytes'] / 2**30:.2f} |")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  cli.quiet_library_logs()
  unknown = sorted(set(_DTYPES.value) - set(benchmark.MATMUL_DTYPES))
  if unknown:
    sys.exit(f"error: --dtypes must be among {benchmark.MATMUL_DTYPES}, got {unknown}")
  try:
    batch_sizes = [int(size) for size in _BATCH_SIZES.value]
  except ValueError:
    sys.exit(f"error: --batch_sizes must be integers, got {','.join(_BATCH_SIZES.value)}")

  records = []
  try:
    for path in _CONFIGS.value:
      config = load_config(path)
      for dtype in _DTYPES.value:
        for upsample in _UPSAMPLES.value:
          records += sweep_batch_sizes(batch_sizes, _MIN_GAIN.value,
                                       lambda size: measure_one(config, dtype, upsample, size))
          logging.info("%s in %s with upsample %s done", path, dtype, upsample)
  except UserInputError as error:
    sys.exit(f"error: {error}")

  table = results_table(records)
  device = f"{jax.device_count()} x {jax.devices()[0].device_kind}, jax {jax.__version__}"
  os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
  with open(_OUT.value + ".json", "w") as handle:
    json.dump(records, handle, indent=1)
  with open(_OUT.value + ".md", "w") as handle:
    handle.write(f"{device}\n\n{table}\n")
  print(device)
  print(table)


if __name__ == "__main__":
  app.run(main)
