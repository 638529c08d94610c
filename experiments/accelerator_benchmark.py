"""Time the train step on a GPU or TPU over batch sizes, compute dtypes and forms.

    python -m experiments.accelerator_benchmark --out=runs/accelerator_benchmark

For each config, compute dtype and transposed-convolution form, it runs
`python -m crossdomain.benchmark` at each batch size of --batch_sizes in
turn. Each run is a fresh process, so it reports its own peak memory, and
running out of memory ends only that run. A sweep stops
after the first batch size whose images per second are not --min_gain
above the best so far, or that fails. The matmul peak is measured in the
compute dtype, so a bfloat16 run is compared with the bfloat16 peak.

After every run it rewrites OUT.json (settings and records) and OUT.md (a
table), so a stopped sweep keeps what it measured.

Nothing here imports TensorFlow, so it also runs where only JAX, Flax,
optax, absl and ml_collections are installed. The PyTorch peer runs on the
CPU only, so it is not part of these runs.

NOTE: this has run only on a CPU, with small batches. The defaults for
accelerators (8192x8192 peak products, batch sizes up to 2048, 600 s per
run) are estimates that no GPU or TPU run has checked.
"""

import json
import os
import subprocess
import sys
from collections.abc import Callable

from absl import app, flags, logging

from crossdomain.models import COMPUTE_DTYPES
from crossdomain.models.upsample import UPSAMPLE_FORMULATIONS

REPOSITORY_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CONFIGS = flags.DEFINE_list(
    "configs", ["configs/shoes_bags.py", "configs/fashion_shoes_bags.py"],
    "Image run config files; only their data shape, model, losses and optimizer matter.")
_DTYPES = flags.DEFINE_list("dtypes", list(COMPUTE_DTYPES),
                            f"Compute dtypes, any of {COMPUTE_DTYPES}.")
_UPSAMPLES = flags.DEFINE_list(
    "upsamples", ["auto"], f"Transposed-convolution forms (model.upsample) to compare, any "
    f"of {UPSAMPLE_FORMULATIONS}. Off the CPU, auto is subpixel.")
_BATCH_SIZES = flags.DEFINE_list(
    "batch_sizes", ["64", "128", "256", "512", "1024", "2048"],
    "Batch sizes per domain, in the order they are tried.")
_MIN_GAIN = flags.DEFINE_float(
    "min_gain", 0.05, "Relative rise in images per second over the best so far that a "
    "batch size needs for the next one to be tried.")
_ITERATIONS = flags.DEFINE_integer(
    "timed_iterations", 10, "Timed iterations of each run (the benchmark's --iterations).")
_WARMUP = flags.DEFINE_integer(
    "warmup_iterations", 3, "Iterations run before timing (the benchmark's --warmup).")
_MATMUL_SIZE = flags.DEFINE_integer(
    "peak_matmul_size", 8192, "Side of the square matrices of the matmul peak (the "
    "benchmark's --matmul_size). Accelerators need large products to reach their peak.")
_TIMEOUT = flags.DEFINE_integer("timeout", 600, "Seconds after which a run is stopped.")
_OUT = flags.DEFINE_string("out", "runs/accelerator_benchmark",
                           "Path of the results without extension: OUT.json and OUT.md.")


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


def measure_one(config_path: str, dtype: str, upsample: str, batch_size: int) -> dict:
  """Run the benchmark at one setting in a fresh process, or record why it failed."""
  command = [sys.executable, "-m", "crossdomain.benchmark", "--json",
             f"--config={config_path}", f"--config.data.batch_size={batch_size}",
             f"--config.model.compute_dtype={dtype}", f"--config.model.upsample={upsample}",
             f"--matmul_dtype={dtype}", f"--matmul_size={_MATMUL_SIZE.value}",
             f"--iterations={_ITERATIONS.value}", f"--warmup={_WARMUP.value}"]
  setting = {"config": config_path, "compute_dtype": dtype, "upsample": upsample,
             "batch_size": batch_size}
  try:
    completed = subprocess.run(command, cwd=REPOSITORY_ROOT, capture_output=True, text=True,
                               timeout=_TIMEOUT.value)
  except subprocess.TimeoutExpired:
    logging.warning("%s timed out after %d s", setting, _TIMEOUT.value)
    return {**setting, "error": f"timed out after {_TIMEOUT.value} s"}
  if completed.returncode != 0:
    # The last lines name the error, such as RESOURCE_EXHAUSTED for out of memory.
    error = " ".join(completed.stderr.strip().splitlines()[-3:])
    logging.warning("%s failed: %s", setting, error)
    return {**setting, "error": error[-2000:]}
  return {**setting, **json.loads(completed.stdout)}


def results_table(records: list[dict]) -> str:
  """Return one Markdown row per run: throughput, time, fraction of the peak, memory."""
  lines = ["| data | dtype | upsample | batch per domain | images/s | s/iteration (median) | "
           "GFLOP/s | matmul peak GFLOP/s, all devices | of peak | compile s | "
           "peak memory GiB |",
           "|---" * 11 + "|"]
  for record in records:
    head = (f"| {record.get('config_data_name', record['config'])} | "
            f"{record['compute_dtype']} | {record['upsample']} | {record['batch_size']} |")
    if "error" in record:
      message = " ".join(record["error"].replace("|", "/").split())[:100]
      lines.append(f"{head} failed: {message} |" + " |" * 6)
      continue
    # The probe measures one device. Records written before matmul_peak_devices
    # existed come from runs on one device.
    peak = record["matmul_peak_gflops_per_second"] * record.get("matmul_peak_devices", 1)
    lines.append(
        f"{head} {record['images_per_second']:.1f} | {record['seconds_per_iteration']:.4f} | "
        f"{record['gflops_per_second']:.0f} | {peak:.0f} | "
        f"{record['fraction_of_matmul_peak']:.0%} | {record['compile_seconds']:.1f} | "
        f"{record['peak_memory_bytes'] / 2**30:.2f} |")
  return "\n".join(lines)


def describe_machine(records: list[dict]) -> str:
  """Return one line on the devices and versions of the first successful run."""
  for record in records:
    if "error" not in record:
      return (f"{record['devices']} x {record['device_kind']} ({record['backend']}), "
              f"host {record['cpu']} with {record['cpu_cores']} cores, "
              f"jax {record['jax_version']}")
  return "no run succeeded"


def write_results(records: list[dict], settings: dict, out: str) -> str:
  """Write OUT.json and OUT.md and return the Markdown."""
  markdown = "\n".join([
      describe_machine(records), "",
      f"{settings['iterations']} timed iterations after {settings['warmup']} warm-up per "
      f"run; matmul peak of {settings['matmul_size']}x{settings['matmul_size']} products "
      "in the compute dtype. Images per second count one batch per iteration of one "
      "discriminator and one generator update. Peak memory is the device allocator's "
      "peak, or the process's maximum resident set size on the CPU.", "",
      results_table(records), ""])
  os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
  with open(out + ".json", "w") as handle:
    json.dump({"settings": settings, "records": records}, handle, indent=1)
  with open(out + ".md", "w") as handle:
    handle.write(markdown)
  return markdown


def _resolve_config(path: str) -> str:
  """Return the absolute path of a config file given from here or from the repository root."""
  for candidate in (path, os.path.join(REPOSITORY_ROOT, path)):
    if os.path.isfile(candidate):
      return os.path.abspath(candidate)
  sys.exit(f"error: --configs: config file not found: {path}")


def _check_flags() -> list[int]:
  """Exit with a message that names the flag if a value is invalid, else return the batch sizes."""
  for name, values, allowed in (("--dtypes", _DTYPES.value, COMPUTE_DTYPES),
                                ("--upsamples", _UPSAMPLES.value, UPSAMPLE_FORMULATIONS)):
    unknown = [value for value in values if value not in allowed]
    if unknown or not values:
      sys.exit(f"error: {name} must be a comma-separated list of {allowed}, got "
               f"{','.join(values)!r}")
  try:
    batch_sizes = [int(size) for size in _BATCH_SIZES.value]
  except ValueError:
    batch_sizes = []
  if not batch_sizes or min(batch_sizes) < 1:
    sys.exit(f"error: --batch_sizes must be positive integers, got "
             f"{','.join(_BATCH_SIZES.value)!r}")
  return batch_sizes


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  batch_sizes = _check_flags()
  config_paths = {path: _resolve_config(path) for path in _CONFIGS.value}
  settings = {"configs": _CONFIGS.value, "dtypes": _DTYPES.value,
              "upsamples": _UPSAMPLES.value, "batch_sizes": batch_sizes,
              "min_gain": _MIN_GAIN.value, "iterations": _ITERATIONS.value,
              "warmup": _WARMUP.value, "matmul_size": _MATMUL_SIZE.value}

  records = []

  def measure_and_save(path, dtype, upsample, batch_size):
    record = {**measure_one(config_paths[path], dtype, upsample, batch_size), "config": path}
    records.append(record)
    write_results(records, settings, _OUT.value)
    return record

  for path in _CONFIGS.value:
    for dtype in _DTYPES.value:
      for upsample in _UPSAMPLES.value:
        sweep_batch_sizes(batch_sizes, _MIN_GAIN.value,
                          lambda size: measure_and_save(path, dtype, upsample, size))
        logging.info("%s in %s with upsample %s done", path, dtype, upsample)

  print(write_results(records, settings, _OUT.value))


if __name__ == "__main__":
  app.run(main)
