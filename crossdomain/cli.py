"""Helpers shared by the command-line programs."""

import logging
import os
import re
import sys
from collections.abc import Iterable

import ml_collections
from absl import flags
from absl import logging as absl_logging

FLAGS = flags.FLAGS


# INFO records of other libraries that give a user nothing to act on, by
# the end of the file that logs them and the start of the message. JAX notes
# each optional backend it could not start, such as the TPU on a machine
# without one. TFDS notes that Fashion-MNIST prepared from Debian's files
# names this package's builder module.
_DROPPED_INFO = (("/jax/_src/xla_bridge.py", "Unable to initialize backend"),
                 ("/tensorflow_datasets/core/dataset_info.py", "For 'fashion_mnist/"))


class _DropLibraryNoise(logging.Filter):
  """Drop orbax's INFO records, which narrate every save and restore, and _DROPPED_INFO."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno > logging.INFO:
      return True
    if "/orbax/" in record.pathname:
      return False
    return not any(record.pathname.endswith(path) and record.getMessage().startswith(start)
                   for path, start in _DROPPED_INFO)


def quiet_library_logs() -> None:
  """Keep library chatter out of the program's log; call after absl has parsed flags."""
  absl_logging.get_absl_handler().addFilter(_DropLibraryNoise())


def import_tensorflow() -> None:
  """Import TensorFlow, which only feeds data, and keep it off the GPUs that JAX uses.

  Call it before TensorFlow runs its first op. Otherwise TensorFlow starts
  every visible GPU and reserves most of its memory.
  """
  import tensorflow as tf

  tf.config.set_visible_devices([], "GPU")


def format_config(config: ml_collections.ConfigDict, overridden: Iterable[str] = ()) -> str:
  """Return one line per config field: its --config.FIELD override name and its Python value.

  Fields named in `overridden` are marked as set on the command line.
  """
  overridden = set(overridden)

  def lines(tree: dict, prefix: str):
    for name, value in sorted(tree.items()):
      field = f"{prefix}{name}"
      if isinstance(value, dict):
        yield from lines(value, f"{field}.")
      else:
        mark = "  # set on the command line" if field in overridden else ""
        yield f"  {field} = {value!r}{mark}"

  return "\n".join(lines(config.to_dict(), ""))


def quiet_exit_after_error() -> None:
  """Keep Python from printing tracebacks of leftover work as the program exits after an error.

  A failed checkpoint read leaves orbax's other reads as coroutines and
  asyncio tasks, which Python and asyncio report one by one at exit, under
  the one-line error.
  NOTE: this hides what orbax leaves behind and does not stop it: the other
  reads of the failed restore still run until the process exits.
  """
  sys.unraisablehook = lambda unraisable: None
  logging.getLogger("asyncio").setLevel(logging.CRITICAL)


def parse_flags(argv: list[str]) -> list[str]:
  """Parse absl flags for app.run, reporting a bad --config in one line instead of a traceback.

  For programs that define a config flag named `config`, which may be optional.
  """
  try:
    remaining = FLAGS(argv)
    # A config file that failed to load raises here, and a missing optional one is None.
    if FLAGS.config is not None:
      FLAGS.config.to_dict()
    return remaining
  except KeyboardInterrupt:
    sys.exit("interrupted while loading the config")
  except OSError as error:
    missing = _missing_config_file(argv)
    if missing:
      sys.exit(f"FATAL Flags parsing error: {missing}")
    cause = error.__cause__ or error
    sys.exit(f"FATAL Flags parsing error: --config could not be loaded: {cause}")
  except (AttributeError, KeyError) as error:
    # ml_collections raises these for --config.FIELD overrides of fields that
    # do not exist; the message names the field and a close match.
    text = str(error)
    field = re.search(r"[\w.]+", text)
    hint = re.search(r"Did you mean [^?]*\?", text)
    name = field.group(0) if field else text
    hint = hint.group(0) if hint else ""
    section = _section_of_unknown_field(argv, name)
    if section:
      # ml_collections names only the last key, so both names get their section.
      name = f"{section}.{name}"
      hint = re.sub(r'"(\w+)"', lambda match: f'"{section}.{match.group(1)}"', hint)
    sys.exit(f"FATAL Flags parsing error: unknown config field '{name}'. {hint}".strip())
  except flags.Error as error:
    message = _describe_override_error(str(error)) or str(error)
    sys.exit(f"FATAL Flags parsing error: {message}\nPass --helpshort or --helpfull to see help.")


def _section_of_unknown_field(argv: list[str], name: str) -> str:
  """Return the config section before `name` in the first --config.FIELD override naming it."""
  for argument in argv:
    if argument.startswith("--config."):
      keys = argument[len("--config."):].split("=", 1)[0].split(".")
      if name in keys:
        return ".".join(keys[:keys.index(name)])
  return ""


def _missing_config_file(argv: list[str]) -> str | None:
  """Describe the --config file of `argv` if it does not exist, with the files beside it."""
  values = [argument.split("=", 1)[1] for argument in argv if argument.startswith("--config=")]
  if not values:
    return None
  path = values[-1].split(":", 1)[0]  # a config file may take an argument after a colon
  if os.path.exists(path):
    return None
  folder = os.path.dirname(path) or "."
  known = sorted(name for name in os.listdir(folder) if name.endswith(".py")
                 and not name.startswith("_")) if os.path.isdir(folder) else []
  listing = f"; {folder} contains {', '.join(known)}" if known else ""
  return f"config file {path} not found{listing}"


# The kind of value each type of config field expects, for error messages.
_KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


def _describe_override_error(text: str) -> str | None:
  """Turn absl's message about a --config.FIELD=VALUE of the wrong type into one that names it.

  Returns None when the message is about something else.
  """
  match = re.match(r"flag --config\.([\w.]+)=(.*?): ", text)
  if not match:
    return None
  field, value = match.groups()
  try:
    default = FLAGS["config"].value
    for name in field.split("."):
      default = default[name]
  except (AttributeError, KeyError, TypeError):
    return None
  example = str(default).lower() if isinstance(default, bool) else repr(default)
  kind = _KINDS.get(type(default), type(default).__name__)
  return f"--config.{field} expects {kind}, such as {example}, got {value!r}"
