"""Measure translation quality of a saved checkpoint, or of arrays from any program.

    python -m crossdomain.evaluate --workdir=DIR [--step=N|latest|best] [--json]
        [--set=data.folder_a=/new/place/of/a ...]
    python -m crossdomain.evaluate --npz=FILE --config=configs/fashion_shoes_bags.py [--json]

An NPZ file contains arrays `a`, `ab`, `aba`, `b`, `ba` and `bab`: held-out
examples of both domains, their translations and their reconstructions. For
images the arrays are [N, size, size] or [N, size, size, channels], as
uint8, or floats in [0, 1] or [-1, 1]; for vectors they are [N, features].
Both modes use the same evaluator and metrics as training, so other
implementations are measured on the same scale.
"""

import dataclasses
import json
import os
import sys
import zipfile

import ml_collections
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from crossdomain import cli, data as data_lib, model_range, preemption
from crossdomain.data import pipeline
from crossdomain.errors import UserInputError
from crossdomain.evaluation import metrics, quality as quality_lib

ARRAY_NAMES = ("a", "ab", "aba", "b", "ba", "bab")

# Settings of a run's config that --set may change: where its data and
# evaluators are, not what they are.
LOCATION_FIELDS = (*(f"data.{name}" for name in quality_lib.DATA_LOCATIONS),
                   "eval.evaluator_dir")

FLAGS = flags.FLAGS


def _define_flags() -> None:
  """Define the command's flags; only when run as a program, so importing stays free of them."""
  flags.DEFINE_string("workdir", None, "Workdir of a training run to evaluate.")
  flags.DEFINE_string("step", "latest", "Checkpoint step: a number, 'latest' or 'best'.")
  flags.DEFINE_string("npz", None, "NPZ file of translations made by any program.")
  flags.DEFINE_multi_string(
      "set", [], "With --workdir: FIELD=PATH, a new place for data or evaluators that have "
      "moved since training, such as data.folder_a=/data/shoes. FIELD is one of "
      f"{', '.join(LOCATION_FIELDS)}")  # absl adds "; repeat this option ..."
  flags.DEFINE_bool("json", False, "Print only a JSON object: the workdir or NPZ file, the "
                    "checkpoint step (null for --npz) and the metrics.")
  config_flags.DEFINE_config_file(
      "config", None, "Run config that names the domains of an --npz file.", lock_config=True)


def images_to_model_range(images: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
  """Convert images of any accepted encoding to float32 [N, *shape] in [-1, 1]."""
  images = np.asarray(images)
  if images.ndim == len(shape):  # no channel axis
    images = images[..., None]
  if images.shape[1:] != tuple(shape):
    raise UserInputError(f"array {name!r} has shape {images.shape}, expected [N, "
                         f"{', '.join(map(str, shape))}] or [N, {shape[0]}, {shape[1]}]")
  if images.dtype == np.uint8:
    return images.astype(np.float32) / 127.5 - 1.0
  images = images.astype(np.float32)
  low, high = float(images.min()), float(images.max())
  if model_range.leaves_range(low, high):
    raise UserInputError(f"array {name!r} spans [{low:.3g}, {high:.3g}]; expected uint8, or "
                         f"floats in [0, 1] or [-1, 1]")
  # Real images in [-1, 1] have a background near -1; none reach below 0 in [0, 1].
  return images * 2.0 - 1.0 if low >= 0.0 else images


def _check_values(values: np.ndarray, name: str) -> None:
  """Raise UserInputError unless an array has rows of finite numbers."""
  if values.ndim == 0 or len(values) == 0:
    raise UserInputError(f"array {name!r} has no rows (shape {values.shape}); give one row "
                         "per example")
  if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
    raise UserInputError(f"array {name!r} contains {values.dtype} values; expected numbers")
  finite = np.isfinite(values).reshape(len(values), -1).all(axis=1)
  if not finite.all():
    raise UserInputError(f"array {name!r} has NaN or infinite values in {np.sum(~finite)} of "
                         f"{len(values)} rows, the first at row {np.argmin(finite)}")


def read_npz(path: str, domains: data_lib.DomainPair) -> dict[str, np.ndarray]:
  """Read and normalize the six arrays of an NPZ file."""
  if not os.path.isfile(path):
    raise UserInputError(f"--npz {path} not found")
  if not zipfile.is_zipfile(path):
    raise UserInputError(f"{path} is not an NPZ file; write the arrays with numpy.savez")
  with np.load(path, allow_pickle=False) as archive:
    missing = [name for name in ARRAY_NAMES if name not in archive]
    if missing:
      raise UserInputError(f"{path} lacks arrays {missing}; it needs {list(ARRAY_NAMES)}")
    raw = {}
    for name in ARRAY_NAMES:
      try:
        raw[name] = archive[name]
      except ValueError as error:  # object arrays, which only pickle can read
        raise UserInputError(f"array {name!r} of {path} cannot be read without pickle "
                             f"({error}); save it as an array of numbers") from error
  shapes = {"a": domains.a.example_shape, "b": domains.b.example_shape}
  arrays = {}
  for name, values in raw.items():
    _check_values(values, name)
    shape = shapes[name[-1]]  # ab ends in B's shape, aba in A's
    if domains.is_image:
      arrays[name] = images_to_model_range(values, shape, name)
    elif values.ndim != 2 or values.shape[1:] != tuple(shape):
      raise UserInputError(f"array {name!r} has shape {values.shape}, expected [N, {shape[0]}]: "
                           f"one row of {shape[0]} values per example")
    else:
      arrays[name] = np.asarray(values, np.float32)
  for source, outputs in (("a", ("ab", "aba")), ("b", ("ba", "bab"))):
    for name in outputs:
      if len(arrays[name]) != len(arrays[source]):
        raise UserInputError(f"array {name!r} has {len(arrays[name])} rows but {source!r} "
                             f"has {len(arrays[source])}; each needs one row per source")
  return arrays


def source_labels(measure, arrays, domains: data_lib.DomainPair):
  """Fit the measure to arrays whose source classes or modes are not given."""
  if isinstance(measure, quality_lib.ToyQuality):
    modes_a, _ = metrics.nearest_modes(arrays["a"], measure.mixtures[0])
    modes_b, _ = metrics.nearest_modes(arrays["b"], measure.mixtures[1])
    return dataclasses.replace(measure, modes_a=modes_a, modes_b=modes_b)
  if measure.subclasses_a is None:
    return measure
  # Look each source image up among the held-out images, whose classes are
  # known; an image that is not among them gets the evaluator's prediction.
  known = {pipeline.to_model_range(image).numpy().round(4).tobytes(): label
           for image, label in zip(domains.a.test, domains.a.test_labels)}
  predicted = np.asarray(measure.classes_a)[np.argmax(
      measure.evaluator.logits(arrays["a"])[:, list(measure.classes_a)], axis=1)]
  labels = np.array([known.get(image.round(4).tobytes(), guess)
                     for image, guess in zip(arrays["a"], predicted)])
  logging.info("%d of %d source images found among the held-out images",
               sum(image.round(4).tobytes() in known for image in arrays["a"]), len(labels))
  return dataclasses.replace(measure, subclasses_a=labels)


def evaluate_npz(path: str, config) -> quality_lib.Report:
  domains = data_lib.load(config.data, config.seed)
  measure = quality_lib.make_quality(config, domains)
  if measure is None:
    raise UserInputError(f"data.name {config.data.name!r} has no quality measure")
  arrays = read_npz(path, domains)
  return source_labels(measure, arrays, domains)(arrays)


def set_locations(config, assignments: list[str]) -> None:
  """Apply FIELD=PATH assignments of LOCATION_FIELDS to a run's config.

  Raises:
    UserInputError: an assignment lacks '=', names another field, names a
      field twice, or names a field that the run's data source does not have.
  """
  fields_set = set()
  for assignment in assignments:
    field, equals, path = assignment.partition("=")
    if not equals or not path:
      raise UserInputError(f"--set {assignment!r} must have the form FIELD=PATH, such as "
                           "data.folder_a=/data/shoes")
    if field in fields_set:
      raise UserInputError(f"--set names {field} twice; give each field once")
    fields_set.add(field)
    if field not in LOCATION_FIELDS:
      raise UserInputError(f"--set cannot change {field!r}: only the places of the data and "
                           f"evaluators can change, {', '.join(LOCATION_FIELDS)}")
    section, name = field.split(".")
    if name not in config[section]:
      present = [known for known in LOCATION_FIELDS if known.split(".")[1] in
                 config[known.split(".")[0]]]
      raise UserInputError(f"--set {field}: this run's data ({config.data.name!r}) has no such "
                           f"field; it has {', '.join(present)}")
    config[section][name] = path


def evaluate_checkpoint(workdir: str, step: str,
                        assignments: list[str] = ()) -> tuple[int, quality_lib.Report]:
  """Translate the held-out data with a checkpoint's generators and measure the result.

  `assignments` are --set FIELD=PATH values for data or evaluators that have moved.
  """
  from crossdomain import translate

  translator = translate.load_translator(workdir, step)
  config = translator.config
  set_locations(config, list(assignments))
  try:
    domains = data_lib.load(config.data, config.seed)
  except FileNotFoundError as error:
    raise UserInputError(f"{error}. If the run's data has moved, give its new place with "
                         "--set=FIELD=PATH for the field named here, such as "
                         "--set=data.folder_a=/new/place") from error
  measure = quality_lib.make_quality(config, domains)
  if measure is None:
    raise UserInputError(f"data.name {config.data.name!r} has no quality measure")
  inputs = {name: pipeline.to_model_range(domain.test[:config.eval.max_examples]).numpy()
            for name, domain in (("a", domains.a), ("b", domains.b))}
  forward_a = translator(inputs["a"], "a2b")
  forward_b = translator(inputs["b"], "b2a")
  arrays = {**inputs, "ab": forward_a["translated"], "aba": forward_a["reconstructed"],
            "ba": forward_b["translated"], "bab": forward_b["reconstructed"]}
  return translator.step, measure(arrays)


def run(*, workdir: str | None = None, step: str = "latest", assignments: list[str] = (),
        npz: str | None = None,
        config: ml_collections.ConfigDict | None = None,
        ) -> tuple[int | None, quality_lib.Report, str | None]:
  """Evaluate a run's checkpoint at `step` (a number, 'latest' or 'best'), or an NPZ file.

  Give one of `workdir` and `npz`. `config` names the domains of an NPZ
  file; a checkpoint brings its own.
  Returns the checkpoint's step (None for an NPZ file), the report, and the
  JSON file it was written to in the workdir (None for an NPZ file).
  """
  if bool(workdir) == bool(npz):
    raise ValueError(f"expected exactly one of workdir and npz, got {workdir!r} and {npz!r}")
  if npz:
    if config is None:
      raise UserInputError("--npz needs --config, the run config that names the domains")
    return None, evaluate_npz(npz, config), None
  saved_step, report = evaluate_checkpoint(workdir, step, assignments)
  path = os.path.join(workdir, f"evaluation_{saved_step:07d}.json")
  with open(path, "w") as handle:
    json.dump({"step": saved_step, "metrics": report.metrics, "details": report.details},
              handle, indent=2)
  return saved_step, report, path


def render(source: str, step: int | None, report: quality_lib.Report, path: str | None,
           as_json: bool) -> str:
  """Format the printed result: one JSON object, or the metrics and details as text."""
  if as_json:
    return json.dumps({"source": source, "step": step, "metrics": report.metrics},
                      sort_keys=True)
  at_step = "" if step is None else f" at step {step}"
  lines = [f"Translation quality of {source}{at_step}:"]
  lines += [f"  {name:32s} {value:.6g}" for name, value in sorted(report.metrics.items())]
  lines += [f"\n{name}:\n{text}" for name, text in sorted(report.details.items())]
  if path is not None:
    lines.append(f"\nWrote the metrics and details to {path}")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  cli.quiet_library_logs()
  if bool(FLAGS.workdir) == bool(FLAGS.npz):
    sys.exit("error: give exactly one of --workdir (a training run) and --npz (saved "
             "translations); see --help")
  if FLAGS.set and FLAGS.npz:
    sys.exit("error: --set changes the config of a --workdir run; with --npz, pass "
             "--config.FIELD=VALUE instead")
  cli.import_tensorflow()
  try:
    step, report, path = run(workdir=FLAGS.workdir, step=FLAGS.step, assignments=FLAGS.set,
                             npz=FLAGS.npz, config=FLAGS.config)
  except (UserInputError, FileNotFoundError) as error:
    cli.quiet_exit_after_error()
    raise SystemExit(f"error: {error}") from None
  print(render(FLAGS.npz or FLAGS.workdir, step, report, path, FLAGS.json))


if __name__ == "__main__":
  preemption.install_interrupt_redelivery()
  _define_flags()
  app.run(main, flags_parser=cli.parse_flags)
