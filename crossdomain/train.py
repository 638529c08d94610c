"""Training loop: data, mesh, state, jitted steps, logs, figures and checkpoints."""

import functools
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from crossdomain import checkpointing, config as config_lib, data as data_lib, parallel, plotting
from crossdomain import divergence, preemption, steps
from crossdomain.data import pipeline
from crossdomain.errors import UserInputError
from crossdomain.metric_writer import MetricWriter
from crossdomain.models import build_networks


def _sample_inputs(domains: data_lib.DomainPair, count: int) -> tuple[np.ndarray, np.ndarray]:
  """Return the held-out examples that every figure of the run translates, in model range."""
  if domains.is_image:
    count_a, count_b = count, count
  else:
    count_a, count_b = len(domains.a.test), len(domains.b.test)
  inputs = [pipeline.to_model_range(domain.test[:n]).numpy()
            for domain, n in ((domains.a, count_a), (domains.b, count_b))]
  return inputs[0], inputs[1]


def _save_figures(workdir: str, step: int, domains: data_lib.DomainPair,
                  inputs: tuple[np.ndarray, np.ndarray], outputs: dict[str, np.ndarray],
                  history: list[dict]) -> None:
  """Write the sample grid or toy scatter of this step and the loss graph."""
  figures = os.path.join(workdir, "figures")
  os.makedirs(figures, exist_ok=True)
  inputs_a, inputs_b = inputs
  if domains.is_image:
    rows = dict(zip(plotting.SAMPLE_ROWS, (inputs_a, outputs["ab"], outputs["aba"],
                                            inputs_b, outputs["ba"], outputs["bab"])))
    plotting.save_sample_grid(os.path.join(figures, f"samples_{step:07d}.png"), rows, step)
  else:
    points = {"a": inputs_a, "b": inputs_b, "ab": outputs["ab"], "ba": outputs["ba"]}
    plotting.save_toy_scatter(os.path.join(figures, f"toy_scatter_{step:07d}.png"), points,
                              domains.a.test_labels, domains.b.test_labels, domains.mixtures, step)
  plotting.save_loss_plot(os.path.join(workdir, "losses.png"), history)


class _Progress:
  """Steps per second over the last logging period and the estimated time left."""

  def __init__(self, start_step: int, num_steps: int):
    self.num_steps = num_steps
    self.last_step, self.last_time = start_step, time.perf_counter()

  def update(self, step: int) -> tuple[float, float]:
    """Return (steps per second, seconds left); the first period includes compilation."""
    now = time.perf_counter()
    rate = (step - self.last_step) / (now - self.last_time)
    self.last_step, self.last_time = step, now
    return rate, (self.num_steps - step) / rate


def _format_duration(seconds: float) -> str:
  if not np.isfinite(seconds):
    return "?"
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}"


def _mean_metrics(window: list[dict[str, jax.Array]]) -> dict[str, float]:
  """Average each metric over the steps of a logging period that produced it."""
  fetched = jax.device_get(window)
  names = sorted({name for metrics in fetched for name in metrics})
  return {f"train_{name}": float(np.mean([m[name] for m in fetched if name in m]))
          for name in names}


def _due(step: int, period: int, last_step: int) -> bool:
  return step % period == 0 or step == last_step


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> steps.TrainState:
  """Train from scratch, or resume from the latest checkpoint in `workdir`.

  Returns:
    The state after `config.num_steps` steps.
  """
  config_lib.validate(config)
  is_writer = jax.process_index() == 0

  # Mesh: data parallel over every device of every process.
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.data.batch_size, mesh)
  replicated = parallel.replicated(mesh)

  # Data and networks.
  domains = data_lib.load(config.data, config.seed)
  for name, domain in (("A", domains.a), ("B", domains.b)):
    if len(domain.train) < config.data.batch_size:
      raise UserInputError(
          f"data.batch_size {config.data.batch_size} is larger than domain {name}'s "
          f"{len(domain.train)} training examples; lower data.batch_size")
  networks = build_networks(config.model, domains.a.example_shape, domains.b.example_shape)

  # State: fresh from the seed, or the latest checkpoint of this workdir.
  state = steps.init_state(networks, config, domains.a.example_shape, domains.b.example_shape)
  state = jax.device_put(state, replicated)
  meta = checkpointing.make_meta(config, domains.a.example_shape, domains.b.example_shape)
  checkpoints = checkpointing.Checkpoints(workdir, config, meta)
  latest = checkpoints.latest_step()
  if latest is not None:
    logging.info("Resuming from the checkpoint at step %d in %s", latest, workdir)
    state = checkpoints.restore(latest, state)
  start_step = int(state.step)

  batches = pipeline.train_batches(domains.a.train, domains.b.train, config.data.batch_size,
                                   config.seed, start_step, jax.process_index(),
                                   jax.process_count()).as_numpy_iterator()

  # Jitted steps: the state is donated and stays replicated, batches are sharded.
  state_sharding = jax.tree.map(lambda _: replicated, state)

  def compile_step(step_fn):
    return jax.jit(functools.partial(step_fn, networks=networks, config=config),
                   donate_argnums=0, out_shardings=(state_sharding, replicated))

  update = {"D": compile_step(steps.discriminator_step), "G": compile_step(steps.generator_step)}
  translate = jax.jit(functools.partial(steps.translate, networks), out_shardings=replicated)
  sample_inputs = _sample_inputs(domains, config.data.num_sample_examples)
  sample_arrays = jax.device_put(sample_inputs, replicated)

  writer = MetricWriter(workdir, start_step, enabled=is_writer)
  progress = _Progress(start_step, config.num_steps)
  window = []  # metrics of this logging period, for the means
  pending = []  # (step, metrics) not yet checked for non-finite values
  logging.info("Training steps %d to %d, batch %d over %d devices", start_step,
               config.num_steps, config.data.batch_size, mesh.devices.size)

  done = start_step
  try:
    with preemption.StopRequest() as stop:
      for step in range(start_step, config.num_steps):
        local_a, local_b = next(batches)
        batch_a = parallel.global_batch(local_a, mesh)
        batch_b = parallel.global_batch(local_b, mesh)
        kind = config.update_cycle[step % len(config.update_cycle)]
        state, metrics = update[kind](state, batch_a, batch_b)
        done = step + 1
        window.append(metrics)
        pending.append((done, metrics))

        if _due(done, config.log_every, config.num_steps):
          divergence.check_metrics(pending)
          pending = []
          scalars = _mean_metrics(window)
          window = []
          rate, seconds_left = progress.update(done)
          writer.write(done, {**scalars, "steps_per_second": rate})
          losses_text = ", ".join(
              f"{name[6:]}={value:.4f}" for name, value in scalars.items()
              if name.startswith(("train_d_loss", "train_g_loss", "train_recon_")))
          logging.info("step %d/%d: %s | %.2f steps/s, %s left", done, config.num_steps,
                       losses_text, rate, _format_duration(seconds_left))

        if _due(done, config.sample_every, config.num_steps):
          # Every process runs the jitted translation; only the writer plots it.
          outputs = jax.device_get(translate(state.generator_params, state.generator_stats,
                                             *sample_arrays))
          if is_writer:
            _save_figures(workdir, done, domains, sample_inputs, outputs, writer.history)

        if _due(done, config.checkpoint_every, config.num_steps) or stop.requested:
          divergence.check_metrics(pending)
          pending = []
          divergence.check_state(state)
          checkpoints.save(state)

        if stop.requested:
          checkpoints.wait()
          logging.warning("Stopped by %s after step %d; the checkpoint is saved and the next "
                          "run with this workdir resumes there.", stop.signal_name, done)
          break
  finally:
    # Let asynchronous saves of good checkpoints finish, also when a step failed.
    checkpoints.close()
    writer.close()
  return state
