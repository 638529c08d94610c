"""Training loop: data, mesh, state, jitted steps, evaluation, logs and checkpoints."""

import collections
import functools
import json
import os
import time

import jax
import ml_collections
import numpy as np
from absl import logging

from crossdomain import checkpointing, config as config_lib, data as data_lib, divergence
from crossdomain import parallel, plotting, preemption, reporting, steps, workdir_lock
from crossdomain.data import pipeline
from crossdomain.errors import raise_problems
from crossdomain.evaluation import quality as quality_lib, selection as selection_lib
from crossdomain.image_size import num_stages
from crossdomain.metric_writer import MetricWriter
from crossdomain.models import build_networks


class DispatchWindow:
  """Keeps the host at most `limit` steps ahead of the devices.

  JAX dispatches each step asynchronously, so without a bound the loop runs
  ahead to the next step whose results it reads, up to `log_every` steps. A
  SIGTERM would then wait for all of those steps before its checkpoint.
  Waiting for the step `limit` back still leaves the devices queued work.
  """

  def __init__(self, limit: int = 2):
    self.limit = limit
    self._outputs = collections.deque()

  def add(self, outputs) -> None:
    """Record a dispatched step's outputs; wait while more than `limit` steps are unfinished."""
    self._outputs.append(outputs)
    while len(self._outputs) > self.limit:
      jax.block_until_ready(self._outputs.popleft())


# In a run of several processes, the steps after which they agree whether
# any of them received a stop signal (see parallel.any_process).
_STOP_AGREEMENT_STEPS = 10


def _due(step: int, period: int, last_step: int) -> bool:
  return step % period == 0 or step == last_step


def _count_due(after: int, period: int, last_step: int) -> int:
  """Return how many steps in (after, last_step] are _due."""
  multiples = last_step // period - after // period
  return multiples + (last_step % period != 0 and after < last_step)


def _batch_problems(domains: data_lib.DomainPair, batch_size: int) -> list[str]:
  """Return a message for each domain with fewer training examples than one batch."""
  return [f"data.batch_size {batch_size} is larger than domain {name}'s "
          f"{len(domain.train)} training examples; lower data.batch_size to "
          f"{len(domain.train)} or less"
          for name, domain in (("A", domains.a), ("B", domains.b))
          if len(domain.train) < batch_size]


def _warn_if_nothing_to_match(config: ml_collections.ConfigDict,
                              domains: data_lib.DomainPair) -> None:
  """Warn when feature matching is on but an image discriminator has no features to match."""
  if not (config.loss.feature_matching and domains.is_image):
    return
  size = min(domains.a.example_shape[0], domains.b.example_shape[0])
  # The first stage has no batch norm, and only normalized stages give features.
  if num_stages(size) < 2:
    logging.warning(
        "Feature matching has nothing to match at %dx%d: the discriminators' only stage has "
        "no batch norm, so the adversarial loss is loss.gan_weight (%g) times the GAN loss "
        "alone. Use images of 16x16 or larger, or set loss.feature_matching=false.",
        size, size, config.loss.gan_weight)


def translate_all(translate, state: steps.TrainState, inputs_a: np.ndarray,
                  inputs_b: np.ndarray, mesh: jax.sharding.Mesh,
                  batch_size: int) -> dict[str, np.ndarray]:
  """Translate whole held-out sets in fixed-size batches sharded over the mesh.

  Every batch has `batch_size` rows (padded at the end), so one shape is compiled.
  """
  devices = mesh.devices.size
  batch_size = -(-batch_size // devices) * devices
  sharding = parallel.batch_sharding(mesh)
  outputs = {name: [] for name in ("ab", "aba", "ba", "bab")}
  for start in range(0, max(len(inputs_a), len(inputs_b)), batch_size):
    chunks = []
    for inputs in (inputs_a, inputs_b):
      chunk = inputs[start:start + batch_size]
      if len(chunk) == 0:
        chunk = inputs[:1]
      padding = np.repeat(chunk[-1:], batch_size - len(chunk), axis=0)
      chunks.append((len(inputs[start:start + batch_size]),
                     jax.device_put(np.concatenate([chunk, padding]), sharding)))
    (count_a, batch_a), (count_b, batch_b) = chunks
    result = jax.device_get(translate(state.generator_params, state.generator_stats,
                                      batch_a, batch_b))
    for name in ("ab", "aba"):
      outputs[name].append(result[name][:count_a])
    for name in ("ba", "bab"):
      outputs[name].append(result[name][:count_b])
  return {name: np.concatenate(parts) for name, parts in outputs.items()}


def _restore_selection(selection: selection_lib.Selection, saved: dict | None,
                       history: list[dict], measure: dict, held_out: tuple[int, int],
                       step: int, trains: bool) -> None:
  """Continue the best-step record of a run resumed at `step` from its checkpoint and log.

  A record made under other measure settings (see quality.measure_settings)
  cannot be compared with new evaluations. If this run `trains` on, it is
  dropped with a warning, and a run that had stopped early trains until it
  stops again under the new settings. A finished run measures nothing new,
  so it leaves the record and its ideal_state.json as they are. Checkpoints
  of older versions record no settings and are trusted.
  """
  saved_measure = (saved or {}).get("measure")
  changes = [] if saved_measure is None else quality_lib.measure_changes(saved_measure, measure,
                                                                         held_out)
  if changes and not trains:
    logging.info("This run has finished, and its best step (%s) was measured with other "
                 "settings or data (%s). Raise num_steps to train on and measure anew.",
                 saved.get("best_step"), "; ".join(changes))
  elif changes:
    logging.warning(
        "The best step so far (%s) was measured with other settings or data (%s), so new "
        "evaluations cannot be compared with it. The best-step record starts again with the "
        "next evaluation, and a new best checkpoint replaces the old one.",
        saved.get("best_step"), "; ".join(changes))
    selection.restarted_at = step
  elif saved:
    selection.best_step = saved["best_step"]
    selection.best_metrics = saved["best_metrics"]
    selection.evaluations_since_best = saved["evaluations_since_best"]
    selection.restarted_at = saved.get("restarted_at")
  prefix = "eval_"
  selection.history = [
      (record["step"], {name[len(prefix):]: value for name, value in record.items()
                        if name.startswith(prefix)})
      for record in history if any(name.startswith(prefix) for name in record)]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> steps.TrainState:
  """Train from scratch, or resume from the latest checkpoint in `workdir`.

  Returns:
    The state at the last step trained.

  Raises:
    UserInputError: a setting, the data or the workdir cannot work, or
      another run is using the workdir.
  """
  config_lib.validate(config)
  # Only process 0 writes files other than checkpoints, so it alone locks.
  if jax.process_index() == 0:
    with workdir_lock.hold(workdir):
      return _train_and_evaluate(config, workdir)
  return _train_and_evaluate(config, workdir)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> steps.TrainState:
  is_writer = jax.process_index() == 0

  # Mesh: data parallel over every device of every process.
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.data.batch_size, mesh)
  replicated = parallel.replicated(mesh)

  # Data, networks and the measure of translation quality.
  domains = data_lib.load(config.data, config.seed)
  # Both checks run before either raises, so small image folders report every fix at once.
  raise_problems(_batch_problems(domains, config.data.batch_size)
                 + quality_lib.held_out_problems(config, domains))
  networks = build_networks(config.model, domains.a.example_shape, domains.b.example_shape)
  _warn_if_nothing_to_match(config, domains)
  meta = checkpointing.make_meta(config, domains.a.example_shape, domains.b.example_shape,
                                 domains.a.columns, domains.b.columns)
  checkpointing.check_workdir(workdir, meta)  # before an evaluator classifier is trained
  quality = quality_lib.make_quality(config, domains)
  if quality is None:
    logging.warning("No quality measure for data.name %r: training runs all %d steps "
                    "without evaluation or early stopping.", config.data.name, config.num_steps)
  eval_inputs = tuple(pipeline.to_model_range(domain.test[:config.eval.max_examples]).numpy()
                      for domain in (domains.a, domains.b))
  selection = selection_lib.Selection.from_config(config.eval)
  if quality is not None:
    selection.check_metric(quality.metric_names())

  # State: fresh from the seed, or the latest checkpoint of this workdir.
  state = steps.init_state(networks, config, domains.a.example_shape, domains.b.example_shape)
  state = jax.device_put(state, replicated)
  checkpoints = checkpointing.Checkpoints(workdir, config, meta)
  latest = checkpoints.latest_step()
  saved_selection = None
  if latest is not None:
    logging.info("Resuming from the checkpoint at step %d in %s", latest, workdir)
    state = checkpoints.restore(latest, state)
    saved_selection = checkpoints.read_meta(latest).get("selection")
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
  sample_inputs = reporting.sample_inputs(domains, config.data.num_sample_examples)
  # Vectors of unknown density get no sample figure, only the loss graph.
  draws_samples = domains.is_image or domains.mixtures is not None

  writer = MetricWriter(workdir, start_step, enabled=is_writer)
  measure = quality_lib.measure_settings(config, domains.contents)
  _restore_selection(selection, saved_selection, writer.history if is_writer else [], measure,
                     (len(domains.a.test), len(domains.b.test)), start_step,
                     trains=start_step < config.num_steps)
  if selection.should_stop:
    logging.info("This run stopped early at step %d; raise eval.patience to train on.",
                 start_step)
    checkpoints.close()
    writer.close()
    return state

  if start_step >= config.num_steps:
    logging.info("The run has already trained %d steps; raise --config.num_steps to "
                 "continue it.", start_step)
  else:
    # The device kind shows at once a run that fell back to the CPU.
    logging.info("Training steps %d to %d, batch %d over %d %s (%s)", start_step,
                 config.num_steps, config.data.batch_size, mesh.devices.size,
                 "device" if mesh.devices.size == 1 else "devices",
                 mesh.devices.flat[0].device_kind)
  progress = reporting.Progress(start_step, config.num_steps)
  window = []  # metrics of this logging period, for the means
  pending = []  # (step, metrics) not yet checked for non-finite values
  # Seconds of the last sample figures and the last evaluation, for the time left.
  other_seconds = {"sample": 0.0, "eval": 0.0}

  def other_seconds_left(done: int) -> tuple[float, list[str]]:
    """Return the seconds of the sample figures and evaluations still due, and those not run yet.

    Each kind is counted at its last duration. The kinds that have not run
    yet have no duration, so they are returned by name.
    """
    periods = {"sample": config.sample_every, "eval": config.eval.every if quality else 0}
    seconds, untimed = 0.0, []
    for kind, period in periods.items():
      due = _count_due(done, period, config.num_steps) if period else 0
      seconds += other_seconds[kind] * due
      if due and not other_seconds[kind]:
        untimed.append({"sample": "sample figures" if draws_samples else "loss graphs",
                        "eval": "evaluations"}[kind])
    return seconds, untimed

  def log_period(done: int) -> None:
    """Write and log the mean metrics of the steps since the last period."""
    scalars = reporting.mean_metrics(window)
    window.clear()
    other_seconds_due, untimed = other_seconds_left(done)
    rate, seconds_left = progress.update(done, other_seconds_due)
    writer.write(done, {**scalars, "steps_per_second": rate})
    losses_text = ", ".join(
        f"{name[6:]}={value:.4f}" for name, value in scalars.items()
        if name.startswith(("train_d_loss", "train_g_loss", "train_recon_")))
    untimed_text = f" plus {' and '.join(untimed)}, not timed yet" if untimed else ""
    logging.info("step %d/%d: %s | %.2f steps/s, %s left%s", done, config.num_steps,
                 losses_text, rate, reporting.format_duration(seconds_left), untimed_text)

  def evaluate(done: int) -> dict | None:
    """Measure translation quality and update the best-step record.

    Returns the details of the report at a new best step, else None.
    """
    outputs = translate_all(translate, state, *eval_inputs, mesh, config.eval.batch_size)
    arrays = {"a": eval_inputs[0], "b": eval_inputs[1], **outputs}
    report = quality(arrays)
    # Every process must take the same decisions: best step, early stop.
    metrics = parallel.from_first_process(report.metrics)
    improved = selection.update(done, metrics)
    writer.write(done, {f"eval_{name}": value for name, value in metrics.items()})
    logging.info("eval at step %d: %s = %.4f (best %.4f at step %d)%s", done, selection.metric,
                 metrics[selection.metric], selection.best_value, selection.best_step,
                 ", new best" if improved else "")
    if is_writer:
      plotting.save_eval_plot(os.path.join(workdir, "eval_metrics.png"), selection.history,
                              selection.metric, selection.best_step, selection.restarted_at)
    return report.details if improved else None

  done = start_step
  stopped_early = False
  window_of_steps = DispatchWindow()
  try:
    with preemption.StopRequest() as stop:
      for step in range(start_step, config.num_steps):
        local_a, local_b = next(batches)
        batch_a = parallel.global_batch(local_a, mesh)
        batch_b = parallel.global_batch(local_b, mesh)
        kind = config.update_cycle[step % len(config.update_cycle)]
        state, metrics = update[kind](state, batch_a, batch_b)
        window_of_steps.add(metrics)
        done = step + 1
        if (done == start_step + len(config.update_cycle)
            and not _due(done, config.log_every, config.num_steps)):
          # Each kind of update has compiled by now, so timing restarts here.
          jax.block_until_ready(metrics)
          progress.restart(done)
        window.append(metrics)
        pending.append((done, metrics))

        if _due(done, config.log_every, config.num_steps):
          divergence.check_metrics(pending)
          pending = []
          log_period(done)

        if _due(done, config.sample_every, config.num_steps):
          # Steps still running count as steps, not as the figures' time.
          jax.block_until_ready(state)
          started = time.perf_counter()
          # Every process runs the jitted translation; only the writer plots it.
          outputs = (translate_all(translate, state, *sample_inputs, mesh,
                                   config.eval.batch_size) if draws_samples else None)
          if is_writer:
            reporting.save_figures(workdir, done, domains, sample_inputs, outputs,
                                   writer.history)
          other_seconds["sample"] = time.perf_counter() - started
          progress.exclude(other_seconds["sample"])

        # All processes must stop after the same step. Otherwise one waits
        # in the checkpoint's barrier and another in the next step's
        # collectives, until the machine is shut down.
        stopping = stop.requested
        if jax.process_count() > 1:
          stopping = done % _STOP_AGREEMENT_STEPS == 0 and parallel.any_process(stop.requested)

        evaluated = quality is not None and _due(done, config.eval.every, config.num_steps)
        new_best_details = None
        if evaluated:
          divergence.check_metrics(pending)
          pending = []
          started = time.perf_counter()
          new_best_details = evaluate(done)
          other_seconds["eval"] = time.perf_counter() - started
          progress.exclude(other_seconds["eval"])
          stopped_early = selection.should_stop

        if (stopped_early or stopping) and window:
          divergence.check_metrics(pending)
          pending = []
          log_period(done)  # the steps of a period cut short

        if (_due(done, config.checkpoint_every, config.num_steps) or evaluated or stopped_early
            or stopping):
          divergence.check_metrics(pending)
          pending = []
          started = time.perf_counter()
          divergence.check_state(state)
          checkpoints.save(state, extra={"selection": {
              "best_step": selection.best_step, "best_metrics": selection.best_metrics,
              "evaluations_since_best": selection.evaluations_since_best,
              "restarted_at": selection.restarted_at, "measure": measure}})
          if new_best_details is not None:
            # ideal_state.json names this checkpoint, so it waits until the
            # checkpoint is complete on disk.
            checkpoints.wait()
            if is_writer:
              selection_lib.write_json(os.path.join(workdir, "ideal_state.json"),
                                       selection.ideal_state(False, new_best_details))
          progress.exclude(time.perf_counter() - started)

        if stopped_early:
          logging.info("Stopping early at step %d: %s has not improved for %d evaluations; "
                       "the best step is %d.", done, selection.metric,
                       selection.evaluations_since_best, selection.best_step)
          break
        if stopping:
          checkpoints.wait()
          stopped = (f"Stopped by {stop.signal_name} after step {done}" if stop.requested else
                     f"Stopped after step {done} because another process of the run "
                     "received a stop signal")
          logging.warning("%s; the checkpoint is saved and the next run with this workdir "
                          "resumes there.", stopped)
          break
  finally:
    # Let asynchronous saves of good checkpoints finish, also when a step failed.
    checkpoints.close()
    writer.close()

  # The loss graph is drawn with the sample figures, so it lags behind a run
  # that stopped early or by a signal.
  if is_writer and done > start_step:
    plotting.save_loss_plot(os.path.join(workdir, "losses.png"), writer.history)

  if is_writer and selection.best_step is not None:
    path = os.path.join(workdir, "ideal_state.json")
    selection_lib.write_json(path, selection.ideal_state(stopped_early, _details(path)))
    logging.info("Ideal state: step %d with %s = %.4f (%s); see %s", selection.best_step,
                 selection.metric, selection.best_value, selection.rule(), path)
  return state


def _details(path: str) -> dict:
  """Keep the details that the best evaluation wrote, such as mode tables."""
  if not os.path.exists(path):
    return {}
  with open(path) as handle:
    return json.load(handle).get("details", {})
