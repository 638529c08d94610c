"""Time one training iteration of a config's networks on random data.

    python -m crossdomain.benchmark --config=configs/shoes_bags.py [--iterations=5]
        [--warmup=2] [--json] [--peer_python=/path/to/python]

The config's data is never loaded. The benchmark draws random batches of
the config's example shape and batch size, builds the config's networks and
train state on a mesh of all devices, and compiles the jitted discriminator
and generator steps that training runs. One iteration is one discriminator
update and one generator update, each on a batch of both domains.

It prints the compile time, the median seconds per iteration, images per
second, the floating-point operations of an iteration from XLA's cost
analysis and the achieved GFLOP/s. Next to them it prints the
matrix-multiply throughput of the same machine (float32 unless
--matmul_dtype says otherwise), sampled after every timed iteration so that
both see the same load, and the peak memory.

With --layers, it also times each product of every stride-2 layer of the
image networks at its real shape, in every form of models/upsample.py: the
convolution, the transposed convolution and the weight gradient. These
figures choose the per-layer forms of `model.upsample=auto`.

With --peer_python, it also times the PyTorch DiscoGAN script named by
--peer_script at the same shape, batch and iteration count in a subprocess,
after the JAX timing so the two never share the CPU, and prints the ratio.
"""

import functools
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from crossdomain import cli, config as config_lib, layer_timing, parallel, preemption, steps
from crossdomain.errors import UserInputError
from crossdomain.models import COMPUTE_DTYPES, build_networks

_REPOSITORY_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Element types that the matrix-multiply peak can be measured in: those that
# the networks can compute in.
MATMUL_DTYPES = COMPUTE_DTYPES

config_flags.DEFINE_config_file("config", None, "Run config file, such as "
                                "configs/shoes_bags.py; its data is not loaded.",
                                lock_config=True)
_ITERATIONS = flags.DEFINE_integer(
    "iterations", 5, "Timed iterations; each is one discriminator and one generator update.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Iterations run after compiling and before timing.")
_JSON = flags.DEFINE_bool("json", False, "Print only the JSON record of the results; "
                          "without it the text report comes first, then the JSON record.")
_MATMUL_SIZE = flags.DEFINE_integer(
    "matmul_size", 2048, "Side of the square matrices of the matrix-multiply peak. "
    "Much smaller products run below the peak.")
_MATMUL_DTYPE = flags.DEFINE_enum(
    "matmul_dtype", "float32", MATMUL_DTYPES,
    "Element type of the matrix-multiply peak. Compare a bfloat16 config with the "
    "bfloat16 peak on accelerators, whose bfloat16 products run many times faster.")
_LAYERS = flags.DEFINE_bool(
    "layers", False, "Also time each product of every stride-2 layer in every form.")
_LAYER_ROUNDS = flags.DEFINE_integer(
    "layer_rounds", 5, "Timed calls of each layer product; the forms take turns.")
_PEER_PYTHON = flags.DEFINE_string(
    "peer_python", "", "Python interpreter with PyTorch that runs the peer script; "
    "empty skips the peer.")
_PEER_SCRIPT = flags.DEFINE_string(
    "peer_script", os.path.join("..", "shared", "peers", "discogan_torch.py"),
    "PyTorch DiscoGAN script with a `bench` command, relative to the repository root "
    "unless absolute.")

# Timed products in each sample of the matmul peak.
_PEAK_REPEATS = 3

# Channels of the image data sources that fix them; image_folders sets
# config.data.channels instead.
_SOURCE_CHANNELS = {"pix2pix": 3, "fashion_mnist": 1}
_FASHION_MNIST_SIZE = 32  # 28x28 images zero-padded by 2 pixels on each side


def example_shapes(data: ml_collections.ConfigDict) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """Return the shape of one example of domains A and B for a config's data section.

  Images are [size, size, channels]: the size is `data.image_size` when the
  config has it (32 for Fashion-MNIST), the channels `data.channels` or the
  source's fixed count. Mixtures are [dimensions] of their means.
  """
  if data.name == "gmm":
    return (len(data.means_a[0]),), (len(data.means_b[0]),)

  known_channels = "channels" in data or data.name in _SOURCE_CHANNELS
  known_size = "image_size" in data or data.name == "fashion_mnist"
  if not (known_channels and known_size):
    raise UserInputError(f"the example shape of data.name {data.name!r} is unknown without "
                         "loading the data; benchmark an image config (pix2pix, "
                         "fashion_mnist, image_folders) or a gmm config")
  size = data.image_size if "image_size" in data else _FASHION_MNIST_SIZE
  channels = data.channels if "channels" in data else _SOURCE_CHANNELS[data.name]
  return (size, size, channels), (size, size, channels)


def _random_batches(shape_a, shape_b, batch_size: int, seed: int) -> tuple[np.ndarray, ...]:
  """Return one float32 batch of each domain, uniform in [-1, 1] as the pipeline scales images."""
  rng = np.random.default_rng(seed)
  return tuple(rng.uniform(-1.0, 1.0, (batch_size, *shape)).astype(np.float32)
               for shape in (shape_a, shape_b))


def _flops(compiled) -> float:
  """Return the floating-point operations of one device's program, from XLA's cost analysis.

  On a mesh of several devices each one runs its share of the batch, so
  the count is a fraction of the whole.
  """
  analysis = compiled.cost_analysis()
  # jax 0.10 returns a dict; some earlier versions returned a list of one dict per program.
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else None
  if not analysis or "flops" not in analysis:
    return math.nan
  return float(analysis["flops"])


def compile_steps(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh):
  """Build the state and compile both update steps as train.py does.

  Returns:
    (state, batch_a, batch_b, {"D": compiled, "G": compiled}, compile
    seconds of both steps together, FLOPs of one iteration on all devices).
  """
  shape_a, shape_b = example_shapes(config.data)
  networks = build_networks(config.model, shape_a, shape_b)
  replicated = parallel.replicated(mesh)
  state = jax.device_put(steps.init_state(networks, config, shape_a, shape_b), replicated)
  batches = _random_batches(shape_a, shape_b, config.data.batch_size, config.seed)
  batch_a, batch_b = (jax.device_put(batch, parallel.batch_sharding(mesh)) for batch in batches)

  # The same jit settings as training: the state is donated and stays
  # replicated, the batches are sharded over the mesh.
  state_sharding = jax.tree.map(lambda _: replicated, state)
  compiled, flops = {}, 0.0
  start = time.perf_counter()
  for kind, step_fn in (("D", steps.discriminator_step), ("G", steps.generator_step)):
    jitted = jax.jit(functools.partial(step_fn, networks=networks, config=config),
                     donate_argnums=0, out_shardings=(state_sharding, replicated))
    compiled[kind] = jitted.lower(state, batch_a, batch_b).compile()
    flops += _flops(compiled[kind])
  compile_seconds = time.perf_counter() - start
  return state, batch_a, batch_b, compiled, compile_seconds, flops * mesh.size


def time_iterations(compiled, state, batch_a, batch_b, iterations: int,
                    warmup: int, after_each: Callable[[], None] | None = None) -> list[float]:
  """Run the warm-up iterations, then the timed ones, and return the seconds of each timed one.

  after_each, if given, runs after every timed iteration, outside its time.
  """
  seconds = []
  for index in range(warmup + iterations):
    start = time.perf_counter()
    state, _ = compiled["D"](state, batch_a, batch_b)
    state, _ = compiled["G"](state, batch_a, batch_b)
    jax.block_until_ready(state)
    if index >= warmup:
      seconds.append(time.perf_counter() - start)
      if after_each is not None:
        after_each()
  return seconds


class MatmulProbe:
  """Timer of a jitted [size, size] @ [size, size] product, for the matmul peak."""

  def __init__(self, size: int, dtype: str = "float32"):
    self.size = size
    keys = jax.random.split(jax.random.PRNGKey(0))
    self._left, self._right = (jax.random.normal(key, (size, size), jnp.dtype(dtype))
                               for key in keys)
    self._product = jax.jit(jnp.matmul)
    self._product(self._left, self._right).block_until_ready()

  def gflops_per_second(self, repeats: int) -> float:
    """Return the GFLOP/s of the median of `repeats` timed products."""
    seconds = []
    for _ in range(repeats):
      start = time.perf_counter()
      self._product(self._left, self._right).block_until_ready()
      seconds.append(time.perf_counter() - start)
    return 2 * self.size**3 / statistics.median(seconds) / 1e9


def peak_memory() -> tuple[int, str]:
  """Return the peak memory in bytes and where it was read.

  Accelerators report the peak of the first device's allocator. The CPU
  backend keeps no such statistics, so there it is the process's peak
  resident set size, which also counts Python, the libraries and the compiler.
  """
  stats = jax.local_devices()[0].memory_stats()
  if stats and "peak_bytes_in_use" in stats:
    return int(stats["peak_bytes_in_use"]), "device peak_bytes_in_use"
  # Linux reports ru_maxrss in KiB, macOS in bytes.
  scale = 1 if sys.platform == "darwin" else 1024
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, "process max RSS"


def _load_average() -> float | None:
  """Return the system's load average over the last minute, or None where it is unknown."""
  try:
    return os.getloadavg()[0]
  except OSError:
    return None


def cpu_model() -> str:
  """Return the CPU model name from /proc/cpuinfo, or the platform's processor string."""
  try:
    with open("/proc/cpuinfo") as cpuinfo:
      for line in cpuinfo:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def resolve_peer_script(path: str) -> str:
  """Return the absolute path of the peer script, raising UserInputError if it is missing."""
  resolved = path if os.path.isabs(path) else os.path.join(_REPOSITORY_ROOT, path)
  resolved = os.path.normpath(resolved)
  if not os.path.isfile(resolved):
    raise UserInputError(f"peer script not found: {resolved}; pass --peer_script=PATH or "
                         "leave --peer_python empty to skip the peer")
  return resolved


def run_peer(python: str, script: str, example_shape: tuple[int, ...], batch_size: int,
             iterations: int) -> dict:
  """Run the peer's `bench` command in a subprocess and return its JSON result.

  The peer runs its lean step, which like ours differentiates only the
  networks that an update changes, with one thread per CPU core.
  """
  if len(example_shape) != 3:
    raise UserInputError(f"the PyTorch peer benchmarks images only, but the examples have "
                         f"shape {example_shape}")
  size, _, channels = example_shape
  command = [python, script, "--threads", str(os.cpu_count() or 1), "bench",
             "--size", str(size), "--channels", str(channels), "--batch", str(batch_size),
             "--iters", str(max(iterations, 1)), "--lean"]
  try:
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
  except FileNotFoundError as error:
    raise UserInputError(f"peer Python not found: {python}; pass --peer_python=PATH") from error
  except subprocess.CalledProcessError as error:
    raise UserInputError(f"the peer command failed with exit status {error.returncode}: "
                         f"{' '.join(command)}\n{error.stderr[-2000:]}") from error
  try:
    return json.loads(completed.stdout)
  except json.JSONDecodeError as error:
    raise UserInputError(f"the peer printed no valid JSON: {completed.stdout[-500:]!r}") from error


def run(config: ml_collections.ConfigDict, *, iterations: int, warmup: int,
        matmul_size: int, matmul_dtype: str = "float32", layer_rounds: int = 0,
        peer_python: str = "", peer_script: str = "") -> dict:
  """Compile and time the config's training iteration, the matmul peak and the peer.

  Args:
    config: a run config; only its data shape, batch size, model, losses
      and optimizer matter.
    iterations: timed iterations, at least 1.
    warmup: iterations run before timing.
    matmul_size: side of the square matrices of the matrix-multiply peak.
    matmul_dtype: their element type, 'float32' or 'bfloat16'.
    layer_rounds: timed calls of each layer product; 0 skips the layers.
    peer_python: interpreter that runs the peer script; empty skips it.
    peer_script: the peer script, absolute or relative to the repository root.

  Returns:
    The JSON record: every figure that the report prints.
  """
  if iterations < 1:
    raise UserInputError(f"--iterations must be at least 1, got {iterations}")
  if warmup < 0:
    raise UserInputError(f"--warmup must be 0 or more, got {warmup}")
  if matmul_dtype not in MATMUL_DTYPES:
    raise UserInputError(f"--matmul_dtype must be one of {MATMUL_DTYPES}, got {matmul_dtype!r}")
  config_lib.validate(config)
  shape_a, shape_b = example_shapes(config.data)
  is_image = len(shape_a) == 3
  if layer_rounds > 0 and not is_image:
    raise UserInputError(f"--layers times image networks, but examples of this config have "
                         f"shape {shape_a}; benchmark an image config")
  if peer_python and not is_image:
    raise UserInputError(f"the PyTorch peer benchmarks images only, but examples of this "
                         f"config have shape {shape_a}; leave --peer_python empty")
  if peer_python:
    peer_script = resolve_peer_script(peer_script)
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.data.batch_size, mesh)

  # Other programs on the machine slow the figures down, so the record keeps the load.
  load_before = _load_average()
  state, batch_a, batch_b, compiled, compile_seconds, flops = compile_steps(config, mesh)
  # The machine's speed drifts over minutes, so the matmul peak is sampled
  # after every timed iteration, under the same conditions. The probe's
  # matrices are made after the first one, so that the peak memory read
  # then is the iteration's own.
  probe, peak_samples, memory = None, [], None

  def sample_peak() -> None:
    nonlocal probe, memory
    if probe is None:
      memory = peak_memory()
      probe = MatmulProbe(matmul_size, matmul_dtype)
    peak_samples.append(probe.gflops_per_second(_PEAK_REPEATS))

  seconds = time_iterations(compiled, state, batch_a, batch_b, iterations, warmup, sample_peak)
  seconds_per_iteration = statistics.median(seconds)
  memory_bytes, memory_source = memory
  peak_gflops = statistics.median(peak_samples)
  gflops = flops / seconds_per_iteration / 1e9
  # The probe multiplies on one device. CPU devices share the machine's
  # cores, and one product already uses all of them, while each
  # accelerator has a peak of its own.
  peak_devices = 1 if jax.default_backend() == "cpu" else mesh.size

  batch_size = config.data.batch_size
  record = {
      "config_data_name": config.data.name,
      "example_shape_a": list(shape_a),
      "example_shape_b": list(shape_b),
      "batch_size": batch_size,
      "upsample": config.model.upsample,
      "compute_dtype": config.model.compute_dtype,
      "iterations": iterations,
      "warmup": warmup,
      "backend": jax.default_backend(),
      "devices": jax.device_count(),
      "device_kind": jax.devices()[0].device_kind,
      "cpu": cpu_model(),
      "cpu_cores": os.cpu_count(),
      "jax_version": jax.__version__,
      "compile_seconds": compile_seconds,
      "seconds_per_iteration": seconds_per_iteration,
      "iteration_seconds": seconds,
      # Counted as the peer counts: one batch per iteration, although both
      # updates read a batch of each domain.
      "images_per_second": batch_size / seconds_per_iteration,
      "flops_per_iteration": flops,
      "gflops_per_second": gflops,
      "matmul_size": matmul_size,
      "matmul_dtype": matmul_dtype,
      "matmul_peak_gflops_per_second": peak_gflops,
      "matmul_peak_samples": peak_samples,
      "matmul_peak_devices": peak_devices,
      "fraction_of_matmul_peak": gflops / (peak_gflops * peak_devices),
      "peak_memory_bytes": memory_bytes,
      "peak_memory_source": memory_source,
      "load_average_before": load_before,
      "load_average_after": _load_average(),
  }

  if layer_rounds > 0:
    record["layers"] = layer_timing.time_layers(shape_a[0], shape_a[-1], batch_size, layer_rounds)

  if peer_python:
    peer = run_peer(peer_python, peer_script, shape_a, batch_size, iterations)
    peer_seconds = peer["median_s_d_step"] + peer["median_s_g_step"]
    record["peer"] = peer
    record["peer_seconds_per_iteration"] = peer_seconds
    record["seconds_per_iteration_over_peer"] = seconds_per_iteration / peer_seconds
    if "flops_per_iteration" in peer:
      # XLA's cost analysis leaves out multiplications by padding zeros, and
      # PyTorch's counter includes them. This rate uses PyTorch's count.
      record["gflops_per_second_peer_count"] = (
          peer["flops_per_iteration"] / seconds_per_iteration / 1e9)
  return record


def format_report(record: dict) -> str:
  """Return the record as lines of text for a reader."""
  example_shape = record["example_shape_a"]
  samples = len(record["matmul_peak_samples"])
  # The JSON key is images_per_second for every config, but the toy's examples are points.
  if len(example_shape) == 3:
    shape, examples = "x".join(str(side) for side in example_shape), "images"
    form = f"upsample {record['upsample']}, "
  else:
    shape, examples, form = f"vectors of {example_shape[0]}", "examples", ""
  peak_devices = record["matmul_peak_devices"]
  per_device = f"per device, times {peak_devices} devices " if peak_devices > 1 else ""
  mesh_peak = record["matmul_peak_gflops_per_second"] * peak_devices
  lines = [
      f"{record['config_data_name']} {shape}, batch {record['batch_size']}, "
      f"{form}{record['compute_dtype']}, "
      f"{record['devices']} {record['backend']} device(s) ({record['cpu']}, "
      f"{record['cpu_cores']} cores), jax {record['jax_version']}",
      f"  compile, both steps:      {record['compile_seconds']:8.1f} s",
      f"  iteration (1 D + 1 G):    {record['seconds_per_iteration']:8.3f} s median of "
      f"{record['iterations']} after {record['warmup']} warm-up",
      f"  {examples + ' per second:':26s}{record['images_per_second']:8.1f} "
      f"(one batch of {record['batch_size']} per iteration, as the PyTorch peer counts; "
      "each update reads a batch of each domain)",
      f"  GFLOP per iteration:      {record['flops_per_iteration'] / 1e9:8.1f} "
      "(XLA cost analysis)",
      f"  achieved:                 {record['gflops_per_second']:8.1f} GFLOP/s",
      f"  matmul peak:              {record['matmul_peak_gflops_per_second']:8.1f} GFLOP/s "
      f"{per_device}({record['matmul_dtype']} {record['matmul_size']}^2, median of "
      f"{samples} sample{'s' if samples != 1 else ''} between iterations), achieved/peak "
      f"{record['fraction_of_matmul_peak']:.0%}",
      f"  peak memory:              {record['peak_memory_bytes'] / 2**20:8.0f} MiB "
      f"({record['peak_memory_source']})",
  ]
  if record["load_average_before"] is not None:
    lines.append(f"  load average, 1 minute:   {record['load_average_before']:8.2f} before "
                 f"compiling, {record['load_average_after']:.2f} after timing (other "
                 "programs on the cores slow every figure)")
  if record["fraction_of_matmul_peak"] > 1:
    size = record["matmul_size"]
    lines.append(f"  NOTE: the iteration ran faster than the matmul peak, so {size}^2 products "
                 "are too small to measure the peak. Use --matmul_size=2048 or more.")
  if record["compute_dtype"] != record["matmul_dtype"]:
    compute, peak = record["compute_dtype"], record["matmul_dtype"]
    lines.append(f"  NOTE: the networks compute in {compute} but the peak was measured in "
                 f"{peak}. Pass --matmul_dtype={compute} to compare like with like.")
  if "layers" in record:
    lines.append(layer_timing.format_layers(record["layers"]))
  if "peer" in record:
    peer = record["peer"]
    lines += [
        f"  PyTorch peer (torch {peer.get('torch', '?')}, {peer.get('threads', '?')} threads, "
        f"{peer.get('mode', '?')}): {record['peer_seconds_per_iteration']:.3f} s per "
        f"iteration (D {peer['median_s_d_step']:.3f} s + G {peer['median_s_g_step']:.3f} s)",
        f"  ours / peer:              {record['seconds_per_iteration_over_peer']:8.2f}x "
        "the peer's seconds per iteration",
    ]
    if "gflops_per_second_peer_count" in record:
      lines[-1:-1] = [
          f"  peer achieved:            {peer['gflops_per_s']:8.1f} GFLOP/s "
          f"({peer['flops_per_iteration'] / 1e9:.1f} GFLOP per iteration by PyTorch's "
          "counter, convolutions and matmuls only)",
          f"  ours on that count:       {record['gflops_per_second_peer_count']:8.1f} GFLOP/s, "
          f"{record['gflops_per_second_peer_count'] / mesh_peak:.0%}"
          " of the matmul peak"]
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  cli.quiet_library_logs()
  try:
    record = run(flags.FLAGS.config, iterations=_ITERATIONS.value, warmup=_WARMUP.value,
                 matmul_size=_MATMUL_SIZE.value, matmul_dtype=_MATMUL_DTYPE.value,
                 layer_rounds=_LAYER_ROUNDS.value if _LAYERS.value else 0,
                 peer_python=_PEER_PYTHON.value,
                 peer_script=_PEER_SCRIPT.value)
  except UserInputError as error:
    sys.exit(f"error: {error}")
  text = json.dumps(record, indent=1)
  if not _JSON.value:
    print(format_report(record))
  print(text)


if __name__ == "__main__":
  preemption.install_interrupt_redelivery()
  flags.mark_flags_as_required(["config"])
  app.run(main, flags_parser=cli.parse_flags)
