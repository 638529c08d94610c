"""Translate images or vectors with a trained run.

    python -m crossdomain.translate --workdir=DIR --direction=a2b \\
        --input=PATH --output=DIR [--step=N|best] [--with_reconstruction]

Images (one file, or a folder searched recursively) are read as training
reads them and written as PNG files of the same names. A CSV file of vectors
is written as a CSV file. Only the generators are read from the checkpoint,
and batch norm uses the running statistics kept from training.
"""

import collections
import csv
import dataclasses
import functools
import json
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import app, flags, logging
from PIL import Image

from crossdomain import (checkpointing, cli, config as config_lib, model_range, parallel,
                         preemption, steps)
from crossdomain.data import csv_vectors
from crossdomain.errors import UserInputError
from crossdomain.models import Networks, build_networks

BATCH_SIZE = 64  # examples per jitted call; the last batch is padded to it
DIRECTIONS = ("a2b", "b2a")
FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Translator:
  """The generators of one checkpoint, ready to translate in inference mode."""

  networks: Networks
  params: dict
  stats: dict
  shape_a: tuple[int, ...]
  shape_b: tuple[int, ...]
  step: int
  config: ml_collections.ConfigDict  # of the run that saved the checkpoint
  columns_a: tuple[str, ...] | None = None  # header rows of CSV domains
  columns_b: tuple[str, ...] | None = None

  @functools.cached_property
  def _translate(self):
    """Jitted (direction, batch) -> (translation, reconstruction)."""

    def apply(role, inputs):
      name = self.networks.roles[role]
      variables = {"params": self.params[name]}
      if self.stats[name]:
        variables["batch_stats"] = self.stats[name]
      return self.networks.generators[name].apply(variables, inputs, train=False)

    def run(direction, x):
      first, second = ("ab", "aba") if direction == "a2b" else ("ba", "bab")
      translated = apply(first, x)
      return translated, apply(second, translated)

    return jax.jit(run, static_argnums=0)

  def __call__(self, x: np.ndarray, direction: str) -> dict[str, np.ndarray]:
    """Translate a batch in one direction and reconstruct it.

    Args:
      x: float [N, *shape_a] inputs for "a2b", or [N, *shape_b] for "b2a",
        in model range: images in [-1, 1], vectors as in the training data.
      direction: "a2b" (G_AB, then G_BA to reconstruct) or "b2a".

    Returns:
      "translated" (G_AB(x) for a2b) and "reconstructed" (G_BA(G_AB(x))),
      float32 arrays of N rows.

    Raises:
      UserInputError: an unknown direction, inputs of another shape, no
        rows, or inputs that are not floats.
    """
    x = self._check_inputs(x, direction)
    outputs = {"translated": [], "reconstructed": []}
    for start in range(0, len(x), BATCH_SIZE):
      chunk = x[start:start + BATCH_SIZE]
      padded = np.concatenate([chunk, np.repeat(chunk[-1:], BATCH_SIZE - len(chunk), 0)])
      translated, reconstructed = self._translate(direction, jnp.asarray(padded))
      outputs["translated"].append(np.asarray(translated)[:len(chunk)])
      outputs["reconstructed"].append(np.asarray(reconstructed)[:len(chunk)])
    return {name: np.concatenate(parts) for name, parts in outputs.items()}

  def _check_inputs(self, x, direction: str) -> np.ndarray:
    if direction not in DIRECTIONS:
      raise UserInputError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    x = np.asarray(x)
    shape = self.shape_a if direction == "a2b" else self.shape_b
    if x.ndim != len(shape) + 1 or x.shape[1:] != shape:
      raise UserInputError(f"{direction} translates inputs of shape [N, "
                           f"{', '.join(map(str, shape))}], got {x.shape}")
    if len(x) == 0:
      raise UserInputError("the inputs have no rows; give at least one example")
    # jnp.issubdtype also counts bfloat16, which numpy does not know as a float.
    if not jnp.issubdtype(x.dtype, jnp.floating):
      fix = ("Scale uint8 images to [-1, 1] with x / 127.5 - 1" if len(shape) == 3 else
             "Convert vectors with x.astype(np.float32)")
      raise UserInputError(f"inputs must be floats in model range, got dtype {x.dtype}. {fix}.")
    finite = np.isfinite(np.asarray(x, np.float32))
    if not finite.all():
      raise UserInputError(f"the inputs contain {np.size(finite) - np.count_nonzero(finite)} "
                           "values that are NaN or infinite; give finite values")
    if len(shape) == 3:
      low, high = float(x.min()), float(x.max())
      if model_range.leaves_range(low, high):
        hint = ("Scale images in [0, 255] with x / 127.5 - 1" if high > 2.0 else
                "Scale or clip them to [-1, 1]")
        raise UserInputError(f"images must be in [-1, 1], got values from {low:.4g} to "
                             f"{high:.4g}. {hint}.")
    return x


def resolve_step(workdir: str, step: str, latest: int | None) -> int:
  """Turn --step (a number, 'latest' or 'best') into a checkpoint step."""
  # With no checkpoint saved, every --step fails with the same message.
  if latest is None:
    absent = "" if os.path.isdir(workdir) else f" (the directory {workdir} does not exist)"
    raise UserInputError(f"no checkpoint in {workdir}/checkpoints{absent}; train first with "
                         f"python -m crossdomain.main --config=CONFIG --workdir={workdir}, "
                         "or check --workdir")
  if step == "latest":
    return latest
  if step == "best":
    path = os.path.join(workdir, "ideal_state.json")
    if not os.path.exists(path):
      raise UserInputError(f"{path} not found: the step 'best' needs a run that evaluated "
                           "during training, which this one has not, for example because it "
                           "stopped before its first evaluation or held out too few rows. Give "
                           "'latest' or a step number instead")
    with open(path) as handle:
      return int(json.load(handle)["step"])
  if not step.isdigit():
    raise UserInputError(f"the step must be a number (0 or more), 'latest' or 'best', "
                         f"got {step!r}")
  return int(step)


def load_translator(workdir: str, step: str | int = "latest") -> Translator:
  """Read the generators of one checkpoint of a run, without its optimizer state.

  Args:
    workdir: the run's workdir.
    step: a step number, "latest" or "best".

  Raises:
    UserInputError: no such checkpoint, or it cannot be read.
  """
  directory = os.path.join(os.path.abspath(workdir), "checkpoints")
  manager = checkpointing.open_read_only(directory)
  chosen = resolve_step(workdir, str(step), manager.latest_step())
  if chosen not in manager.all_steps():
    raise UserInputError(f"no checkpoint at step {chosen} in {directory}; saved steps: "
                         f"{sorted(manager.all_steps())}")

  try:
    meta = manager.restore(chosen, args=ocp.args.Composite(
        **{checkpointing.META_ITEM: ocp.args.JsonRestore()}))[checkpointing.META_ITEM]
  except Exception as error:  # orbax and TensorStore raise many kinds
    raise checkpointing.unreadable(directory, chosen, manager.all_steps(), error) from error
  # Fields added to the config after this checkpoint was written take their
  # defaults.
  config = config_lib.base_config()
  config.update(meta["config"])
  shape_a, shape_b = tuple(meta["example_shape_a"]), tuple(meta["example_shape_b"])
  networks = build_networks(config.model, shape_a, shape_b)

  template = jax.eval_shape(lambda: steps.init_state(networks, config, shape_a, shape_b))
  abstract = parallel.on_first_local_device(
      {"params": template.generator_params, "batch_stats": template.generator_stats})
  try:
    restored = manager.restore(chosen, args=ocp.args.Composite(
        generators=ocp.args.StandardRestore(abstract)))["generators"]
  except Exception as error:
    raise checkpointing.unreadable(directory, chosen, manager.all_steps(), error) from error
  manager.close()
  # Checkpoints written before the header rows were recorded have no columns.
  columns_a, columns_b = (tuple(meta[key]) if meta.get(key) else None
                          for key in ("columns_a", "columns_b"))
  return Translator(networks, restored["params"], restored["batch_stats"], shape_a, shape_b,
                    chosen, config, columns_a, columns_b)


def read_images(path: str, shape: tuple[int, int, int],
                padded_from: int | None = None) -> tuple[np.ndarray, list[str]]:
  """Read the images at `path` as training reads them, in model range [-1, 1].

  `path` is one image file or a folder searched recursively. Each image is
  decoded, converted to the model's channels, center-cropped and resized by
  the training pipeline's function. In a folder, files that do not decode are
  skipped with one logged warning, as in training.

  Args:
    path: an image file or a folder.
    shape: the model's [size, size, channels].
    padded_from: the side of images that training padded with zeros to
      `size`, such as Fashion-MNIST's 28; images of that side are padded
      in the same way instead of resized.

  Returns:
    float32 [N, size, size, channels] and each image's name relative to the
    folder (the file name for a single file).
  """
  from crossdomain.data import image_folders, pipeline  # here, because TensorFlow loads slowly

  size, _, channels = shape
  if os.path.isfile(path):
    if image_folders.fingerprint_images([path], size, channels)[0] is None:
      raise UserInputError(f"{path} is not a readable {image_folders.IMAGE_FORMATS} image")
    paths, names = [path], [os.path.basename(path)]
  else:
    paths = list(image_folders.find_images(path, size, channels, field="--input"))
    names = [os.path.relpath(found, path) for found in paths]
  images = np.zeros((len(paths), size, size, channels), np.uint8)
  is_small = np.array([padded_from is not None and _side(found) == padded_from
                       for found in paths], bool)
  for group, side in ((~is_small, size), (is_small, padded_from)):
    if group.any():
      decoded = pipeline.decode_examples(image_folders.ImageFiles(
          [found for found, chosen in zip(paths, group) if chosen], side, channels))
      border = (size - side) // 2
      images[group, border:border + side, border:border + side] = decoded
  return pipeline.to_model_range(images).numpy(), names


def _side(path: str) -> int | None:
  """Return the side of a square image file from its header, or None for other shapes."""
  with Image.open(path) as image:
    width, height = image.size
  return width if width == height else None


def output_names(names: list[str]) -> list[str]:
  """Name each output PNG file after its input, keeping the extension where names would clash.

  x.jpg becomes x.png, but when x.png and x.jpg are both inputs they become
  x.png.png and x.jpg.png, so that no output overwrites another.
  """
  stems = [os.path.splitext(name)[0] for name in names]
  counts = collections.Counter(stems)
  outputs = [f"{stem if counts[stem] == 1 else name}.png" for stem, name in zip(stems, names)]
  clashing = sorted(name for name, count in collections.Counter(outputs).items() if count > 1)
  if clashing:
    raise UserInputError(f"several inputs would be written as {clashing}; rename them")
  return outputs


def write_images(directory: str, names: list[str], images: np.ndarray) -> list[str]:
  """Write images in [-1, 1] as PNG files of the given relative names; return their paths."""
  pixels = np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
  paths = []
  for name, image in zip(names, pixels):
    path = os.path.join(directory, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path)
    paths.append(path)
  return paths


def read_vectors(path: str, features: int) -> tuple[np.ndarray, list[str] | None]:
  """Read a CSV file of vectors and its header row, by the rules of data/csv_vectors.py.

  Returns:
    The vectors, [N, features] float32, and the header row or None.
  """
  vectors, header = csv_vectors.read_table(path)
  if vectors.shape[1] != features:
    raise UserInputError(f"{path} has {vectors.shape[1]} values per row, but the model "
                         f"expects vectors of {features}")
  return vectors, header


def write_vectors(path: str, vectors: np.ndarray, header: Sequence[str] | None = None) -> None:
  with open(path, "w", newline="") as handle:
    writer = csv.writer(handle)
    if header is not None:
      writer.writerow(header)
    writer.writerows(vectors.tolist())


def translate_path(translator: Translator, direction: str, input_path: str, output: str,
                   with_reconstruction: bool) -> list[str]:
  """Translate everything at `input_path` into `output`; return the files written."""
  if direction not in DIRECTIONS:
    raise UserInputError(f"--direction must be a2b or b2a, got {direction!r}")
  source_shape = translator.shape_a if direction == "a2b" else translator.shape_b
  if not os.path.exists(input_path):
    raise UserInputError(f"--input {input_path} does not exist")
  if os.path.exists(output) and not os.path.isdir(output):
    raise UserInputError(f"--output {output} is a file; name a folder for the results")
  written = []

  if len(source_shape) == 1:
    if not os.path.isfile(input_path):
      raise UserInputError(f"--input {input_path} must be a CSV file for vector domains")
    vectors, header = read_vectors(input_path, source_shape[0])
    outputs = translator(vectors, direction)
    # A translation has the other domain's columns, and a reconstruction the input's.
    headers = {"translated": translator.columns_b if direction == "a2b" else translator.columns_a,
               "reconstructed": header}
    stem = os.path.splitext(os.path.basename(input_path))[0]
    kinds = ("translated", "reconstructed") if with_reconstruction else ("translated",)
    os.makedirs(output, exist_ok=True)
    for kind in kinds:
      path = os.path.join(output, f"{stem}_{kind}.csv")
      write_vectors(path, outputs[kind], headers[kind])
      written.append(path)
    return written

  padded_from = None
  if translator.config.data.name == "fashion_mnist":
    from crossdomain.data import fashion_mnist  # here, because TensorFlow Datasets loads slowly
    padded_from = fashion_mnist.IMAGE_SIZE
  images, names = read_images(input_path, source_shape, padded_from)
  names = output_names(names)
  outputs = translator(images, direction)
  written += write_images(output, names, outputs["translated"])
  if with_reconstruction:
    written += write_images(os.path.join(output, "reconstructions"), names,
                            outputs["reconstructed"])
  return written


def other_files(folder: str, written: Sequence[str]) -> list[str]:
  """Return the files under folder, relative to it and sorted, that are not in written."""
  written = {os.path.abspath(path) for path in written}
  others = []
  for root, _, names in os.walk(folder):
    others += [os.path.relpath(os.path.join(root, name), folder) for name in names
               if os.path.abspath(os.path.join(root, name)) not in written]
  return sorted(others)


def _define_flags() -> None:
  """Define the command's flags; only when run as a program, so importing stays free of them."""
  flags.DEFINE_string("workdir", None, "Workdir of a training run.")
  flags.DEFINE_string("step", "latest", "Checkpoint step: a number, 'latest' or 'best'.")
  flags.DEFINE_enum("direction", None, list(DIRECTIONS), "Translation direction.")
  flags.DEFINE_string("input", None, "Image file, folder of images, or CSV file.")
  flags.DEFINE_string("output", None, "Folder for the results.")
  flags.DEFINE_bool("with_reconstruction", False, "Also write each input translated back.")
  flags.mark_flags_as_required(["workdir", "direction", "input", "output"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  cli.quiet_library_logs()
  cli.import_tensorflow()
  try:
    translator = load_translator(FLAGS.workdir, FLAGS.step)
    written = translate_path(translator, FLAGS.direction, FLAGS.input, FLAGS.output,
                             FLAGS.with_reconstruction)
  except UserInputError as error:
    cli.quiet_exit_after_error()
    raise SystemExit(f"error: {error}") from None
  logging.info("Wrote %d file(s) to %s with the checkpoint at step %d", len(written),
               FLAGS.output, translator.step)
  others = other_files(FLAGS.output, written)
  if others:
    logging.warning("%s also contains %d file(s) that this command did not write, such as %s; "
                    "they may be from an earlier translation", FLAGS.output, len(others),
                    others[0])


if __name__ == "__main__":
  preemption.install_interrupt_redelivery()
  _define_flags()
  app.run(main)
